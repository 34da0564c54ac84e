"""Embedded post-processing: the garment's colour balanced to the scene's light, edges cleaned."""

from __future__ import annotations

from typing import Any

import numpy as np

from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext

MAX_GAIN = 0.12  # white balance never moves a channel by more than 12%


def white_balance_gain(product_background: tuple[int, int, int], scene_background: np.ndarray) -> np.ndarray:
    """Per-channel gain taking the product photo's light to the scene's.

    Both backgrounds are near-neutral studio backdrops: their colour casts tell the light.
    Only the cast (chromaticity) is transferred, not the brightness.
    """
    p = np.asarray(product_background, np.float64) + 1.0
    s = np.asarray(scene_background, np.float64) + 1.0
    gain = (s / s.mean()) / (p / p.mean())
    return np.clip(gain, 1 - MAX_GAIN, 1 + MAX_GAIN)


class Harmonize(Backend):
    step = "post_processing"
    name = "embedded"
    description = "white balance of the garment to the scene (backdrop colour casts), light edge smoothing"
    reads = ("tryon", "person", "parsing", "aux.garment_alpha", "aux.garment_background")
    writes = ("result",)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        import cv2

        if state.tryon is None:
            return
        alpha = state.aux.get("garment_alpha")
        product_bg = state.aux.get("garment_background")
        if alpha is None or product_bg is None or state.parsing is None:
            state.result = state.tryon.copy()
            return
        background = state.parsing == 0
        scene_bg = np.median(state.person[background], axis=0) if background.sum() > 500 else np.array([200.0, 200.0, 200.0])
        gain = white_balance_gain(product_bg, scene_bg)
        out = state.tryon.copy()
        ys, xs = np.nonzero(alpha > 0)
        if len(ys):
            y0, y1 = max(0, ys.min() - 2), ys.max() + 3
            x0, x1 = max(0, xs.min() - 2), xs.max() + 3
            img = out[y0:y1, x0:x1].astype(np.float32)
            a = alpha[y0:y1, x0:x1, None]
            balanced = img * (1 - a) + np.clip(img * gain[None, None, :], 0, 255) * a
            # soften the one-pixel seam where the garment meets what it was pasted on
            edge = cv2.morphologyEx((a[..., 0] > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(bool)
            blurred = cv2.GaussianBlur(balanced, (3, 3), 0.8)
            balanced[edge] = blurred[edge]
            out[y0:y1, x0:x1] = np.clip(balanced + 0.5, 0, 255).astype(np.uint8)
        changed = state.aux.get("changed_region")
        if changed is not None:
            changed = np.asarray(changed) > 0
            out[~changed] = state.person[~changed]
        state.result = out
        state.aux["white_balance_gain"] = gain.round(4).tolist()

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        return {"result": state.result} if state.result is not None else {}
