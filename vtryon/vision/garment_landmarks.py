"""Landmarks of a flat garment from its mask: shoulders, neckline, armpits, hem, sleeves.

Sides are image sides ("_l" = image left), for the garment and the person alike: a garment
photographed from the front and a person facing the camera put the same side of the
garment on the same image side.

The torso's side seams are lines fitted to the mask's outline below the sleeves; whatever
sticks out beyond them above the armpit is a sleeve. Each sleeve gets an axis (from where
it attaches to its end) so that it can be laid along the arm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TORSO = 1
SLEEVE_L = 2
SLEEVE_R = 3


@dataclass
class SleeveAxis:
    start: np.ndarray  # where the sleeve joins the torso (between shoulder tip and armpit)
    end: np.ndarray  # centre of the sleeve's opening
    width: float  # sleeve width at its opening, garment pixels

    @property
    def length(self) -> float:
        return float(np.linalg.norm(self.end - self.start))


@dataclass
class GarmentLandmarks:
    points: dict[str, np.ndarray]  # name -> (x, y) garment pixels
    parts: np.ndarray  # uint8: 0 outside, TORSO, SLEEVE_L, SLEEVE_R
    sleeves: dict[str, SleeveAxis] = field(default_factory=dict)  # "l"/"r"
    sleeved: bool = False

    @property
    def shoulder_width(self) -> float:
        return float(np.linalg.norm(self.points["shoulder_l"] - self.points["shoulder_r"]))


def _row_extents(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leftmost and rightmost mask column per row (NaN where the row is empty)."""
    h, w = mask.shape
    has = mask.any(1)
    left = np.where(has, mask.argmax(1), np.nan).astype(np.float64)
    right = np.where(has, w - 1 - mask[:, ::-1].argmax(1), np.nan).astype(np.float64)
    return left, right, has


def _fit_side(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float]:
    """x = a*y + b through the points, robust to a few outliers (two passes)."""
    ok = np.isfinite(xs)
    ys, xs = ys[ok], xs[ok]
    if len(ys) < 2:
        return 0.0, float(np.nanmedian(xs)) if len(xs) else 0.0
    a, b = np.polyfit(ys, xs, 1)
    resid = np.abs(xs - (a * ys + b))
    keep = resid <= max(np.percentile(resid, 70), 1.0)
    if keep.sum() >= 2:
        a, b = np.polyfit(ys[keep], xs[keep], 1)
    # side seams of tops are near vertical; a steep fit means the sample was mostly sleeve
    a = float(np.clip(a, -0.35, 0.35))
    return a, float(b)


def _topmost(mask: np.ndarray, x0: int, x1: int) -> np.ndarray | None:
    x0, x1 = max(0, x0), min(mask.shape[1], x1)
    if x1 <= x0:
        return None
    cols = mask[:, x0:x1]
    has = cols.any(0)
    if not has.any():
        return None
    tops = np.where(has, cols.argmax(0), mask.shape[0])
    j = int(tops.argmin())
    return np.array([x0 + j, tops[j]], np.float64)


def _armpit_row(edge: np.ndarray, top: int, gh: int, torso_w: float, sign: int) -> int | None:
    """Scan the outline upward from mid-height; the armpit is where it jumps outward.

    ``edge`` is the per-row leftmost (sign=1) or rightmost (sign=-1) column. Below the
    armpit the outline follows the torso's side; at the armpit the sleeve's underside makes
    it step outward by much more than a side seam ever bends.
    """
    tol = 0.08 * torso_w
    window = max(3, int(0.08 * gh))
    start = top + int(0.65 * gh)
    for y in range(start, top + int(0.05 * gh), -1):
        below = edge[y + 1 : y + 1 + window]
        below = below[np.isfinite(below)]
        if len(below) < 3 or not np.isfinite(edge[y]):
            continue
        side = np.median(below)
        if sign * (side - edge[y]) > tol:
            return y + 1
    return None


def find_garment_landmarks(mask: np.ndarray, category: str = "upper") -> GarmentLandmarks:
    mask = mask.astype(bool)
    ys, xs = np.nonzero(mask)
    if len(ys) < 100:
        raise ValueError("the garment mask is empty")
    top, bottom = int(ys.min()), int(ys.max())
    left_all, right_all = int(xs.min()), int(xs.max())
    gh, gw = bottom - top + 1, right_all - left_all + 1
    cx = 0.5 * (left_all + right_all)
    left, right, has = _row_extents(mask)
    rows = np.arange(mask.shape[0], dtype=np.float64)

    # torso side seams: fitted where there are no sleeves (below the upper part)
    lo, hi = (top + int(0.5 * gh), top + int(0.85 * gh)) if category != "dress" else (top + int(0.22 * gh), top + int(0.4 * gh))
    band = slice(lo, hi)
    torso_w = float(np.nanmedian(right[band] - left[band]))
    ya_l = _armpit_row(left, top, gh, torso_w, sign=1)
    ya_r = _armpit_row(right, top, gh, torso_w, sign=-1)
    sleeved = ya_l is not None and ya_r is not None and category != "lower"
    # the side seam above the armpit continues the outline just below it
    def seam(edge: np.ndarray, ya: int | None) -> np.ndarray:
        y0 = ya if ya is not None else lo
        seg = slice(y0 + 2, min(bottom, y0 + int(0.2 * gh)))
        a, b = _fit_side(rows[seg], edge[seg])
        return a * rows + b

    line_l = seam(left, ya_l if sleeved else None)
    line_r = seam(right, ya_r if sleeved else None)

    points: dict[str, np.ndarray] = {}
    parts = np.zeros(mask.shape, np.uint8)
    sleeves: dict[str, SleeveAxis] = {}
    if sleeved:
        points["armpit_l"] = np.array([line_l[ya_l], ya_l])
        points["armpit_r"] = np.array([line_r[ya_r], ya_r])
        for side, ya, line in (("l", ya_l, line_l), ("r", ya_r, line_r)):
            x = int(round(line[ya]))
            x = int(np.clip(x, 0, mask.shape[1] - 1))
            col = mask[:, x]
            points[f"shoulder_{side}"] = np.array([x, float(col.argmax()) if col.any() else float(top)])
        yy, xx = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]]
        left_of = xx < (line_l[:, None] - 1)
        right_of = xx > (line_r[:, None] + 1)
        for side, outside, ya, label in (("l", left_of, ya_l, SLEEVE_L), ("r", right_of, ya_r, SLEEVE_R)):
            region = mask & outside & (yy <= ya + 0.02 * gh)
            parts[region] = label
            pys, pxs = np.nonzero(region)
            if len(pys) < 20:
                continue
            start = 0.5 * (points[f"shoulder_{side}"] + points[f"armpit_{side}"])
            pts = np.stack([pxs, pys], 1).astype(np.float64)
            d = pts.mean(0) - start
            d /= max(np.linalg.norm(d), 1e-6)
            proj = (pts - start) @ d
            far = proj >= np.percentile(proj, 92)
            end = pts[far].mean(0)
            axis = (end - start) / max(np.linalg.norm(end - start), 1e-6)
            perp = (pts[far] - end) @ np.array([-axis[1], axis[0]])
            width = float(np.ptp(perp)) if len(perp) > 1 else 0.1 * gw
            sleeves[side] = SleeveAxis(start, end, max(width, 0.05 * gw))
        parts[mask & (parts == 0)] = TORSO
        hanging = [side for side, sl in sleeves.items() if (sl.end[1] - sl.start[1]) > 0.8 * sl.length or sl.end[1] < sl.start[1]]
        if hanging or len(sleeves) < 2:
            # sleeves photographed hanging beside the body (long sleeves, dresses): they already
            # lie where hanging arms are, so they travel with the torso; the "armpit" the
            # outline showed was their cuff, so take the usual armpit height instead
            sleeved = False
            sleeves = {}
            parts[mask] = TORSO
            y = int(top + 0.22 * gh)
            points["armpit_l"] = np.array([left[y], y])
            points["armpit_r"] = np.array([right[y], y])
    else:
        # sleeveless: the top corners of the body panel are the armpits, strap tops the shoulders
        near_l = np.abs(left - line_l) < max(0.04 * torso_w, 2)
        near_r = np.abs(right - line_r) < max(0.04 * torso_w, 2)
        cand_l = np.nonzero(near_l & has)[0]
        cand_r = np.nonzero(near_r & has)[0]
        ya_l = int(cand_l.min()) if len(cand_l) else top + int(0.25 * gh)
        ya_r = int(cand_r.min()) if len(cand_r) else top + int(0.25 * gh)
        points["armpit_l"] = np.array([left[ya_l], ya_l])
        points["armpit_r"] = np.array([right[ya_r], ya_r])
        sl = _topmost(mask, left_all, int(cx - 0.08 * gw))
        sr = _topmost(mask, int(cx + 0.08 * gw), right_all + 1)
        points["shoulder_l"] = sl if sl is not None else np.array([left[ya_l], top])
        points["shoulder_r"] = sr if sr is not None else np.array([right[ya_r], top])
        parts[mask] = TORSO

    # neckline corners: the topmost garment points either side of the centre line
    nl = _topmost(mask, int(cx - 0.3 * gw), int(cx - 0.02 * gw))
    nr = _topmost(mask, int(cx + 0.02 * gw), int(cx + 0.3 * gw) + 1)
    if nl is not None and nr is not None:
        sw = np.linalg.norm(points["shoulder_l"] - points["shoulder_r"])
        if np.linalg.norm(nl - points["shoulder_l"]) > 0.15 * sw and np.linalg.norm(nr - points["shoulder_r"]) > 0.15 * sw:
            points["neck_l"], points["neck_r"] = nl, nr
    # hem corners
    y_hem = bottom - max(1, int(0.015 * gh))
    points["hem_l"] = np.array([left[y_hem], y_hem])
    points["hem_r"] = np.array([right[y_hem], y_hem])
    points = {k: np.asarray(v, np.float64) for k, v in points.items()}
    return GarmentLandmarks(points, parts, sleeves, sleeved)
