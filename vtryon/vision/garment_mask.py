"""Segment a garment product photo: the garment against a plain studio background.

The background is modelled from the image border as a smooth colour surface (a quadratic
in x and y per Lab channel, which absorbs vignetting and light falloff). Pixels far from
it in colour, or on strong edges closed into regions, are garment candidates; GrabCut
settles the uncertain band; morphology and the largest component give the final mask.
White garments on white backgrounds are found by their outline and shading: their
candidates come from edges, not from colour distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vtryon.vision.masks import close, disk, fill_holes, grabcut_refine, largest_component

WORK_LONG_SIDE = 512  # the analysis runs at this size; the mask is returned at full size
BORDER = 0.03  # fraction of the side used as the border sample


@dataclass
class GarmentSegmentation:
    mask: np.ndarray  # bool, image size
    background_rgb: tuple[int, int, int]  # the estimated background colour (median of the border)
    border_coverage: float  # fraction of the border the garment touches (cropped product shots)


def _background_surface(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit a quadratic surface per channel to the border pixels; return it and the residual spread."""
    h, w = lab.shape[:2]
    b = max(2, int(BORDER * min(h, w)))
    border = np.zeros((h, w), bool)
    border[:b], border[-b:], border[:, :b], border[:, -b:] = True, True, True, True
    ys, xs = np.nonzero(border)
    x, y = xs / w - 0.5, ys / h - 0.5
    design = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], 1)
    vals = lab[ys, xs].astype(np.float64)
    # robust fit: drop the border pixels the garment itself touches (largest residuals)
    coef, *_ = np.linalg.lstsq(design, vals, rcond=None)
    resid = np.linalg.norm(vals - design @ coef, axis=1)
    keep = resid <= np.percentile(resid, 80)
    coef, *_ = np.linalg.lstsq(design[keep], vals[keep], rcond=None)
    spread = float(np.percentile(np.linalg.norm(vals[keep] - design[keep] @ coef, axis=1), 95))
    gy, gx = np.mgrid[0:h, 0:w]
    gx, gy = gx / w - 0.5, gy / h - 0.5
    full = np.stack([np.ones_like(gx), gx, gy, gx * gx, gx * gy, gy * gy], -1) @ coef
    return full.astype(np.float32), np.float32(spread)


def segment_garment(image: np.ndarray) -> GarmentSegmentation:
    h, w = image.shape[:2]
    scale = min(1.0, WORK_LONG_SIDE / max(h, w))
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else image
    sh, sw = small.shape[:2]
    blur = cv2.GaussianBlur(small, (3, 3), 0)
    lab = cv2.cvtColor(blur, cv2.COLOR_RGB2LAB).astype(np.float32)
    surface, spread = _background_surface(lab)
    # colour distance to the background (L weighted down: shadows on the backdrop are darker, same hue)
    diff = lab - surface
    dist = np.sqrt((0.5 * diff[..., 0]) ** 2 + diff[..., 1] ** 2 + diff[..., 2] ** 2)
    t_lo = max(4.0, 1.5 * spread)
    t_hi = max(14.0, 4.0 * spread)
    # edges close the outline of garments whose colour is near the backdrop's (white on white)
    gray = cv2.cvtColor(blur, cv2.COLOR_RGB2GRAY)
    # low thresholds: a white shirt's outline on a white backdrop is a faint grey line
    edges = cv2.Canny(gray, 10, 30) > 0
    closed = fill_holes(close(edges, 4))
    candidate = (dist > t_lo) | closed
    strong = dist > t_hi
    strong = cv2.morphologyEx(strong.astype(np.uint8), cv2.MORPH_OPEN, disk(1)).astype(bool)
    if candidate.sum() < 0.01 * sh * sw:
        return GarmentSegmentation(np.zeros((h, w), bool), _median_border(image), 0.0)
    core = largest_component(candidate)
    core = fill_holes(core)
    sure_fg = cv2.erode((core & (strong | closed)).astype(np.uint8), disk(3)).astype(bool)
    sure_bg = ~cv2.dilate(core.astype(np.uint8), disk(6)).astype(bool)
    refined = grabcut_refine(small, core, sure_fg, sure_bg) if sure_fg.any() else core
    refined = largest_component(refined)
    refined = fill_holes(refined)
    refined = cv2.morphologyEx(refined.astype(np.uint8), cv2.MORPH_OPEN, disk(2)).astype(bool)
    refined = largest_component(refined)
    full = cv2.resize(refined.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
    b = max(1, int(0.01 * min(sh, sw)))
    border = np.concatenate([refined[:b].ravel(), refined[-b:].ravel(), refined[:, :b].ravel(), refined[:, -b:].ravel()])
    return GarmentSegmentation(full, _median_border(image), float(border.mean()))


def _median_border(image: np.ndarray) -> tuple[int, int, int]:
    b = max(2, int(BORDER * min(image.shape[:2])))
    border = np.concatenate([image[:b].reshape(-1, 3), image[-b:].reshape(-1, 3), image[:, :b].reshape(-1, 3), image[:, -b:].reshape(-1, 3)])
    return tuple(int(v) for v in np.median(border, axis=0))
