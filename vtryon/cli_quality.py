"""`vtryon quality RESULT --person P --garment G`: the quality report of an existing try-on.

The regions the metrics need are found the way the pipeline finds them: the person photo and
the result are parsed (human parsing backend of ``--regions-from``, embedded by default) and
the garment photo is segmented; then step 08's backend (``--backend``, default clip-lpips)
measures. The report is one JSON document: every number named for what it measures, the
resolution, the code and checkpoint behind it, and the reason for each metric it could not give.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vtryon.cli_common import console, handle_errors


def _parse(image: Any, ctx: Any, backend: str, category: str, garment: Any) -> Any:
    """The LIP-20 parsing of ``image`` by the human-parsing backend ``backend`` (None if no person)."""
    from vtryon.errors import InputError
    from vtryon.state import TryOnState
    from vtryon.steps import load_backend

    view = TryOnState(person=image, garment=garment, category=category)
    try:
        load_backend("human_parsing", backend)().run(view, ctx)
    except InputError:
        return None
    return view.parsing


def assess(
    result_path: Path,
    person_path: Path,
    garment_path: Path,
    *,
    category: str = "upper",
    backend: str = "clip-lpips",
    regions_from: str = "embedded",
    device: str = "auto",
    models_dir: Path | None = None,
    manifests: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """The quality report of ``result_path`` (a try-on of ``garment_path`` on ``person_path``)."""
    import cv2

    from vtryon.errors import InputError, UsageError
    from vtryon.imageio import load_image
    from vtryon.runner import pick_device
    from vtryon.state import CATEGORIES, TryOnState
    from vtryon.steps import load_backend
    from vtryon.steps.base import RunContext

    if category not in CATEGORIES:
        raise UsageError(f"--category {category!r} is not one of: {', '.join(CATEGORIES)}")
    quality_backend = load_backend("quality_assessment", backend)
    person = load_image(person_path, role="person photo")
    garment = load_image(garment_path, role="garment photo")
    result = load_image(result_path, role="result")
    ph, pw = person.shape[:2]
    rh, rw = result.shape[:2]
    if abs(rh / rw - ph / pw) > 0.02 * (ph / pw):
        raise InputError(
            f"result {result_path} is {rw}x{rh} but the person photo is {pw}x{ph}: a try-on keeps the photo's "
            "aspect ratio; pass the person photo the result was made from"
        )
    pool = None
    chosen = pick_device(device, needs_torch=bool(quality_backend.models))
    if quality_backend.models:
        from vtryon.models.pool import ModelPool

        pool = ModelPool(device=chosen, models_dir=models_dir, manifest=list(manifests) or None)
    ctx = RunContext(device=chosen, models=pool)

    state = TryOnState(person=person, garment=garment, category=category, person_path=person_path, garment_path=garment_path)
    state.tryon = state.result = result
    state.parsing = _parse(person, ctx, regions_from, category, garment)
    at_person_size = result if (rh, rw) == (ph, pw) else cv2.resize(result, (pw, ph), interpolation=cv2.INTER_AREA)
    result_parsing = _parse(at_person_size, ctx, regions_from, category, garment)
    if result_parsing is not None:
        state.aux["result_parsing"] = result_parsing
    try:
        load_backend("cloth_segmentation", "embedded")().run(state, ctx)
    except InputError:
        state.garment_mask = None  # the whole garment photo is then compared
    quality_backend().run(state, ctx)
    report = dict(state.quality or {})
    report["inputs"] = {"result": str(result_path), "person": str(person_path), "garment": str(garment_path), "category": category}
    report["regions_found_by"] = f"human_parsing:{regions_from}, cloth_segmentation:embedded"
    return report


def print_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"quality · {report.get('backend', '?')} · analysed at "
                  f"{report.get('analysed_size', {}).get('width', '?')}x{report.get('analysed_size', {}).get('height', '?')}",
                  title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("what it measures")
    measures = report.get("measures", {})
    for name, value in report.get("metrics", {}).items():
        table.add_row(name, f"{value:.4f}" if isinstance(value, (int, float)) else str(value), measures.get(name, ""))
    console.print(table)
    for name, reason in report.get("unavailable", {}).items():
        console.print(f"[dim]{name}: not measured: {reason}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``vtryon quality`` to the main app."""

    @app.command("quality")
    @handle_errors
    def quality(
        result: Annotated[Path, typer.Argument(help="The try-on image to assess.", show_default=False)],
        person: Annotated[Path, typer.Option("--person", help="The person photo the result was made from.", show_default=False)],
        garment: Annotated[Path, typer.Option("--garment", help="The garment photo that was put on.", show_default=False)],
        category: Annotated[str, typer.Option(help="What the garment is: upper, lower or dress.")] = "upper",
        backend: Annotated[str, typer.Option(help="Quality backend of step 08: clip-lpips, clip-l14-lpips or embedded.")] = "clip-lpips",
        regions_from: Annotated[str, typer.Option("--regions-from", help="Human-parsing backend that finds the garment and changed regions.")] = "embedded",
        output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Also write the JSON report to this file.")] = None,
        device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
        models_dir: Annotated[Optional[Path], typer.Option("--models-dir", help="Where checkpoints live.")] = None,
        manifest: Annotated[Optional[list[Path]], typer.Option("--manifest", help="Extra models.toml (repeatable).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report instead of the table.")] = False,
        debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    ) -> None:
        """Measure a try-on RESULT against its PERSON and GARMENT photos (one JSON report)."""
        from vtryon.imageio import save_text

        report = assess(
            result, person, garment, category=category, backend=backend, regions_from=regions_from,
            device=device, models_dir=models_dir, manifests=tuple(manifest or ()),
        )
        text = json.dumps(report, indent=2)
        if output is not None:
            save_text(text + "\n", output)
        if as_json:
            typer.echo(text)
        else:
            print_report(report)
            if output is not None:
                console.print(f"report: {output}", highlight=False)
