"""Embedded cloth warping: the dense map of step 04 applied to the garment and its mask."""

from __future__ import annotations

from typing import Any

import numpy as np

from vtryon.errors import UsageError
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext


def apply_warp(garment: np.ndarray, mask: np.ndarray, map_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resample garment (bilinear) and mask (bilinear, soft edge) at person size."""
    import cv2

    mx, my = map_xy[..., 0], map_xy[..., 1]
    warped = cv2.remap(garment, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    soft = cv2.remap(mask, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    soft[mx < 0] = 0
    return warped, soft


class RemapWarping(Backend):
    step = "cloth_warping"
    name = "embedded"
    description = "cv2.remap of garment and mask through step 04's sampling map"
    reads = ("garment", "garment_mask", "warp")
    writes = ("warped_garment", "warped_mask")

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        if state.warp is None or state.garment_mask is None:
            raise UsageError("cloth warping needs step 04's warp; do not start with --from cloth_warping")
        state.warped_garment, state.warped_mask = apply_warp(state.garment, state.garment_mask, state.warp.map_xy)

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        if state.warped_garment is None:
            return {}
        from vtryon.visualize import draw_warped

        return {"warped garment": draw_warped(state.person, state.warped_garment, state.warped_mask)}
