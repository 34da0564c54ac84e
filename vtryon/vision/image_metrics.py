"""Measurements of a try-on that need no learned model. Each is named for what it measures.

- preservation_ssim_outside_change: SSIM (scikit-image, on luminance) between the person
  photo and the result, averaged over pixels outside the changed region; 1.0 = untouched.
- unchanged_fraction_outside_change: the fraction of those pixels that are bit-identical.
- garment_colour_delta_e2000: median CIEDE2000 between the warped garment and the result
  where the garment shows (how much shading and harmonisation moved its colours).
- garment_dominant_colour_delta_e2000: CIEDE2000 between the garment photo's and the
  result's dominant colour (largest k-means cluster in Lab).
- torso_coverage: fraction of the torso (the shoulder-hip quadrilateral, or shoulders down
  to the garment's hem) covered by the new garment.
- old_top_remnant_fraction: fraction of the old top's pixels that are neither covered by the
  new garment nor repainted.
- landmark_error_rel_shoulder_width: mean distance between where the warp puts each garment
  landmark and its body target, divided by the shoulder width.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


SAMPLE = 20_000  # pixels sampled for colour statistics


def preservation_ssim(person: np.ndarray, result: np.ndarray, changed: np.ndarray) -> tuple[float, float]:
    from skimage.metrics import structural_similarity

    outside = ~changed
    if not outside.any():
        return float("nan"), float("nan")
    identical = np.all(person == result, axis=-1)
    # SSIM's Gaussian window (sigma 1.5, truncated at 3.5 sigma) only sees 6 pixels around a
    # pixel: where both images are identical over that window SSIM is exactly 1. Compute it
    # on the box around the differing pixels (plus the window) and count 1 elsewhere.
    ssim_map = np.ones(identical.shape, np.float64)
    ys, xs = np.nonzero(~identical)
    if len(ys):
        pad = 8
        y0, y1 = max(0, ys.min() - pad), min(identical.shape[0], ys.max() + pad + 1)
        x0, x1 = max(0, xs.min() - pad), min(identical.shape[1], xs.max() + pad + 1)
        a = cv2.cvtColor(np.ascontiguousarray(person[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        b = cv2.cvtColor(np.ascontiguousarray(result[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        if min(a.shape) >= 7:
            _, local = structural_similarity(a, b, data_range=255, full=True, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
            ssim_map[y0:y1, x0:x1] = local
    return float(ssim_map[outside].mean()), float(identical[outside].mean())


def _lab(rgb_pixels: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(rgb_pixels.reshape(-1, 1, 3).astype(np.float64) / 255.0).reshape(-1, 3)


def _dominant_lab(rgb_pixels: np.ndarray, k: int = 3) -> np.ndarray:
    if len(rgb_pixels) > 5000:
        rgb_pixels = rgb_pixels[np.random.default_rng(0).choice(len(rgb_pixels), 5000, replace=False)]
    lab = _lab(rgb_pixels).astype(np.float32)
    k = min(k, len(lab))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    _, labels, centres = cv2.kmeans(lab, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    return centres[np.bincount(labels.ravel(), minlength=k).argmax()]


def garment_colour_fidelity(warped_garment: np.ndarray, result: np.ndarray, garment_region: np.ndarray, garment: np.ndarray, garment_mask: np.ndarray) -> tuple[float, float]:
    from skimage.color import deltaE_ciede2000

    if garment_region.sum() < 20 or garment_mask.sum() < 20:
        return float("nan"), float("nan")
    ys, xs = np.nonzero(garment_region)
    if len(ys) > SAMPLE:  # a fixed random subset: the median is stable, the cost bounded
        keep = np.random.default_rng(0).choice(len(ys), SAMPLE, replace=False)
        ys, xs = ys[keep], xs[keep]
    per_pixel = deltaE_ciede2000(_lab(warped_garment[ys, xs]), _lab(result[ys, xs]))
    dominant = deltaE_ciede2000(_dominant_lab(garment[garment_mask])[None], _dominant_lab(result[garment_region])[None])
    return float(np.median(per_pixel)), float(dominant[0])


def torso_coverage(torso: np.ndarray, garment_region: np.ndarray) -> float:
    if torso.sum() == 0:
        return float("nan")
    return float((garment_region & torso).sum() / torso.sum())


def landmark_error(map_xy: np.ndarray, src: np.ndarray, dst: np.ndarray, shoulder_width: float, step: int = 2) -> float:
    """For each garment landmark, the person pixel whose sample lands nearest to it, vs its target."""
    m = map_xy[::step, ::step]
    valid = m[..., 0] >= 0
    if not valid.any() or shoulder_width <= 0:
        return float("nan")
    ys, xs = np.nonzero(valid)
    samples = m[ys, xs]
    errors = []
    for s, d in zip(src, dst):
        i = int(np.argmin(((samples - s) ** 2).sum(1)))
        if np.linalg.norm(samples[i] - s) > 0.05 * shoulder_width:
            continue  # the landmark is not visible in the result (occluded or cut)
        errors.append(np.linalg.norm(np.array([xs[i], ys[i]]) * step - d))
    return float(np.mean(errors) / shoulder_width) if errors else float("nan")


def report(metrics: dict[str, float], resolution: tuple[int, int], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    import skimage

    from vtryon import __version__

    clean = {k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else round(float(v), 5)) for k, v in metrics.items()}
    return {
        "metrics": clean,
        "resolution": {"height": int(resolution[0]), "width": int(resolution[1])},
        "metric_code": {"vtryon": __version__, "scikit-image": skimage.__version__, "opencv": cv2.__version__},
        **(extra or {}),
    }
