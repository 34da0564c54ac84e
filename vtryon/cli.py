"""The vtryon command line. Thin: parse options, call vtryon.runner, print with Rich."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from vtryon import __version__
from vtryon.cli_common import console, handle_errors

app = typer.Typer(
    name="vtryon",
    help="Virtual try-on from the command line: `vtryon run person.jpg garment.jpg` puts the garment on the person.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        console.print(f"vtryon {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Virtual try-on in eight steps: parsing, pose, cloth segmentation, matching, warping, fitting, post-processing, quality."""


def _default_output(person: Path, garment: Path) -> Path:
    return Path(f"tryon_{person.stem}_{garment.stem}.png")


@app.command()
@handle_errors
def run(
    person: Annotated[Path, typer.Argument(help="Photo of the person (JPEG, PNG or WebP).", show_default=False)],
    garment: Annotated[Path, typer.Argument(help="Product photo of the garment on a plain background.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Result image (.png, .jpg, .webp). Default: tryon_<person>_<garment>.png here.")] = None,
    profile: Annotated[str, typer.Option(help="Backends per step: auto (best installed), embedded (no download), or a profile from `vtryon models`.")] = "auto",
    category: Annotated[str, typer.Option(help="What the garment is: upper, lower or dress.")] = "upper",
    use: Annotated[Optional[list[str]], typer.Option("--use", help="Override one step's backend: STEP=BACKEND, e.g. --use pose=openpose (repeatable; `vtryon models` lists backends).")] = None,
    save_steps: Annotated[Optional[Path], typer.Option("--save-steps", help="Folder for one picture per step, a contact sheet and summary.json.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps (neural profiles only).")] = "auto",
    precision: Annotated[str, typer.Option(help="auto (fp32 on CPU, fp16/bf16 on accelerators), fp32, fp16 or bf16.")] = "auto",
    offload: Annotated[str, typer.Option(help="none: keep models resident; model: move each step's models to the device only for the step; sequential: free them after the step.")] = "none",
    seed: Annotated[int, typer.Option(help="Seed for every random choice (diffusion noise, GAN noise); same seed, same result.")] = 0,
    start: Annotated[Optional[str], typer.Option("--from", help="Start at this step (earlier steps are not run; their outputs must not be needed).")] = None,
    stop: Annotated[Optional[str], typer.Option("--to", help="Stop after this step, e.g. --to pose.")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Denoising steps (diffusion profiles).")] = None,
    guidance: Annotated[Optional[float], typer.Option(help="Guidance scale (diffusion profiles).")] = None,
    samples: Annotated[Optional[int], typer.Option(help="Number of samples (diffusion profiles).")] = None,
    outscale: Annotated[Optional[float], typer.Option(help="Upscale factor of the result (profiles with super-resolution in step 07).")] = None,
    restore_faces: Annotated[bool, typer.Option("--restore-faces", help="Restore faces with GFPGAN in step 07 (changes identity a little; off by default).")] = False,
    models_dir: Annotated[Optional[Path], typer.Option("--models-dir", help="Where checkpoints live (default: $VTRYON_HOME or ~/.cache/vtryon/models).")] = None,
    manifest: Annotated[Optional[list[Path]], typer.Option("--manifest", help="Extra models.toml adding or overriding checkpoints (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary instead of the table.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Put GARMENT on PERSON and write the result."""
    from vtryon.runner import RunRequest, parse_backend_overrides, run_tryon
    from vtryon.report import print_run_table

    options = {k: v for k, v in {"steps": steps, "guidance": guidance, "samples": samples, "outscale": outscale}.items() if v is not None}
    if restore_faces:
        options["restore_faces"] = True
    req = RunRequest(
        person=person,
        garment=garment,
        output=output or _default_output(person, garment),
        profile=profile,
        category=category,
        save_steps=save_steps,
        device=device,
        precision=precision,
        offload=offload,
        seed=seed,
        start=start,
        stop=stop,
        models_dir=models_dir,
        manifests=tuple(manifest or ()),
        options=options,
        backends=parse_backend_overrides(use or []),
    )
    outcome = run_tryon(req)
    if as_json:
        typer.echo(json.dumps(outcome.summary(), indent=2))
    else:
        print_run_table(outcome, console)


def _register_subcommands() -> None:
    from vtryon import cli_batch, cli_models, cli_quality

    cli_models.register(app)
    cli_batch.register(app)
    cli_quality.register(app)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
