"""CLI commands for many pairs: `vtryon batch` and `vtryon bench`.

Thin: options are parsed here; the work is in vtryon.batch and vtryon.bench.
Nothing heavy is imported at ``import vtryon.cli`` time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vtryon.cli_common import console, err_console, handle_errors
from vtryon.errors import EXIT_FAILURE

ModelsDir = Annotated[Optional[Path], typer.Option("--models-dir", help="Where checkpoints live (default: $VTRYON_HOME or ~/.cache/vtryon/models).")]
Manifests = Annotated[Optional[list[Path]], typer.Option("--manifest", help="Extra models.toml adding or overriding checkpoints (repeatable).")]
Profile = Annotated[str, typer.Option(help="Backends per step: auto, embedded, or a profile from `vtryon models`.")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or mps (neural profiles only).")]
Precision = Annotated[str, typer.Option(help="auto, fp32, fp16 or bf16.")]
Seed = Annotated[int, typer.Option(help="Seed for every random choice; same seed, same results.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary instead of the table.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]


class RichProgress:
    """Pair-steps done of the total, with the rate and the time left, on stderr."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def start(self, total: int, pairs: int, unit: str = "pair-steps") -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
            console=err_console, transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(f"{pairs} pairs", total=max(total, 1), note="")

    def advance(self, units: int, note: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=units, note=note[:60])

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def batch(
    source: Annotated[Path, typer.Argument(help="A .csv/.jsonl list of pairs (person, garment, optional category, output), or a folder of person photos.", show_default=False)],
    garments: Annotated[Optional[Path], typer.Argument(help="With a person folder: the folder of garment photos.", show_default=False)] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the results, report.jsonl and summary.json.")] = Path("tryon_batch"),
    pairing: Annotated[str, typer.Option(help="Two folders: cross (every person x every garment) or by-name (same file name).")] = "cross",
    category: Annotated[str, typer.Option(help="Category of pairs that do not give one: upper, lower or dress.")] = "upper",
    profile: Profile = "auto",
    device: Device = "auto",
    precision: Precision = "auto",
    offload: Annotated[str, typer.Option(help="none: keep models resident; model: park a step's models on the CPU after the step; sequential: free them after the step (per chunk).")] = "none",
    seed: Seed = 0,
    chunk: Annotated[int, typer.Option(help="Pairs that pass through the steps together; each step loads its models once per chunk at most. More uses more memory.")] = 8,
    shard: Annotated[Optional[str], typer.Option(help="I/N: take only this process's stable share of the pairs (N processes cover every pair once).")] = None,
    work: Annotated[Optional[Path], typer.Option("--work", help="Work folder for intermediate results (default: OUTPUT/.vtryon-batch; shared storage for several machines).")] = None,
    keep_work: Annotated[bool, typer.Option("--keep-work", help="Keep each finished pair's intermediate step files.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="Output image type of pairs the list does not name: png, jpg or webp.")] = "png",
    ray: Annotated[Optional[str], typer.Option("--ray", help="Run on Ray: `local` (start one here), `auto` (the running cluster) or ray://HOST:PORT. Needs `pip install vtryon\\[ray]`.")] = None,
    use: Annotated[Optional[list[str]], typer.Option("--use", help="Override one step's backend: STEP=BACKEND, e.g. --use pose=openpose (repeatable).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Denoising steps (diffusion profiles).")] = None,
    guidance: Annotated[Optional[float], typer.Option(help="Guidance scale (diffusion profiles).")] = None,
    models_dir: ModelsDir = None,
    manifest: Manifests = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Try on many pairs: step-major (each step's models load once), resumable after a crash, shardable.

    Rerun the same command to resume: finished steps and pairs are not redone. A pair that fails (unreadable image, no person found) is reported and the batch goes on; the exit code is 1 if any pair failed.
    """
    from vtryon.batch import BatchSettings, load_pairs, run_batch
    from vtryon.batch.pairs import parse_shard
    from vtryon.batch.report import print_summary
    from vtryon.runner import parse_backend_overrides

    options = {k: v for k, v in {"steps": steps, "guidance": guidance}.items() if v is not None}
    settings = BatchSettings(
        output=output, work=work, profile=profile, device=device, precision=precision, offload=offload, seed=seed,
        chunk=chunk, keep_work=keep_work, shard=parse_shard(shard), models_dir=models_dir,
        manifests=tuple(manifest or ()), options=options, backends=parse_backend_overrides(use or []),
    )
    pairs = load_pairs(source, garments, pairing=pairing, category=category, fmt="." + fmt.lstrip("."))
    summary = run_batch(settings, pairs, progress=None if as_json else RichProgress(), ray_address=ray)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        print_summary(summary, console)
    if summary["failed"]:
        raise typer.Exit(EXIT_FAILURE)


def bench(
    sources: Annotated[Optional[list[Path]], typer.Argument(help="Where the pairs come from: .csv/.jsonl lists, or folders with person/ and garment/ (or person_*/garment_* files).", show_default=False)] = None,
    profile: Profile = "embedded",
    device: Annotated[str, typer.Option(help="cpu, cuda or mps (auto: the best available).")] = "auto",
    pairs: Annotated[int, typer.Option("--pairs", help="How many pairs to measure throughput on.")] = 4,
    offload: Annotated[Optional[list[str]], typer.Option("--offload", help="Offload tiers to compare (repeatable; default all: none, model, sequential).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for bench.json and bench.png.")] = Path("out/bench"),
    chunk: Annotated[int, typer.Option(help="Chunk size of the step-major runs.")] = 8,
    no_processes: Annotated[bool, typer.Option("--no-processes", help="Skip the separate-process runs (`vtryon run` per pair, `vtryon batch`).")] = False,
    use: Annotated[Optional[list[str]], typer.Option("--use", help="Override one step's backend: STEP=BACKEND (repeatable).")] = None,
    precision: Precision = "auto",
    models_dir: ModelsDir = None,
    manifest: Manifests = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Measure a profile: per-step cold/warm time and memory, checkpoint load speed, pairs per minute (separate runs, one process, step-major batch), the offload tiers side by side. Writes JSON and a PNG chart."""
    from vtryon.bench.suite import BenchOptions, print_bench, run_bench
    from vtryon.runner import parse_backend_overrides

    opts = BenchOptions(
        sources=list(sources or []), profile=profile, device=device, pairs=pairs, offloads=list(offload or []),
        out=out, chunk=chunk, processes=not no_processes, precision=precision, models_dir=models_dir,
        manifests=tuple(manifest or ()), backends=parse_backend_overrides(use or []),
    )
    result = run_bench(opts, log=(lambda msg: err_console.print(msg, highlight=False)) if not as_json else None)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_bench(result, console)


def register(app: typer.Typer) -> None:
    """Add ``vtryon batch`` and ``vtryon bench`` to the main app."""
    app.command("batch")(handle_errors(batch))
    app.command("bench")(handle_errors(bench))
