"""CLI commands about checkpoints: verify-models, download, models (list, scan).

Thin: options are parsed here; the work is in vtryon.models (inventory, download, scan).
Nothing heavy is imported at ``import vtryon.cli`` time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vtryon.cli_common import console, err_console, handle_errors
from vtryon.errors import EXIT_BAD_INPUT, EXIT_FAILURE, UsageError

ModelsDir = Annotated[
    Optional[Path], typer.Option("--models-dir", help="Where checkpoints live (default: $VTRYON_HOME/models or ~/.cache/vtryon/models).")
]
Manifests = Annotated[
    Optional[list[Path]], typer.Option("--manifest", help="Extra models.toml adding or overriding checkpoints (repeatable; also $VTRYON_MANIFEST).")
]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]


def _store(models_dir: Path | None, manifest: list[Path] | None) -> Any:
    from vtryon.models.hub import offline_by_default
    from vtryon.models.store import ModelStore

    offline_by_default()
    return ModelStore(models_dir, list(manifest) if manifest else None)


def _mb(size: int | None) -> str:
    return "-" if size is None else f"{size / 2**20:,.1f} MB"


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


def verify_models(
    ids: Annotated[Optional[list[str]], typer.Argument(help="Checkpoint ids (default: every installed checkpoint).", show_default=False)] = None,
    profile: Annotated[Optional[str], typer.Option(help="Verify the checkpoints this profile needs.")] = None,
    deep: Annotated[bool, typer.Option("--deep", help="Also load each model and run one forward pass on a small input.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.")] = False,
    models_dir: ModelsDir = None,
    manifest: Manifests = None,
    debug: Debug = False,
) -> None:
    """Check installed checkpoints: present, size, sha256, tensor layout (and --deep: a forward pass).

    Exit 0 only when every checkpoint asked for is fine. Without ids or --profile, every installed
    checkpoint is checked and missing ones are only listed.
    """
    from vtryon.models.inventory import profile_rows, select_ids, verify_row

    store = _store(models_dir, manifest)
    selected, explicit = select_ids(store, ids or [], profile)
    rows = {mid: verify_row(store, mid, deep=deep) for mid in selected}
    asked = [r for r in rows.values() if explicit or r.present]
    ok = all(r.ok for r in asked)
    profiles = profile_rows(store, rows if not explicit else None)
    if as_json:
        typer.echo(json.dumps({"ok": ok, "models_dir": str(store.root), "models": [r.as_dict() for r in rows.values()], "profiles": profiles}, indent=2))
    else:
        _print_verify(store, list(rows.values()), profiles, explicit, deep)
        if not asked:
            console.print("no checkpoint is installed yet: `vtryon models` lists them, `vtryon download ID` fetches one")
    if not ok:
        raise typer.Exit(EXIT_BAD_INPUT)


def _print_verify(store: Any, rows: list[Any], profiles: list[dict[str, Any]], explicit: bool, deep: bool) -> None:
    from rich.table import Table

    table = Table(title=f"Checkpoints in {store.root}", title_justify="left")
    for col in ("id", "step", "file", "present", "size", "sha256", "loadable", "license"):
        table.add_column(col, overflow="fold")
    if deep:
        table.add_column("forward pass", overflow="fold")
    for r in rows:
        if not explicit and not r.present:
            continue
        loadable = r.loadable if r.ok or r.loadable.startswith("no") else r.loadable
        cells = [r.id, r.step, r.file, _mark(r.present), _mb(r.size), r.sha256, loadable, r.license + (" [yellow](NC)[/]" if r.noncommercial else "")]
        if deep:
            cells.append(r.deep or "-")
        table.add_row(*cells, style=None if r.ok else "red")
    console.print(table)
    for r in rows:
        if r.present and r.problems:
            console.print(f"[red]{r.id}[/]: {r.problems[0]}", soft_wrap=True, highlight=False)
    missing = [r.id for r in rows if not r.present]
    if missing and not explicit:
        console.print(f"not installed: {', '.join(missing)}", soft_wrap=True, highlight=False)
    ptable = Table(title="Profiles", title_justify="left")
    for col in ("profile", "runnable", "why"):
        ptable.add_column(col, overflow="fold")
    for p in profiles:
        ptable.add_row(p["profile"], _mark(p["ready"]), p["reason"])
    console.print(ptable)


def download(
    ids: Annotated[Optional[list[str]], typer.Argument(help="Checkpoint ids to fetch (see `vtryon models`).", show_default=False)] = None,
    profile: Annotated[Optional[str], typer.Option(help="Fetch every checkpoint this profile needs.")] = None,
    accept_license: Annotated[bool, typer.Option("--accept-license", help="Accept non-commercial licences (shown first).")] = False,
    models_dir: ModelsDir = None,
    manifest: Manifests = None,
    debug: Debug = False,
) -> None:
    """Fetch checkpoints at their pinned sources, verify their sha256, and install them."""
    from vtryon.models.download import download_models, license_text
    from vtryon.models.inventory import require_selection, select_ids

    require_selection(ids or [], profile)
    store = _store(models_dir, manifest)
    selected, _ = select_ids(store, ids or [], profile)
    entries = [store.entry(mid) for mid in selected]
    for entry in entries:
        style = "yellow" if entry.noncommercial else "dim"
        err_console.print(f"[{style}]{license_text(entry)}[/]", highlight=False, soft_wrap=True)
    refused = [e.id for e in entries if e.noncommercial and not accept_license]
    if refused:
        raise UsageError(
            f"{', '.join(refused)} {'is' if len(refused) == 1 else 'are'} licensed for non-commercial use only",
            hint="read the licence above; pass --accept-license to accept it and download",
        )
    results = download_models(selected, store, accept_license=accept_license, log=lambda m: err_console.print(m, highlight=False, soft_wrap=True))
    for r in results:
        colour = {"downloaded": "green", "already installed": "green"}.get(r.status, "red")
        where = f" -> {r.path}" if r.path else ""
        console.print(f"[{colour}]{r.status}[/] {r.id}{where}" + (f": {r.message}" if r.status not in ("downloaded", "already installed") else ""), highlight=False, soft_wrap=True)
    if any(r.status in ("manual", "needs licence") for r in results):
        raise typer.Exit(EXIT_BAD_INPUT)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(EXIT_FAILURE)


models_app = typer.Typer(
    help="Profiles and the checkpoints each needs, with their status; `vtryon models scan DIR` registers files you already have.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@models_app.callback(invoke_without_command=True)
@handle_errors
def models_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the tables.")] = False,
    models_dir: ModelsDir = None,
    manifest: Manifests = None,
    debug: Debug = False,
) -> None:
    """List the profiles, the checkpoints each needs and their status."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"models_dir": models_dir, "manifest": manifest}
        return
    from vtryon.models.inventory import profile_rows
    from vtryon.models.status import model_problem

    store = _store(models_dir, manifest)
    status = {mid: model_problem(mid, store) for mid in sorted(store.manifest.entries)}
    profiles = profile_rows(store)
    if as_json:
        typer.echo(json.dumps({
            "models_dir": str(store.root),
            "profiles": profiles,
            "models": [
                {"id": mid, "step": store.entry(mid).step, "file": store.entry(mid).file, "installed": problem is None,
                 "problem": problem, "license": store.entry(mid).license, "noncommercial": store.entry(mid).noncommercial}
                for mid, problem in status.items()
            ],
        }, indent=2))
        return
    from rich.table import Table

    console.print(f"models folder: {store.root}", highlight=False)
    for p in profiles:
        mark = "[green]runnable[/]" if p["ready"] else "[red]not runnable[/]"
        console.print(f"\n[bold]{p['profile']}[/] {mark}: {p.get('description', '')}", highlight=False, soft_wrap=True)
        if not p["models"]:
            console.print("  needs no checkpoint")
        for mid in p["models"]:
            problem = status.get(store.entry(mid).id)
            console.print(f"  {'[green]ok[/]' if problem is None else '[red]--[/]'} {mid} {problem or ''}", highlight=False, soft_wrap=True)
    table = Table(title="\nAll checkpoints", title_justify="left")
    for col in ("id", "step", "status", "licence"):
        table.add_column(col, overflow="fold")
    for mid, problem in status.items():
        e = store.entry(mid)
        table.add_row(mid, e.step, "[green]installed[/]" if problem is None else problem, e.license + (" [yellow](NC)[/]" if e.noncommercial else ""))
    console.print(table)


@models_app.command("scan")
@handle_errors
def models_scan(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder to search (ComfyUI models, the seed's ai_models, the HF cache...).", show_default=False)],
    link: Annotated[bool, typer.Option("--link", help="Symlink each identified file into the models folder.")] = False,
    copy: Annotated[bool, typer.Option("--copy", help="Copy each identified file into the models folder.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report; register nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.")] = False,
    models_dir: ModelsDir = None,
    manifest: Manifests = None,
    debug: Debug = False,
) -> None:
    """Identify checkpoints under FOLDER by content (sha256, else tensor layout) and register them."""
    from vtryon.models.scan import scan_folder

    if link and copy:
        raise UsageError("--link and --copy exclude each other")
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    parent = (ctx.obj or {}) if ctx is not None else {}
    store = _store(models_dir or parent.get("models_dir"), manifest or parent.get("manifest"))
    mode = "none" if dry_run else "link" if link else "copy" if copy else "register"
    hits = scan_folder(folder, store, mode=mode)
    if as_json:
        typer.echo(json.dumps([
            {"path": str(h.path), "size": h.size, "sha256": h.sha256, "id": h.id, "how": h.how, "action": h.action, "note": h.note}
            for h in hits
        ], indent=2))
        return
    from rich.table import Table

    table = Table(title=f"Checkpoints found under {folder}", title_justify="left")
    for col in ("file", "size", "is", "recognised by", "done"):
        table.add_column(col, overflow="fold")
    for h in hits:
        table.add_row(str(h.path), _mb(h.size), h.id or "[dim]-[/]", h.how or h.note, h.action)
    console.print(table)
    found = sum(1 for h in hits if h.id)
    console.print(f"{found} of {len(hits)} files recognised" + (f"; {'linked' if mode == 'link' else 'copied'} into {store.root}" if found and mode in ("link", "copy") else ""), highlight=False)


def register(app: typer.Typer) -> None:
    """Add the checkpoint commands to the main app."""
    app.command("verify-models")(handle_errors(verify_models))
    app.command("download")(handle_errors(download))
    app.add_typer(models_app, name="models")
