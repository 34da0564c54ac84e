"""Embedded geometric matching: garment landmarks from its outline matched to the body.

A thin-plate spline moves the garment's torso (shoulders, neckline, armpits, hem); each
sleeve is laid along its arm. Writes ``state.warp`` and, in ``aux["warped_parts"]``,
which garment part each person pixel shows.
"""

from __future__ import annotations

from typing import Any


from vtryon.errors import NoGarmentFound, NoPersonFound, UsageError
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext


class LandmarkTPSMatching(Backend):
    step = "geometric_matching"
    name = "embedded"
    description = "garment landmarks from the mask contour matched to pose/silhouette landmarks: TPS for the torso, arm-following strips for sleeves"
    reads = ("garment_mask", "keypoints", "parsing", "aux.person_mask")
    writes = ("warp", "aux.garment_landmarks", "aux.warped_parts")

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        from vtryon.vision.fit_warp import body_anchors, fit_garment_to_body
        from vtryon.vision.garment_landmarks import find_garment_landmarks

        if state.category != "upper":
            raise UsageError(
                f"--category {state.category}: the embedded profile fits upper-body garments only",
                hint="use --category upper, or a profile with a neural try-on (`vtryon models`)",
            )
        if state.garment_mask is None or state.keypoints is None or state.parsing is None:
            raise UsageError("geometric matching needs steps 01-03 first; do not start with --from geometric_matching")
        try:
            landmarks = find_garment_landmarks(state.garment_mask > 127, state.category)
        except ValueError as exc:
            raise NoGarmentFound(f"garment image {state.garment_path}: {exc}") from None
        person_mask = state.aux.get("person_mask")
        if person_mask is None:
            person_mask = state.parsing > 0
        try:
            body = body_anchors(state.keypoints, state.parsing, person_mask, state.aux.get("torso_skin"))
        except ValueError as exc:
            raise NoPersonFound(f"person image {state.person_path}: {exc}", hint="use a photo where both shoulders are visible") from None
        warp, parts = fit_garment_to_body(landmarks, body, state.size)
        state.warp = warp
        state.aux["garment_landmarks"] = landmarks
        state.aux["body_anchors"] = body
        state.aux["warped_parts"] = parts

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        from vtryon.visualize import draw_points, draw_warp_grid

        if state.warp is None:
            return {}
        w = state.warp
        names = tuple(n.replace("_", " ") for n in w.point_names)
        return {
            "garment landmarks": draw_points(state.garment, w.src_points, names, (255, 0, 0)),
            "body landmarks": draw_points(state.person, w.dst_points, names, (0, 200, 255)),
            "warp grid": draw_warp_grid(state.person, w.map_xy),
        }
