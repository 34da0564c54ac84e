"""Faces for face restoration: find them, align them to the FFHQ 512 template, paste them back.

Landmarks come from MediaPipe (bundled in its wheel, nothing downloaded): the full-range face
detector finds each face, then the face mesh (468 points + irises) runs on a crop around it,
so small faces in a full-body photo are found too. The five points facexlib's RetinaFace gives
GFPGAN are taken from the mesh: the iris centres, the nose (mesh point 4) and the mouth
corners (61, 291), in image order (the eye on the image's left first).

Alignment is the similarity transform to facexlib's FFHQ template (cv2.estimateAffinePartial2D
with LMEDS, as FaceRestoreHelper); the crop's border is filled with facexlib's gray. Pasting
back warps the restored face with the inverse transform (scaled when the background was
upscaled) and blends it through an eroded, feathered mask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

# facexlib FaceRestoreHelper, face_size 512: left eye, right eye, nose, left and right mouth corner
FFHQ_TEMPLATE_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043], [313.08905, 371.15118]],
    np.float32,
)
BORDER_GRAY = (135, 133, 132)  # facexlib's border value, RGB
MESH_LEFT_IRIS, MESH_RIGHT_IRIS = 468, 473  # image-left, image-right eye of an upright frontal face
MESH_NOSE, MESH_MOUTH_LEFT, MESH_MOUTH_RIGHT = 4, 61, 291
_CROP_MARGIN = 1.0  # the mesh sees the detector's box grown by this much on every side
_MESH_SIDE = 384  # crops are resized so their long side is at most this (the mesh works at 192)


@dataclass(frozen=True)
class Face:
    """A face: five landmarks (x, y) in image pixels, the detector's score and box (x0, y0, x1, y1)."""

    points: np.ndarray
    score: float
    box: tuple[float, float, float, float]

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.points[1] - self.points[0]))


@lru_cache(maxsize=1)
def _graphs() -> tuple[Any, Any]:
    os.environ.setdefault("GLOG_minloglevel", "2")
    import mediapipe as mp

    detector = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
    return detector, mesh


def _boxes(image: np.ndarray, min_score: float) -> list[tuple[float, tuple[float, float, float, float]]]:
    detector, _ = _graphs()
    h, w = image.shape[:2]
    found = detector.process(np.ascontiguousarray(image))
    out = []
    for det in found.detections or []:
        score = float(det.score[0])
        if score < min_score:
            continue
        b = det.location_data.relative_bounding_box
        out.append((score, (b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h)))
    return sorted(out, key=lambda item: -item[0])


def _five_points(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    """The five landmarks of the face in ``box`` from the face mesh on a crop around it."""
    import cv2

    _, mesh = _graphs()
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * _CROP_MARGIN)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    cx0, cy0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    cx1, cy1 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    if cx1 - cx0 < 8 or cy1 - cy0 < 8:
        return None
    crop = image[cy0:cy1, cx0:cx1]
    zoom = min(1.0, _MESH_SIDE / max(crop.shape[:2]))
    if zoom < 1.0:
        crop = cv2.resize(crop, (round(crop.shape[1] * zoom), round(crop.shape[0] * zoom)), interpolation=cv2.INTER_AREA)
    result = mesh.process(np.ascontiguousarray(crop))
    if not result.multi_face_landmarks:
        return None
    lm = result.multi_face_landmarks[0].landmark
    idx = (MESH_LEFT_IRIS, MESH_RIGHT_IRIS, MESH_NOSE, MESH_MOUTH_LEFT, MESH_MOUTH_RIGHT)
    pts = np.array([[lm[i].x * crop.shape[1], lm[i].y * crop.shape[0]] for i in idx], np.float32)
    return pts / zoom + np.array([cx0, cy0], np.float32)


def detect_faces(image: np.ndarray, *, max_faces: int = 8, min_score: float = 0.5, min_eye_distance: float = 5.0) -> list[Face]:
    """Faces of an RGB uint8 image with their five landmarks, best first.

    A face whose mesh cannot be fitted, or whose eyes are closer than ``min_eye_distance``
    pixels (facexlib's threshold), is left out: it is too small to restore.
    """
    faces = []
    for score, box in _boxes(image, min_score)[:max_faces]:
        pts = _five_points(image, box)
        if pts is None:
            continue
        face = Face(pts, score, box)
        if face.eye_distance >= min_eye_distance:
            faces.append(face)
    return faces


def alignment_matrix(points: np.ndarray, size: int = 512) -> np.ndarray:
    """The 2x3 similarity that maps the five points onto the FFHQ template at ``size``."""
    import cv2

    template = FFHQ_TEMPLATE_512 * (size / 512.0)
    matrix, _ = cv2.estimateAffinePartial2D(np.asarray(points, np.float32), template, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("the face landmarks are degenerate; no similarity transform fits them")
    return matrix


def warp_face(image: np.ndarray, matrix: np.ndarray, size: int = 512) -> np.ndarray:
    """The aligned ``size`` x ``size`` face crop (RGB uint8)."""
    import cv2

    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_GRAY)


def inverse_matrix(matrix: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Aligned face -> background pixels, for a background ``scale`` times the analysed image
    (pixel centres kept: x_out = s * x_in + (s - 1) / 2)."""
    import cv2

    inv = cv2.invertAffineTransform(matrix) * scale
    inv[:, 2] += 0.5 * (scale - 1.0)
    return inv


def paste_face(background: np.ndarray, face: np.ndarray, matrix: np.ndarray, *, scale: float = 1.0) -> np.ndarray:
    """``background`` (RGB uint8) with the restored aligned ``face`` blended in.

    ``matrix`` is the alignment of the analysed image; ``scale`` how much larger the
    background is. The mask is the warped face square, eroded and feathered by about a
    twentieth of the face's size so no edge of the crop shows.
    """
    import cv2

    h, w = background.shape[:2]
    size = face.shape[0]
    inv = inverse_matrix(matrix, scale)
    warped = cv2.warpAffine(face, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(np.ones((size, size), np.float32), inv, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.erode(mask, np.ones((2, 2), np.uint8) if scale < 2 else np.ones((int(2 * scale), int(2 * scale)), np.uint8))
    area = float(mask.sum())
    edge = max(1, int(area**0.5) // 20)
    mask = cv2.erode(mask, np.ones((edge, edge), np.uint8))
    mask = cv2.GaussianBlur(mask, (2 * edge + 1, 2 * edge + 1), 0)[..., None]
    out = mask * warped.astype(np.float32) + (1.0 - mask) * background.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
