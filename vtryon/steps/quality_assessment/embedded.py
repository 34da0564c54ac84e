"""Embedded quality assessment: image measurements that need no learned model."""

from __future__ import annotations

from typing import Any

import numpy as np

from vtryon.state import LIP, TryOnState
from vtryon.steps.base import Backend, RunContext


def _torso_quad(state: TryOnState) -> np.ndarray:
    import cv2

    kp = state.keypoints
    out = np.zeros(state.size, bool)
    if kp is None:
        return out
    pts = [kp.get(n) for n in ("r-shoulder", "l-shoulder", "l-hip", "r-hip")]
    if pts[0] is None or pts[1] is None:
        return out
    if pts[2] is None or pts[3] is None:  # hips out of frame: the torso down to the frame's edge
        h = state.size[0]
        sw = float(np.linalg.norm(pts[0] - pts[1]))
        pts[2] = np.array([pts[1][0], min(h - 1.0, pts[1][1] + 1.4 * sw)])
        pts[3] = np.array([pts[0][0], min(h - 1.0, pts[0][1] + 1.4 * sw)])
    centre = np.mean(pts, axis=0)
    quad = np.array([centre + 0.8 * (p - centre) for p in pts], np.int32)  # inset: the torso's core
    m = np.zeros(state.size, np.uint8)
    cv2.fillConvexPoly(m, quad, 1)
    return m.astype(bool)


class ImageMetrics(Backend):
    step = "quality_assessment"
    name = "embedded"
    description = "SSIM outside the changed region, CIEDE2000 colour fidelity, torso coverage, old-top remnants, landmark agreement"
    reads = ("person", "garment", "garment_mask", "warped_garment", "result", "parsing", "warp", "aux.changed_region", "aux.garment_alpha")
    writes = ("quality",)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        from vtryon.vision import image_metrics as im

        result = state.result if state.result is not None else state.tryon
        metrics: dict[str, float] = {}
        notes: dict[str, str] = {}
        if result is None:
            state.quality = im.report({}, state.size, {"absent": "no try-on image was produced (the run stopped earlier)"})
            return
        changed = state.aux.get("changed_region")
        if changed is not None:
            changed = np.asarray(changed) > 0  # backends may write 0/255 or bool
        if result.shape[:2] != state.size:
            notes["resolution"] = "the result was upscaled; measured on the result resized to the person's size"
            import cv2

            result = cv2.resize(result, (state.size[1], state.size[0]), interpolation=cv2.INTER_AREA)
        if changed is not None:
            ssim, same = im.preservation_ssim(state.person, result, changed)
            metrics["preservation_ssim_outside_change"] = ssim
            metrics["unchanged_fraction_outside_change"] = same
            metrics["changed_fraction"] = float(changed.mean())
        alpha = state.aux.get("garment_alpha")
        if alpha is not None and state.warped_garment is not None and state.garment_mask is not None:
            region = alpha > 0.9
            per_px, dominant = im.garment_colour_fidelity(state.warped_garment, result, region, state.garment, state.garment_mask > 127)
            metrics["garment_colour_delta_e2000"] = per_px
            metrics["garment_dominant_colour_delta_e2000"] = dominant
            metrics["torso_coverage"] = im.torso_coverage(_torso_quad(state), alpha > 0.5)
            if state.parsing is not None and changed is not None:
                old = np.isin(state.parsing, [LIP["upper-clothes"], LIP["coat"]])
                metrics["old_top_remnant_fraction"] = float((old & ~changed).sum() / max(1, old.sum()))
        if state.warp is not None and state.keypoints is not None:
            sw = state.keypoints.get("r-shoulder"), state.keypoints.get("l-shoulder")
            if sw[0] is not None and sw[1] is not None:
                metrics["landmark_error_rel_shoulder_width"] = im.landmark_error(
                    state.warp.map_xy, state.warp.src_points, state.warp.dst_points, float(np.linalg.norm(sw[0] - sw[1]))
                )
        missing = [k for k, v in metrics.items() if v is None or (isinstance(v, float) and np.isnan(v))]
        for k in missing:
            notes[k] = "not measurable on this image (empty region)"
        state.quality = im.report(metrics, state.size, {"notes": notes} if notes else None)

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        return {}
