"""Embedded human parsing: MediaPipe's person mask split into LIP-20 regions (no download)."""

from __future__ import annotations

from typing import Any

from vtryon.errors import NoPersonFound
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext


class EmbeddedParsing(Backend):
    step = "human_parsing"
    name = "embedded"
    description = "MediaPipe pose/selfie segmentation + face mesh + hands, split into LIP-20 regions by pose and colour cues"
    reads = ("person",)
    writes = ("parsing", "aux.person_mask", "aux.skin_mask", "aux.torso_skin")

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        from vtryon.vision.body_regions import split_body_regions
        from vtryon.vision.mediapipe_body import observe_cached

        obs = observe_cached(state.person, ctx.memo)
        if not obs.has_person or obs.segmentation.max() < 0.5:
            raise NoPersonFound(f"person image {state.person_path}: no person found", hint="use a photo showing the person's upper body, facing the camera")
        try:
            regions = split_body_regions(state.person, obs)
        except ValueError as exc:
            raise NoPersonFound(f"person image {state.person_path}: {exc}", hint="use a photo showing the person's upper body, facing the camera") from None
        state.parsing = regions.parsing
        state.aux["person_mask"] = regions.person
        state.aux["skin_mask"] = regions.skin
        state.aux["torso_skin"] = regions.torso_skin

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        from vtryon.visualize import draw_parsing

        return {"parsing": draw_parsing(state.person, state.parsing)} if state.parsing is not None else {}
