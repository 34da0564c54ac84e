"""08 quality assessment with learned metrics: CLIP, LPIPS and BRISQUE on top of the embedded
image measurements.

Every number is named for what it measures; the report also gives the resolution each was
computed at, the code (and checkpoint) behind it, and for each metric that could not be
computed the reason, never a default number.

- ``clip_<model>_garment_similarity``: cosine similarity of the CLIP image embeddings of the
  garment photo (its mask on white) and of the result's garment region (on white).
- ``lpips_alex_person_outside_changed_region``: LPIPS v0.1 between the person photo and the
  result, averaged over the pixels outside the changed region (inside it the person's pixels
  are put back first, so only changes outside count).
- ``lpips_alex_warped_garment_vs_result_garment_region``: LPIPS between step 05's warped
  garment and the result, both on gray outside the garment region, averaged inside it.
- ``brisque_result`` / ``brisque_person``: BRISQUE (no reference; lower is better) of the
  result and, for comparison, of the person photo (the ``brisque`` package and its model).
- the embedded metrics (:mod:`vtryon.vision.image_metrics`), e.g. SSIM outside the change.

Regions: the garment region is step 05's warped mask, else the result's own parsing
(``aux["result_parsing"]``, the standalone ``vtryon quality`` command), else the region step
06 repainted, else the person's garment labels. The changed region is ``aux["changed_region"]``
when step 06 wrote it, else the union of the garment (and, for tops, arm) labels of the
person's and the result's parsings and the warped mask, dilated.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from vtryon.errors import ModelError
from vtryon.state import LIP, TryOnState
from vtryon.steps.base import Backend, RunContext

ANALYSIS_LONG_SIDE = 1024  # LPIPS and BRISQUE run at the person's size, capped here
CHANGED_DILATION = 0.015  # of the image height: the derived changed region's margin
GRAY = 128

GARMENT_LABELS = {
    "upper": (LIP["upper-clothes"], LIP["coat"], LIP["dress"], LIP["jumpsuits"]),
    "lower": (LIP["pants"], LIP["skirt"]),
    "dress": (LIP["dress"], LIP["upper-clothes"], LIP["coat"], LIP["skirt"], LIP["pants"], LIP["jumpsuits"]),
}
ALSO_CHANGED = {  # body parts a garment of the category re-draws
    "upper": (LIP["left-arm"], LIP["right-arm"]),
    "lower": (LIP["left-leg"], LIP["right-leg"]),
    "dress": (LIP["left-arm"], LIP["right-arm"], LIP["left-leg"], LIP["right-leg"]),
}

CLIP_CODE = "vtryon.archs.clip: OpenAI CLIP ViT (openai/CLIP clip/model.py @ d05afc4), image padded to a square on white"
LPIPS_CODE = "vtryon.archs.lpips_alex: LPIPS v0.1, AlexNet trunk (richzhang/PerceptualSimilarity @ 082bb24)"

MEASURES = {
    "lpips_alex_person_outside_changed_region": "LPIPS v0.1 (AlexNet) between the person photo and the result outside the changed region; 0 = identical, lower is better",
    "lpips_alex_warped_garment_vs_result_garment_region": "LPIPS v0.1 (AlexNet) between the warped garment (step 05) and the result inside the garment region; lower is better",
    "brisque_result": "BRISQUE no-reference quality of the result; lower is better (roughly 0-100)",
    "brisque_person": "BRISQUE of the person photo, the reference level for brisque_result; lower is better",
    "preservation_ssim_outside_change": "SSIM (luminance, Gaussian sigma 1.5) between the person photo and the result outside the changed region; 1 = untouched",
    "unchanged_fraction_outside_change": "fraction of pixels outside the changed region that are bit-identical to the person photo",
    "changed_fraction": "fraction of the image inside the changed region",
    "garment_colour_delta_e2000": "median CIEDE2000 between the warped garment and the result where the garment shows; lower is better",
    "garment_dominant_colour_delta_e2000": "CIEDE2000 between the dominant colours of the garment photo and the result's garment; lower is better",
    "torso_coverage": "fraction of the torso covered by the new garment",
    "old_top_remnant_fraction": "fraction of the old top's pixels neither covered nor repainted; lower is better",
    "landmark_error_rel_shoulder_width": "mean distance between warped garment landmarks and their body targets, per shoulder width; lower is better",
}


def _clip_measure(model_id: str) -> str:
    return f"cosine similarity of CLIP ({model_id}) image embeddings of the garment photo and the result's garment region; 1 = same, higher is better"


# --- images and regions -----------------------------------------------------------------


def _resize(image: np.ndarray, hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    import cv2

    if image.shape[:2] == hw:
        return image
    flag = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(image, (hw[1], hw[0]), interpolation=flag)


def analysis_size(hw: tuple[int, int]) -> tuple[int, int]:
    h, w = hw
    s = min(1.0, ANALYSIS_LONG_SIDE / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))


def _mask(m: Any, hw: tuple[int, int], threshold: int = 127) -> np.ndarray:
    m = np.asarray(m)
    if m.dtype == bool:
        m = m.astype(np.uint8) * 255
    return _resize(m, hw, nearest=True) > threshold


def garment_region(state: TryOnState, hw: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """Where the new garment is in the result, and where that knowledge comes from."""
    labels = GARMENT_LABELS.get(state.category, GARMENT_LABELS["upper"])
    if state.warped_mask is not None:
        return _mask(state.warped_mask, hw), "warped garment mask (step 05)"
    if state.aux.get("result_parsing") is not None:
        return _mask(np.isin(state.aux["result_parsing"], labels), hw, 0), f"{state.category} garment labels of the result's parsing"
    if state.aux.get("changed_region") is not None:
        return _mask(state.aux["changed_region"], hw), "region step 06 repainted (aux.changed_region)"
    if state.parsing is not None:
        return _mask(np.isin(state.parsing, labels), hw, 0), f"{state.category} garment labels of the person's parsing"
    return None, "no garment region is known (no warped mask, parsing or changed region)"


def changed_region(state: TryOnState, hw: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """The pixels the try-on may have changed, and where that knowledge comes from."""
    import cv2

    if state.aux.get("changed_region") is not None:
        return _mask(state.aux["changed_region"], hw), "region step 06 repainted (aux.changed_region)"
    labels = GARMENT_LABELS.get(state.category, GARMENT_LABELS["upper"]) + ALSO_CHANGED.get(state.category, ())
    parts, names = [], []
    for name, parsing in (("person", state.parsing), ("result", state.aux.get("result_parsing"))):
        if parsing is not None:
            parts.append(_mask(np.isin(parsing, labels), hw, 0))
            names.append(f"the {name}'s parsing")
    if state.warped_mask is not None:
        parts.append(_mask(state.warped_mask, hw, 0))
        names.append("the warped mask")
    if not parts:
        return None, "no changed region is known (no aux.changed_region, parsing or warped mask)"
    union = np.logical_or.reduce(parts).astype(np.uint8)
    r = max(1, round(CHANGED_DILATION * hw[0]))
    union = cv2.dilate(union, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return union > 0, f"{state.category} garment{' and limb' if ALSO_CHANGED.get(state.category) else ''} labels of {' and '.join(names)}, dilated by {r} px"


def on_white_crop(image: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """The mask's bounding box of ``image`` with everything outside the mask white."""
    ys, xs = np.nonzero(mask)
    if len(ys) < 16:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = image[y0:y1, x0:x1].copy()
    crop[~mask[y0:y1, x0:x1]] = 255
    return crop


# --- the learned metrics ----------------------------------------------------------------


def clip_similarity(model: Any, a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of the CLIP image embeddings of two RGB images."""
    import torch

    from vtryon.archs.clip import preprocess

    p = next(model.parameters())
    res = model.image_resolution
    batch = torch.cat([preprocess(a, res), preprocess(b, res)]).to(p.device, p.dtype)
    with torch.inference_mode():
        f = model.encode_image(batch).float()
    f = f / f.norm(dim=1, keepdim=True)
    return float((f[0] * f[1]).sum())


def lpips_masked(model: Any, a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """LPIPS spatial map of two RGB images averaged over ``mask``."""
    import torch

    p = next(model.parameters())

    def t(x: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(np.array(x, np.float32)).permute(2, 0, 1)[None] / 127.5 - 1.0).to(p.device, p.dtype)

    with torch.inference_mode():
        spatial = model(t(a), t(b), spatial=True)[0, 0].float().cpu().numpy()
    return float(spatial[mask].mean())


@lru_cache(maxsize=1)
def _brisque_model() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from brisque import BRISQUE

    return BRISQUE(url=False)


def brisque_score(image: np.ndarray) -> float:
    import warnings

    with warnings.catch_warnings():  # the package's numpy and scipy deprecations, not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(_brisque_model().score(np.ascontiguousarray(image)))


def brisque_version() -> str | None:
    try:
        import brisque
    except ImportError:
        return None
    return f"brisque {getattr(brisque, '__version__', '?')} (its bundled SVR model, LIVE-trained)"


# --- the backend ------------------------------------------------------------------------


class _Report:
    """Collects metrics, what they measure, and why others are absent."""

    def __init__(self, base: dict[str, Any]) -> None:
        self.data = base
        self.data.setdefault("metrics", {})
        self.data.setdefault("metric_code", {})
        self.measures: dict[str, str] = {}
        self.unavailable: dict[str, str] = {}
        self.resolutions: dict[str, list[int]] = {}
        self.models: dict[str, dict[str, Any]] = {}

    def add(self, name: str, value: float, measures: str, resolution: tuple[int, int], model: dict[str, Any] | None = None) -> None:
        self.data["metrics"][name] = round(float(value), 5)
        self.measures[name] = measures
        self.resolutions[name] = [int(resolution[0]), int(resolution[1])]
        if model:
            self.models[name] = model

    def absent(self, name: str, reason: str) -> None:
        self.data["metrics"].pop(name, None)
        self.unavailable[name] = reason

    def finish(self) -> dict[str, Any]:
        metrics = self.data["metrics"]
        for name in metrics:
            self.measures.setdefault(name, MEASURES.get(name, "see vtryon.vision.image_metrics"))
        for name, value in list(metrics.items()):
            if value is None:  # the embedded backend's "not measurable" marker
                del metrics[name]
                self.unavailable.setdefault(name, self.data.get("notes", {}).get(name, "not measurable on this image"))
        self.data["measures"] = {k: self.measures[k] for k in metrics}
        base = self.data.get("resolution", {})  # the embedded metrics' (the person's size)
        if "height" in base:
            for name in metrics:
                self.resolutions.setdefault(name, [int(base["height"]), int(base["width"])])
        self.data["metric_resolution"] = {k: self.resolutions[k] for k in metrics if k in self.resolutions}
        self.data["unavailable"] = self.unavailable
        self.data["models"] = self.models
        return self.data


class CLIPLPIPSQuality(Backend):
    step: ClassVar[str] = "quality_assessment"
    name: ClassVar[str] = "clip-lpips"
    description: ClassVar[str] = "CLIP ViT-B/32 garment similarity, LPIPS (AlexNet) preservation and garment fidelity, BRISQUE, plus the embedded metrics"
    reads: ClassVar[tuple[str, ...]] = (
        "person", "garment", "garment_mask", "parsing", "warped_garment", "warped_mask", "tryon", "result",
        "aux.changed_region", "aux.result_parsing",
    )
    writes: ClassVar[tuple[str, ...]] = ("quality",)
    clip_id: ClassVar[str] = "clip_vit_b32"
    lpips_heads_id: ClassVar[str] = "lpips_alex_v0_1"
    lpips_trunk_id: ClassVar[str] = "alexnet_imagenet"
    models: ClassVar[tuple[str, ...]] = ("clip_vit_b32", "lpips_alex_v0_1", "alexnet_imagenet")

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        import torch

        from vtryon import __version__

        result = state.result if state.result is not None else state.tryon
        if result is None:
            state.quality = {"backend": self.name, "metrics": {}, "unavailable": {"*": "no try-on image was produced (the run stopped earlier)"}}
            return
        hw = analysis_size(state.size)
        person = _resize(state.person, hw)
        result_a = _resize(result, hw)
        garment_mask, garment_src = garment_region(state, hw)
        changed, changed_src = changed_region(state, hw)

        report = _Report(self._embedded(state, ctx, changed))
        report.data["backend"] = self.name
        report.data["result_size"] = {"height": int(result.shape[0]), "width": int(result.shape[1])}
        report.data["analysed_size"] = {"height": hw[0], "width": hw[1]}
        report.data["regions"] = {"garment": garment_src, "changed": changed_src}
        report.data["metric_code"].update({"vtryon": __version__, "torch": torch.__version__})

        self._clip(state, ctx, report, result_a, garment_mask, garment_src)
        self._lpips(state, ctx, report, person, result_a, hw, garment_mask, garment_src, changed, changed_src)
        self._brisque(report, person, result_a, hw)
        state.quality = report.finish()

    # -- parts -------------------------------------------------------------------------------
    def _embedded(self, state: TryOnState, ctx: RunContext, changed: np.ndarray | None) -> dict[str, Any]:
        """The embedded backend's report, given the changed region derived here when step 06 wrote none."""
        from vtryon.steps.quality_assessment.embedded import ImageMetrics

        aux = dict(state.aux)
        if changed is not None:  # as a bool mask at the person's size, whatever form step 06 wrote
            aux["changed_region"] = _resize(changed.astype(np.uint8), state.size, nearest=True) > 0
        view = dataclasses.replace(state, aux=aux, quality=None)
        ImageMetrics().run(view, ctx)
        return dict(view.quality or {})

    def _model(self, ctx: RunContext, model_id: str) -> Any:
        if ctx.models is None:
            raise ModelError(f"no model pool: checkpoint {model_id} cannot be loaded")
        return ctx.models.load(model_id)

    @staticmethod
    def _provenance(ctx: RunContext, model_id: str) -> dict[str, Any]:
        try:
            entry = ctx.models.entry(model_id)
            return {"id": entry.id, "file": entry.file, "sha256": entry.sha256}
        except Exception:  # provenance is informative; the metric itself was computed
            return {"id": model_id}

    def _clip(self, state: TryOnState, ctx: RunContext, report: _Report, result: np.ndarray, garment_mask: np.ndarray | None, garment_src: str) -> None:
        name = f"clip_{self.clip_id.removeprefix('clip_')}_garment_similarity"
        if garment_mask is None:
            report.absent(name, garment_src)
            return
        photo_mask = np.ones(state.garment.shape[:2], bool) if state.garment_mask is None else np.asarray(state.garment_mask) > 127
        photo = on_white_crop(state.garment, photo_mask)
        region = on_white_crop(result, garment_mask)
        if photo is None or region is None:
            report.absent(name, "the garment photo's mask or the result's garment region is empty")
            return
        try:
            model = self._model(ctx, self.clip_id)
        except ModelError as exc:
            report.absent(name, str(exc))
            return
        res = model.image_resolution
        report.add(name, clip_similarity(model, photo, region), _clip_measure(self.clip_id), (res, res), self._provenance(ctx, self.clip_id))
        report.data["metric_code"]["clip"] = CLIP_CODE

    def _lpips(
        self, state: TryOnState, ctx: RunContext, report: _Report, person: np.ndarray, result: np.ndarray, hw: tuple[int, int],
        garment_mask: np.ndarray | None, garment_src: str, changed: np.ndarray | None, changed_src: str,
    ) -> None:
        from vtryon.archs.lpips_alex import assemble

        outside_name = "lpips_alex_person_outside_changed_region"
        garment_name = "lpips_alex_warped_garment_vs_result_garment_region"
        wanted = {}
        if changed is None:
            report.absent(outside_name, changed_src)
        elif not (~changed).any():
            report.absent(outside_name, "the changed region covers the whole image")
        else:
            wanted[outside_name] = True
        if state.warped_garment is None:
            report.absent(garment_name, "no warped garment (step 05 did not run, or a backend warped implicitly)")
        elif garment_mask is None or garment_mask.sum() < 16:
            report.absent(garment_name, garment_src if garment_mask is None else "the garment region is empty")
        else:
            wanted[garment_name] = True
        if not wanted:
            return
        try:
            model = assemble(self._model(ctx, self.lpips_heads_id), self._model(ctx, self.lpips_trunk_id))
        except ModelError as exc:
            for name in wanted:
                report.absent(name, str(exc))
            return
        provenance = {"heads": self._provenance(ctx, self.lpips_heads_id), "trunk": self._provenance(ctx, self.lpips_trunk_id)}
        if outside_name in wanted:
            kept = np.where(changed[..., None], person, result)  # only changes outside the region count
            value = lpips_masked(model, person, kept, ~changed)
            report.add(outside_name, value, MEASURES[outside_name], hw, provenance)
        if garment_name in wanted:
            warped = _resize(state.warped_garment, hw)
            a = np.where(garment_mask[..., None], warped, GRAY).astype(np.uint8)
            b = np.where(garment_mask[..., None], result, GRAY).astype(np.uint8)
            report.add(garment_name, lpips_masked(model, a, b, garment_mask), MEASURES[garment_name], hw, provenance)
        report.data["metric_code"]["lpips"] = LPIPS_CODE

    def _brisque(self, report: _Report, person: np.ndarray, result: np.ndarray, hw: tuple[int, int]) -> None:
        version = brisque_version()
        if version is None:
            reason = "the brisque package is not installed (pip install 'vtryon[quality]')"
            report.absent("brisque_result", reason)
            report.absent("brisque_person", reason)
            return
        report.add("brisque_result", brisque_score(result), MEASURES["brisque_result"], hw)
        report.add("brisque_person", brisque_score(person), MEASURES["brisque_person"], hw)
        report.data["metric_code"]["brisque"] = version

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        return {}


class CLIPL14LPIPSQuality(CLIPLPIPSQuality):
    name = "clip-l14-lpips"
    description = "as clip-lpips with CLIP ViT-L/14 (larger, slower) for the garment similarity"
    clip_id = "clip_vit_l14"
    models = ("clip_vit_l14", "lpips_alex_v0_1", "alexnet_imagenet")
