"""The state that travels through the eight steps, and the schemas shared between them.

Images are RGB uint8 HxWx3 at the boundaries. Each step reads the fields it needs and
writes its own; a backend's ``reads``/``writes`` declare which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# LIP, 20 classes. ATR, CIHP and the embedded parser are mapped into it.
LIP_LABELS: tuple[str, ...] = (
    "background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat",
    "socks", "pants", "jumpsuits", "scarf", "skirt", "face", "left-arm", "right-arm",
    "left-leg", "right-leg", "left-shoe", "right-shoe",
)
LIP = {name: i for i, name in enumerate(LIP_LABELS)}

# OpenPose COCO-18 body keypoints, in order. Left/right are the person's own.
OPENPOSE18: tuple[str, ...] = (
    "nose", "neck", "r-shoulder", "r-elbow", "r-wrist", "l-shoulder", "l-elbow", "l-wrist",
    "r-hip", "r-knee", "r-ankle", "l-hip", "l-knee", "l-ankle", "r-eye", "l-eye", "r-ear", "l-ear",
)
KP = {name: i for i, name in enumerate(OPENPOSE18)}
# Limbs for drawing a skeleton (pairs of OPENPOSE18 indices).
OPENPOSE18_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

CATEGORIES = ("upper", "lower", "dress")


@dataclass
class Keypoints:
    """OpenPose-18 keypoints in person-image pixels: ``xy`` (18, 2) float32, ``conf`` (18,)
    float32 in [0, 1]; a missing point has confidence 0."""

    xy: np.ndarray
    conf: np.ndarray

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float32).reshape(len(OPENPOSE18), 2)
        self.conf = np.asarray(self.conf, dtype=np.float32).reshape(len(OPENPOSE18))

    def get(self, name: str, min_conf: float = 0.3) -> np.ndarray | None:
        i = KP[name]
        return self.xy[i].copy() if self.conf[i] >= min_conf else None

    def as_list(self) -> list[list[float]]:
        return [[float(x), float(y), float(c)] for (x, y), c in zip(self.xy, self.conf)]


@dataclass
class Warp:
    """How the garment is moved onto the person (step 04's output).

    ``map_xy``: (H, W, 2) float32 at person size; for each person pixel the garment pixel it
    takes (NaN or negative where the garment does not reach), the form ``cv2.remap`` reads.
    ``src_points``/``dst_points``: the matched landmarks (garment / person pixels) and their
    names, for drawing and for the landmark-agreement metric.
    """

    map_xy: np.ndarray
    src_points: np.ndarray
    dst_points: np.ndarray
    point_names: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepRecord:
    step: str
    backend: str
    status: str  # "ran", "implicit in <backend>", "skipped", "failed"
    seconds: float = 0.0
    peak_rss_bytes: int = 0
    note: str = ""


@dataclass
class TryOnState:
    person: np.ndarray
    garment: np.ndarray
    category: str = "upper"
    seed: int = 0
    person_path: Path | None = None
    garment_path: Path | None = None
    # step outputs
    parsing: np.ndarray | None = None          # 01: uint8 LIP-20 label map, person size
    keypoints: Keypoints | None = None         # 02
    garment_mask: np.ndarray | None = None     # 03: uint8 {0, 255}, garment size
    warp: Warp | None = None                   # 04
    warped_garment: np.ndarray | None = None   # 05: RGB, person size
    warped_mask: np.ndarray | None = None      # 05: uint8 {0..255} soft mask, person size
    tryon: np.ndarray | None = None            # 06: RGB, person size
    result: np.ndarray | None = None           # 07: RGB, person size (or upscaled)
    quality: dict[str, Any] | None = None      # 08
    # auxiliary facts a backend produced for later steps or pictures (named, documented
    # by the backend that writes them), e.g. "person_mask", "face_landmarks", "changed_region"
    aux: dict[str, Any] = field(default_factory=dict)
    records: list[StepRecord] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the person image."""
        return self.person.shape[0], self.person.shape[1]
