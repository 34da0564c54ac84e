"""Embedded cloth segmentation: the garment against a plain product-photo background."""

from __future__ import annotations

from typing import Any

import numpy as np

from vtryon.errors import NoGarmentFound
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext

MIN_FRACTION = 0.02  # a garment covering less of the photo is not a product shot


class ProductPhotoSegmentation(Backend):
    step = "cloth_segmentation"
    name = "embedded"
    description = "background modelled from the border (smooth colour surface) + edges, refined by GrabCut"
    reads = ("garment",)
    writes = ("garment_mask", "aux.garment_background")

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        from vtryon.vision.garment_mask import segment_garment

        seg = segment_garment(state.garment)
        fraction = float(seg.mask.mean())
        if fraction < MIN_FRACTION or fraction > 0.97:
            raise NoGarmentFound(
                f"garment image {state.garment_path}: no garment found against the background",
                hint="use a product photo of the garment alone on a plain background",
            )
        state.garment_mask = np.where(seg.mask, 255, 0).astype(np.uint8)
        state.aux["garment_background"] = seg.background_rgb

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        from vtryon.visualize import draw_mask

        return {"garment mask": draw_mask(state.garment, state.garment_mask)} if state.garment_mask is not None else {}
