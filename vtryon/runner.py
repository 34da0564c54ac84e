"""One try-on from two files: read and check the inputs, choose the profile, run the
pipeline, write the result (and step pictures) atomically. The CLI and batch call this."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtryon.errors import UsageError
from vtryon.imageio import load_image, save_image, save_text
from vtryon.pipeline import Pipeline
from vtryon.profiles import Profile, auto_order, get_profile
from vtryon.state import CATEGORIES, StepRecord, TryOnState
from vtryon.steps.base import RunContext

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
OFFLOADS = ("none", "model", "sequential")


@dataclass
class RunRequest:
    person: Path
    garment: Path
    output: Path
    profile: str = "auto"
    category: str = "upper"
    save_steps: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    offload: str = "none"
    seed: int = 0
    start: str | None = None
    stop: str | None = None
    models_dir: Path | None = None
    manifests: tuple[Path, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)  # --use STEP=BACKEND overrides


@dataclass
class RunOutcome:
    state: TryOnState
    profile: Profile
    profile_reason: str
    device: str
    output: Path | None
    step_pictures: list[Path]
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {
            "person": str(self.state.person_path),
            "garment": str(self.state.garment_path),
            "category": self.state.category,
            "profile": self.profile.name,
            "profile_reason": self.profile_reason,
            "device": self.device,
            "output": str(self.output) if self.output else None,
            "step_pictures": [str(p) for p in self.step_pictures],
            "seconds": round(self.seconds, 3),
            "steps": [
                {
                    "step": r.step,
                    "backend": r.backend,
                    "status": r.status,
                    "seconds": round(r.seconds, 4),
                    "peak_rss_mb": round(r.peak_rss_bytes / 2**20, 1),
                    **({"note": r.note} if r.note else {}),
                }
                for r in self.state.records
            ],
            "quality": self.state.quality,
        }


def validate(req: RunRequest) -> None:
    """Check the options before anything is decoded or loaded."""
    for value, allowed, flag in (
        (req.category, CATEGORIES, "--category"),
        (req.device, DEVICES, "--device"),
        (req.precision, PRECISIONS, "--precision"),
        (req.offload, OFFLOADS, "--offload"),
    ):
        if value not in allowed:
            raise UsageError(f"{flag} {value!r} is not one of: {', '.join(allowed)}")
    if req.output.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise UsageError(f"output {req.output}: use a .png, .jpg or .webp file name")
    if req.output.exists() and req.output.is_dir():
        raise UsageError(f"output {req.output} is a folder; give a file name such as {req.output / 'result.png'}")


def resolve_profile(name: str, models_dir: Path | None = None, manifests: tuple[Path, ...] = ()) -> tuple[Profile, str]:
    """The profile to use and why; ``auto`` takes the first of auto_order whose checkpoints are ready."""
    if name != "auto":
        return get_profile(name), "chosen with --profile"
    reasons = []
    for candidate in auto_order():
        profile = get_profile(candidate)
        ids = profile.models()
        if not ids:
            return profile, "auto: " + "".join(f"{r}; " for r in reasons) + f"{candidate} needs no checkpoint"
        from vtryon.models.status import missing_models

        problems = missing_models(ids, models_dir=models_dir, manifest=list(manifests) or None)
        if not problems:
            return profile, f"auto: every checkpoint of {candidate} is installed and verified"
        reasons.append(f"{candidate} lacks {', '.join(mid for mid, _ in problems)}")
    raise UsageError("no profile is runnable: " + "; ".join(reasons), hint="see `vtryon models`")


def preflight(profile: Profile, req: RunRequest) -> None:
    """Every checkpoint the chosen backends need is installed and intact, checked before any
    image is decoded or any model loaded (sizes and cached hashes; no network)."""
    ids = profile.models()
    if not ids:
        return
    from vtryon.errors import CheckpointMissing
    from vtryon.models.status import missing_models

    problems = missing_models(ids, models_dir=req.models_dir, manifest=list(req.manifests) or None)
    if problems:
        listed = "; ".join(f"{mid} {problem}" for mid, problem in problems)
        raise CheckpointMissing(f"profile {profile.name} cannot run: {listed}", hint="`vtryon models` shows every profile's status")


def parse_backend_overrides(values: list[str]) -> dict[str, str]:
    """``["pose=openpose", ...]`` -> {"pose": "openpose"}; steps and backends checked."""
    from vtryon.steps import STEPS, load_backend

    out: dict[str, str] = {}
    for value in values:
        step, sep, name = value.partition("=")
        step = step.strip().replace("-", "_").replace(" ", "_")
        if not sep or not name.strip():
            raise UsageError(f"--use {value!r}: write STEP=BACKEND, e.g. --use pose=openpose")
        if step not in STEPS:
            raise UsageError(f"--use {value!r}: unknown step {step!r}; steps are: {', '.join(STEPS)}")
        load_backend(step, name.strip())  # unknown backend: a clear error listing the known ones
        out[step] = name.strip()
    return out


def with_backends(profile: Profile, overrides: dict[str, str]) -> Profile:
    return Profile(f"{profile.name}+use", profile.description, {**profile.backends, **overrides})


def pick_device(requested: str, needs_torch: bool) -> str:
    if requested != "auto":
        if requested != "cpu":
            import torch

            ok = torch.cuda.is_available() if requested == "cuda" else torch.backends.mps.is_available()
            if not ok:
                raise UsageError(f"--device {requested}: no {requested} device is available here; use --device cpu")
        return requested
    if not needs_torch:
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def make_context(req: RunRequest, profile: Profile, device: str) -> RunContext:
    pool = None
    if profile.models():
        from vtryon.models.pool import ModelPool

        pool = ModelPool(
            device=device,
            precision=req.precision,
            offload=req.offload,
            models_dir=req.models_dir,
            manifest=list(req.manifests) or None,
        )
    return RunContext(device=device, precision=req.precision, offload=req.offload, seed=req.seed, options=dict(req.options), models=pool)


def run_tryon(req: RunRequest, on_step: Callable[[StepRecord], None] | None = None) -> RunOutcome:
    t0 = time.perf_counter()
    validate(req)
    profile, reason = resolve_profile(req.profile, req.models_dir, req.manifests)
    if req.backends:
        profile = with_backends(profile, req.backends)
        reason += "; --use " + ", ".join(f"{k}={v}" for k, v in req.backends.items())
    preflight(profile, req)
    person = load_image(req.person, role="person image")
    garment = load_image(req.garment, role="garment image")
    device = pick_device(req.device, needs_torch=bool(profile.models()))
    ctx = make_context(req, profile, device)
    state = TryOnState(person=person, garment=garment, category=req.category, seed=req.seed, person_path=req.person, garment_path=req.garment)
    pipeline = Pipeline(profile, ctx, start=req.start, stop=req.stop, on_step=on_step)
    pipeline.run(state)
    final = state.result if state.result is not None else state.tryon
    output = save_image(final, req.output) if final is not None else None
    pictures: list[Path] = []
    if req.save_steps is not None:
        from vtryon.visualize import write_step_pictures

        pictures = write_step_pictures(state, pipeline, req.save_steps)
    outcome = RunOutcome(state, profile, reason, device, output, pictures, time.perf_counter() - t0)
    if req.save_steps is not None:
        save_text(json.dumps(outcome.summary(), indent=2), req.save_steps / "summary.json")
    return outcome
