"""The step-06 flow both diffusion engines share: options, the agnostic mask, framing,
one cached engine per (checkpoints, device, dtype, offload), and the paste-back.

An engine (OOTDiffusion's, CatVTON's) only turns engine-size pictures into engine-size
results: ``engine.generate(person, garment, mask, settings, category) -> [RGB uint8]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vtryon.errors import InputError, PipelineError, UsageError
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext

DEFAULT_SIZE = (768, 1024)  # (width, height) of the released checkpoints
MAX_STEPS = 1000
MAX_SAMPLES = 16


@dataclass(frozen=True)
class Settings:
    steps: int
    guidance: float
    samples: int
    seed: int
    repaint: bool = False
    vae_tiling: bool = False


def settings_from(ctx: RunContext, *, steps: int, guidance: float) -> Settings:
    """``ctx.options`` ("steps", "guidance", "samples", "repaint", "vae_tiling") over the
    engine's defaults, checked."""
    opts = ctx.options or {}
    try:
        s = Settings(
            steps=int(opts.get("steps", steps)),
            guidance=float(opts.get("guidance", guidance)),
            samples=int(opts.get("samples", 1)),
            seed=int(ctx.seed),
            repaint=bool(opts.get("repaint", False)),
            vae_tiling=bool(opts.get("vae_tiling", False)),
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad diffusion option: {exc}") from None
    if not 1 <= s.steps <= MAX_STEPS:
        raise UsageError(f"--steps {s.steps}: give 1 to {MAX_STEPS} denoising steps")
    if not 0.0 <= s.guidance <= 30.0:
        raise UsageError(f"--guidance {s.guidance}: give a guidance scale from 0 to 30")
    if not 1 <= s.samples <= MAX_SAMPLES:
        raise UsageError(f"--samples {s.samples}: give 1 to {MAX_SAMPLES} samples")
    return s


def engine_size(entry: Any, default: tuple[int, int], multiple: int = 8) -> tuple[int, int]:
    """(width, height) the engine works at: the entry's ``capabilities.input_size`` (H, W)
    when the manifest gives one (an extra manifest may override it), else ``default``."""
    given = tuple(getattr(getattr(entry, "capabilities", None), "input_size", ()) or ())
    w, h = (int(given[1]), int(given[0])) if len(given) == 2 else default
    if w <= 0 or h <= 0 or w % multiple or h % multiple:
        raise UsageError(f"manifest entry {entry.id!r}: input_size {h}x{w} must be positive multiples of {multiple}")
    return w, h


class DiffusionFitting(Backend):
    """Base of the diffusion try-on backends (subclasses set the class attributes and
    implement :meth:`build_engine`)."""

    step = "virtual_fitting"
    reads = ("person", "garment", "parsing", "keypoints", "category")
    writes = ("tryon", "aux.changed_region", "aux.tryon_samples", "aux.agnostic_person")
    implicit = ("geometric_matching", "cloth_warping")

    default_steps: ClassVar[int] = 20
    default_guidance: ClassVar[float] = 2.0
    accelerator_precision: ClassVar[str] = "fp16"
    arm_width: ClassVar[int] = 60
    size_model: ClassVar[str] = ""  # manifest id whose capabilities.input_size gives the engine size
    categories: ClassVar[tuple[str, ...]] = ("upper", "lower", "dress")

    def __init__(self) -> None:
        self._engine: Any = None
        self._engine_key: tuple | None = None

    # -- to implement --------------------------------------------------------------------
    def build_engine(self, paths: dict[str, Path], ctx: RunContext, dtype: Any, size: tuple[int, int], settings: Settings) -> Any:
        raise NotImplementedError

    def default_size(self, ctx: RunContext) -> tuple[int, int]:
        return DEFAULT_SIZE

    def engine_variant(self, ctx: RunContext) -> tuple:
        """What else selects the weights (CatVTON's version)."""
        return ()

    def model_mask(self, mask: np.ndarray) -> np.ndarray:
        """The engine-size mask the model is given (and the paste-back uses)."""
        return mask

    def feather(self, settings: Settings, size: tuple[int, int]) -> float:
        return 0.0

    # -- shared flow ---------------------------------------------------------------------
    def check_category(self, category: str) -> None:
        if category not in self.categories:
            raise UsageError(f"{self.name} is trained on {'/'.join(self.categories)} garments only, not --category {category}")

    def engine(self, ctx: RunContext, settings: Settings) -> Any:
        from vtryon.diffusion.precision import compute_dtype

        if ctx.models is None:
            raise PipelineError(f"{self.name} needs the model pool (its checkpoints: {', '.join(self.models)})")
        paths = {mid: Path(ctx.models.path(mid)) for mid in self.models}
        size = engine_size(ctx.models.entry(self.size_model), self.default_size(ctx))
        dtype = compute_dtype(ctx.device, ctx.precision, self.accelerator_precision)
        key = (tuple(sorted((k, str(v)) for k, v in paths.items())), ctx.device, str(dtype), ctx.offload, size, settings.vae_tiling, self.engine_variant(ctx))
        if key != self._engine_key:
            self.release()
            self._engine = self.build_engine(paths, ctx, dtype, size, settings)
            self._engine_key = key
        return self._engine

    def release(self) -> None:
        if self._engine is not None:
            self._engine.placement.release()
        self._engine, self._engine_key = None, None

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        from vtryon.diffusion.framing import crop, fit_inside, frame_for, paste_back, uncrop
        from vtryon.vision.agnostic_mask import agnostic_mask

        settings = settings_from(ctx, steps=self.default_steps, guidance=self.default_guidance)
        self.check_category(state.category)
        if state.parsing is None or state.keypoints is None:
            raise UsageError(f"{self.name} builds its mask from steps 01-02 (parsing and keypoints); do not start with --from virtual_fitting")
        region = agnostic_mask(state.parsing, state.keypoints, state.category, arm_width=self.arm_width)
        if not region.any():
            raise InputError(f"the person photo shows no {state.category}-body clothing to replace (empty try-on mask)")
        engine = self.engine(ctx, settings)
        frame = frame_for(region > 0, engine.size)
        person = crop(state.person, frame)
        mask = self.model_mask(crop(region, frame, nearest=True))
        garment = fit_inside(state.garment, engine.size)
        images = engine.generate(person, garment, mask, settings, state.category)
        feather = self.feather(settings, engine.size)
        results = [paste_back(state.person, img, mask, frame, feather=feather) for img in images]
        state.tryon = results[0]
        state.aux["changed_region"] = uncrop(mask, frame, state.size, nearest=True)
        state.aux["agnostic_person"] = np.where(mask[..., None] > 0, np.uint8(127), person)
        if len(results) > 1:
            state.aux["tryon_samples"] = results
        if ctx.offload == "sequential":  # the pipeline's contract: freed after the step
            self.release()

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "agnostic_person" in state.aux:
            out["agnostic"] = state.aux["agnostic_person"]
        if state.tryon is not None:
            out["try-on"] = state.tryon
        for i, extra in enumerate(state.aux.get("tryon_samples", [])[1:], start=2):
            out[f"sample {i}"] = extra
        return out
