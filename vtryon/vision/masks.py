"""Mask helpers: refinement with GrabCut, morphology, components, feathering."""

from __future__ import annotations

import cv2
import numpy as np

# GrabCut is cubic-ish in pixels; it runs at this long side and the mask is upsampled.
GRABCUT_LONG_SIDE = 320


def disk(radius: int) -> np.ndarray:
    r = max(1, int(radius))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def grow(mask: np.ndarray, radius: float) -> np.ndarray:
    """Dilate a bool mask by a disk of ``radius``; a distance transform, so large radii are cheap."""
    if radius <= 0:
        return mask.astype(bool)
    return cv2.distanceTransform((~mask.astype(bool)).astype(np.uint8), cv2.DIST_L2, 5) <= radius


def shrink(mask: np.ndarray, radius: float) -> np.ndarray:
    """Erode a bool mask by a disk of ``radius`` (distance transform)."""
    if radius <= 0:
        return mask.astype(bool)
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5) > radius


def close(mask: np.ndarray, radius: float) -> np.ndarray:
    """Morphological closing by a disk of ``radius``."""
    return shrink(grow(mask, radius), radius)


def largest_component(mask: np.ndarray, min_fraction: float = 0.0) -> np.ndarray:
    """Keep the largest connected component (and any other at least ``min_fraction`` of it)."""
    m = (mask > 0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return m.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = int(areas.max())
    keep = [i + 1 for i, a in enumerate(areas) if a == best or (min_fraction > 0 and a >= min_fraction * best)]
    return np.isin(labels, keep)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill regions not connected to the image border."""
    m = (mask > 0).astype(np.uint8)
    h, w = m.shape
    border = np.zeros((h, w), bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    _, labels = cv2.connectedComponents(1 - m, connectivity=4)
    outside = np.unique(labels[border & (m == 0)])
    return ~(np.isin(labels, outside) & (m == 0))


def grabcut_refine(image: np.ndarray, prior: np.ndarray, sure_fg: np.ndarray, sure_bg: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Refine a mask with GrabCut at a reduced size.

    ``prior`` is the probable foreground; ``sure_fg``/``sure_bg`` are fixed. Returns a bool
    mask at the image size.
    """
    h, w = prior.shape
    scale = min(1.0, GRABCUT_LONG_SIDE / max(h, w))
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    gc = np.full((size[1], size[0]), cv2.GC_PR_BGD, np.uint8)

    def down(m: np.ndarray) -> np.ndarray:
        return cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)

    gc[down(prior)] = cv2.GC_PR_FGD
    gc[down(sure_bg)] = cv2.GC_BGD
    gc[down(sure_fg)] = cv2.GC_FGD
    if not (gc == cv2.GC_FGD).any() and not (gc == cv2.GC_PR_FGD).any():
        return np.zeros((h, w), bool)
    if (gc == cv2.GC_BGD).sum() + (gc == cv2.GC_PR_BGD).sum() < 16:
        return prior.astype(bool)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation uses OpenCV's RNG: keep results repeatable
    cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.float32)
    # Upsample the soft result and cut at 0.5 for a smooth edge.
    return cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR) > 0.5


def feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """A soft float32 [0, 1] version of a binary mask, blurred across its edge."""
    m = mask.astype(np.float32)
    if radius <= 0:
        return m
    k = int(2 * round(radius * 2) + 1)
    return cv2.GaussianBlur(m, (k, k), radius)


def capsule(shape: tuple[int, int], points: list[np.ndarray], radius: float) -> np.ndarray:
    """A bool mask of the thick polyline through ``points`` (a limb)."""
    m = np.zeros(shape, np.uint8)
    pts = [tuple(int(round(v)) for v in p) for p in points if p is not None]
    r = max(1, int(round(radius)))
    for a, b in zip(pts, pts[1:]):
        cv2.line(m, a, b, 1, thickness=2 * r, lineType=cv2.LINE_8)
    for p in pts:
        cv2.circle(m, p, r, 1, thickness=-1)
    return m.astype(bool)
