"""Embedded virtual fitting: layered compositing with the old top removed and shading carried over."""

from __future__ import annotations

from typing import Any

import numpy as np

from vtryon.errors import UsageError
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext


class CompositeFitting(Backend):
    step = "virtual_fitting"
    name = "embedded"
    description = "layered composite: hair/face/arms kept in front, old top replaced by skin or background, person's shading carried onto the garment"
    reads = ("person", "parsing", "warped_garment", "warped_mask", "aux.warped_parts", "aux.skin_mask", "aux.torso_skin")
    writes = ("tryon", "aux.changed_region", "aux.garment_alpha")

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        from vtryon.vision.compositing import compose_upper

        if state.warped_garment is None or state.parsing is None:
            raise UsageError("virtual fitting needs steps 01-05 first; do not start with --from virtual_fitting")
        body = state.aux["body_anchors"]
        hips = None
        if "hip_l" in body.points and "hip_r" in body.points:
            hips = (body.points["hip_l"], body.points["hip_r"])
        skin = state.aux.get("skin_mask", np.zeros(state.size, bool))
        torso_skin = state.aux.get("torso_skin", np.zeros(state.size, bool))
        comp = compose_upper(
            state.person, state.parsing, state.warped_garment, state.warped_mask,
            state.aux["warped_parts"], skin, torso_skin, body.arms,
            (body.points["shoulder_l"], body.points["shoulder_r"]), body.shoulder_width, hips,
            neckline=state.warp.params.get("neckline") if state.warp is not None else None,
            depth=state.aux.get("person_depth"),  # written by the embedded+depth warping backend
        )
        state.tryon = comp.image
        state.aux["changed_region"] = comp.changed
        state.aux["garment_alpha"] = comp.garment_alpha
        state.aux["filled_region"] = comp.filled

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        if state.tryon is None:
            return {}
        from vtryon.visualize import draw_mask

        return {"try-on": state.tryon, "changed region": draw_mask(state.tryon, state.aux["changed_region"])}
