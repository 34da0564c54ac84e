"""Keypoint helpers shared by the pose backends: COCO-17 -> OpenPose-18, the top-down person
crop (HRNet's centre/scale affine), heatmap decoding and the flip test.

The crop and decoding follow leoxiaobin/deep-high-resolution-net.pytorch (``_xywh2cs``,
``get_affine_transform`` without rotation, ``get_final_preds``, ``flip_back``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vtryon.state import OPENPOSE18, Keypoints

COCO17: tuple[str, ...] = (
    "nose", "l-eye", "r-eye", "l-ear", "r-ear", "l-shoulder", "r-shoulder", "l-elbow", "r-elbow",
    "l-wrist", "r-wrist", "l-hip", "r-hip", "l-knee", "r-knee", "l-ankle", "r-ankle",
)
# Left/right joint pairs that swap under a horizontal flip (COCO-17 indices).
COCO17_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
# For each OpenPose-18 point, its COCO-17 index; the neck (None) is the mid-shoulder point.
_FROM_COCO: tuple[int | None, ...] = tuple(
    None if name == "neck" else COCO17.index(name) for name in OPENPOSE18
)

PIXEL_STD = 200.0  # the original expresses box sizes in units of 200 px
BOX_PADDING = 1.25


def coco17_to_openpose18(xy: np.ndarray, conf: np.ndarray) -> Keypoints:
    """COCO-17 points (17, 2) and confidences (17,) in OpenPose-18 order; the neck is the
    midpoint of the shoulders, as confident as the less confident shoulder (0 if one is missing)."""
    xy = np.asarray(xy, dtype=np.float32).reshape(17, 2)
    conf = np.asarray(conf, dtype=np.float32).reshape(17)
    out_xy = np.zeros((len(OPENPOSE18), 2), np.float32)
    out_conf = np.zeros(len(OPENPOSE18), np.float32)
    for i, j in enumerate(_FROM_COCO):
        if j is not None:
            out_xy[i], out_conf[i] = xy[j], conf[j]
    ls, rs = COCO17.index("l-shoulder"), COCO17.index("r-shoulder")
    neck = OPENPOSE18.index("neck")
    if conf[ls] > 0 and conf[rs] > 0:
        out_xy[neck] = (xy[ls] + xy[rs]) / 2
        out_conf[neck] = min(conf[ls], conf[rs])
    out_xy[out_conf <= 0] = 0
    return Keypoints(out_xy, out_conf)


def drop_outside(kp: Keypoints, size_hw: tuple[int, int]) -> Keypoints:
    """Points that fall outside the image become missing (confidence 0, position 0)."""
    h, w = size_hw
    x, y = kp.xy[:, 0], kp.xy[:, 1]
    outside = (x < 0) | (y < 0) | (x > w - 1) | (y > h - 1)
    conf = np.where(outside, 0.0, kp.conf).astype(np.float32)
    xy = np.where((conf > 0)[:, None], kp.xy, 0.0).astype(np.float32)
    return Keypoints(xy, conf)


# ---------------------------------------------------------------- top-down crop

def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x, y, w, h) of the nonzero pixels of ``mask``, None when it is empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    x0, y0 = float(xs.min()), float(ys.min())
    return x0, y0, float(xs.max()) - x0 + 1, float(ys.max()) - y0 + 1


def box_to_center_scale(
    box: Sequence[float], aspect_ratio: float, padding: float = BOX_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """The original's ``_xywh2cs``: the box widened or heightened to ``aspect_ratio`` (w/h),
    in units of 200 px, times ``padding``."""
    x, y, w, h = (float(v) for v in box)
    center = np.array([x + w * 0.5, y + h * 0.5], np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w / PIXEL_STD, h / PIXEL_STD], np.float32) * padding
    return center, scale


def crop_matrix(center: np.ndarray, scale: np.ndarray, output_wh: Sequence[int], inverse: bool = False) -> np.ndarray:
    """2x3 affine from the image to an ``output_wh`` crop (or back): the box centre goes to the
    crop centre and the box width (``scale[0] * 200``) to the crop width, with no rotation.
    This is what the original's ``get_affine_transform(center, scale, 0, size)`` solves for."""
    out_w, out_h = float(output_wh[0]), float(output_wh[1])
    s = out_w / (float(scale[0]) * PIXEL_STD)
    cx, cy = float(center[0]), float(center[1])
    if inverse:
        return np.array([[1 / s, 0, cx - out_w / (2 * s)], [0, 1 / s, cy - out_h / (2 * s)]], np.float64)
    return np.array([[s, 0, out_w / 2 - s * cx], [0, s, out_h / 2 - s * cy]], np.float64)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (N, 2) points."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def crop(image: np.ndarray, center: np.ndarray, scale: np.ndarray, output_wh: Sequence[int]) -> np.ndarray:
    """The person crop the network sees (bilinear, zeros outside the image)."""
    import cv2

    matrix = crop_matrix(center, scale, output_wh)
    return cv2.warpAffine(image, matrix, (int(output_wh[0]), int(output_wh[1])), flags=cv2.INTER_LINEAR)


# ---------------------------------------------------------------- heatmap decoding

def flip_back(heatmaps: np.ndarray, pairs: Sequence[tuple[int, int]], shift: bool = True) -> np.ndarray:
    """Heatmaps of the mirrored input (N, J, H, W) back in the original's frame: mirrored
    horizontally, left/right channels swapped, and (``shift``) moved one pixel right as the
    original's SHIFT_HEATMAP does to undo the flip's off-by-one."""
    out = np.ascontiguousarray(heatmaps[..., ::-1])
    for a, b in pairs:
        out[:, [a, b]] = out[:, [b, a]]
    if shift:
        out[..., 1:] = out[..., :-1].copy()
    return out


def heatmap_peaks(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per joint of (J, H, W) heatmaps: (x, y) of the maximum moved a quarter pixel toward the
    higher neighbour (away from the border), and the maximum. A joint whose maximum is <= 0
    gets (0, 0), as the original's ``get_max_preds``."""
    j, h, w = heatmaps.shape
    flat = heatmaps.reshape(j, -1)
    idx = flat.argmax(axis=1)
    maxvals = flat[np.arange(j), idx].astype(np.float32)
    coords = np.stack([idx % w, idx // w], axis=1).astype(np.float32)
    coords[maxvals <= 0] = 0
    for p in range(j):
        px, py = int(coords[p, 0]), int(coords[p, 1])
        if 1 < px < w - 1 and 1 < py < h - 1:  # the original's strict bounds
            hm = heatmaps[p]
            diff = np.array([hm[py, px + 1] - hm[py, px - 1], hm[py + 1, px] - hm[py - 1, px]])
            coords[p] += np.sign(diff).astype(np.float32) * 0.25
    return coords, maxvals


def heatmaps_to_image(heatmaps: np.ndarray, center: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(J, 2) image coordinates and (J,) maxima from (J, H, W) crop heatmaps (``transform_preds``)."""
    coords, maxvals = heatmap_peaks(heatmaps)
    h, w = heatmaps.shape[1:]
    return transform_points(coords, crop_matrix(center, scale, (w, h), inverse=True)).astype(np.float32), maxvals
