"""One MediaPipe pass over the person photo: pose (33 landmarks + segmentation), face mesh
and hands. The models ship inside the mediapipe wheel (0.10.21), so nothing is downloaded.

The result is computed once per image and shared by steps 01 and 02 through the run's memo.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

# MediaPipe pose landmark indices used here
MP_NOSE, MP_L_EYE, MP_R_EYE, MP_L_EAR, MP_R_EAR = 0, 2, 5, 7, 8
MP_L_SHOULDER, MP_R_SHOULDER, MP_L_ELBOW, MP_R_ELBOW, MP_L_WRIST, MP_R_WRIST = 11, 12, 13, 14, 15, 16
MP_L_HIP, MP_R_HIP, MP_L_KNEE, MP_R_KNEE, MP_L_ANKLE, MP_R_ANKLE = 23, 24, 25, 26, 27, 28
MP_L_HEEL, MP_R_HEEL, MP_L_FOOT, MP_R_FOOT = 29, 30, 31, 32

# Face-mesh indices of the face oval (MediaPipe's FACEMESH_FACE_OVAL, in contour order).
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
CHIN = 152
FOREHEAD_TOP = 10

# The pose model is run at this long side; the segmentation mask comes back at input size.
_WORK_LONG_SIDE = 1024


@dataclass
class BodyObservation:
    """What MediaPipe saw, in pixels of the analysed image."""

    pose_xy: np.ndarray | None  # (33, 2) float32
    pose_visibility: np.ndarray | None  # (33,) float32
    segmentation: np.ndarray  # (H, W) float32 in [0, 1], person probability
    face: np.ndarray | None  # (468, 2) float32 face mesh
    hands: list[np.ndarray]  # each (21, 2) float32

    @property
    def has_person(self) -> bool:
        return self.pose_xy is not None


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """MediaPipe's C++ core logs warnings straight to file descriptor 2 (absl ignores the
    GLOG variables); hide them so the terminal shows only vtryon's own output. VTRYON_DEBUG=1
    or --debug keeps them."""
    if os.environ.get("VTRYON_DEBUG") == "1" or "--debug" in sys.argv:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@lru_cache(maxsize=1)
def _models() -> dict[str, Any]:
    """Build the MediaPipe graphs once per process (they are reused across images)."""
    try:
        import mediapipe as mp
    except ImportError as exc:  # pragma: no cover - a broken install
        from vtryon.errors import PipelineError

        raise PipelineError(f"mediapipe is not importable ({exc})", hint="reinstall vtryon: pip install -e .") from None
    solutions = mp.solutions
    return {
        # model_complexity=1 is the landmark model bundled in the wheel; 0 and 2 would download.
        "pose": solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True),
        "face": solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1),
        "hands": solutions.hands.Hands(static_image_mode=True, max_num_hands=2),
        "selfie": solutions.selfie_segmentation.SelfieSegmentation(model_selection=0),
    }


def observe(image: np.ndarray) -> BodyObservation:
    """Run pose, segmentation, face mesh and hands on an RGB uint8 image."""
    with _quiet_native_stderr():
        return _observe(image)


def _observe(image: np.ndarray) -> BodyObservation:
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, _WORK_LONG_SIDE / max(h, w))
    work = image if scale == 1.0 else cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    work = np.ascontiguousarray(work)
    wh = np.array([work.shape[1], work.shape[0]], dtype=np.float32)
    models = _models()

    pose = models["pose"].process(work)
    pose_xy = pose_vis = None
    seg = np.zeros(work.shape[:2], np.float32)
    if pose.pose_landmarks is not None:
        lm = pose.pose_landmarks.landmark
        pose_xy = np.array([[p.x, p.y] for p in lm], np.float32) * wh
        pose_vis = np.array([p.visibility for p in lm], np.float32)
    if pose.segmentation_mask is not None:
        seg = np.asarray(pose.segmentation_mask, np.float32)
    # The selfie model draws thin limbs better; the pose model sees whole bodies. Take both.
    selfie = models["selfie"].process(work).segmentation_mask
    if selfie is not None:
        seg = np.maximum(seg, np.asarray(selfie, np.float32) * (seg > 0.05))

    face = None
    fm = models["face"].process(work)
    if fm.multi_face_landmarks:
        face = np.array([[p.x, p.y] for p in fm.multi_face_landmarks[0].landmark], np.float32) * wh

    hands = []
    hr = models["hands"].process(work)
    for hand in hr.multi_hand_landmarks or []:
        hands.append(np.array([[p.x, p.y] for p in hand.landmark], np.float32) * wh)

    if scale != 1.0:
        inv = 1.0 / scale
        pose_xy = None if pose_xy is None else pose_xy * inv
        face = None if face is None else face * inv
        hands = [hd * inv for hd in hands]
        seg = cv2.resize(seg, (w, h), interpolation=cv2.INTER_LINEAR)
    return BodyObservation(pose_xy, pose_vis, np.clip(seg, 0.0, 1.0), face, hands)


def observe_cached(image: np.ndarray, memo: dict[str, Any]) -> BodyObservation:
    """``observe`` once per run: steps 01 and 02 share the result through ``ctx.memo``."""
    key = ("mediapipe_body", id(image), image.shape)
    if key not in memo:
        memo[key] = observe(image)
    return memo[key]
