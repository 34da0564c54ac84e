"""Embedded pose: MediaPipe pose (bundled model) mapped to OpenPose-18 (neck = mid-shoulders)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vtryon.errors import NoPersonFound
from vtryon.state import Keypoints, TryOnState
from vtryon.steps.base import Backend, RunContext

# OpenPose-18 index -> MediaPipe pose index (neck, 1, is computed)
_MP_FOR_OPENPOSE = {0: 0, 2: 12, 3: 14, 4: 16, 5: 11, 6: 13, 7: 15, 8: 24, 9: 26, 10: 28, 11: 23, 12: 25, 13: 27, 14: 5, 15: 2, 16: 8, 17: 7}


def mediapipe_to_openpose18(xy: np.ndarray, visibility: np.ndarray, shape: tuple[int, int]) -> Keypoints:
    h, w = shape
    out_xy = np.zeros((18, 2), np.float32)
    conf = np.zeros(18, np.float32)
    for op, mp in _MP_FOR_OPENPOSE.items():
        out_xy[op] = xy[mp]
        conf[op] = visibility[mp]
    out_xy[1] = 0.5 * (xy[11] + xy[12])
    conf[1] = min(visibility[11], visibility[12])
    outside = (out_xy[:, 0] < 0) | (out_xy[:, 0] >= w) | (out_xy[:, 1] < 0) | (out_xy[:, 1] >= h)
    conf[outside] = 0.0  # out of frame: missing, as the schema says
    out_xy[conf == 0] = 0.0
    return Keypoints(out_xy, conf)


class MediaPipePose(Backend):
    step = "pose"
    name = "embedded"
    description = "MediaPipe pose (model_complexity=1, bundled in the wheel) mapped to OpenPose-18; visibility as confidence"
    reads = ("person",)
    writes = ("keypoints",)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        from vtryon.vision.mediapipe_body import observe_cached

        obs = observe_cached(state.person, ctx.memo)
        if not obs.has_person:
            raise NoPersonFound(f"person image {state.person_path}: no person found", hint="use a photo showing the person's upper body, facing the camera")
        state.keypoints = mediapipe_to_openpose18(obs.pose_xy, obs.pose_visibility, state.size)

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        from vtryon.visualize import draw_skeleton

        return {"pose": draw_skeleton(state.person, state.keypoints)} if state.keypoints is not None else {}
