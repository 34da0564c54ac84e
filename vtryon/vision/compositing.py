"""Put a warped upper garment on the person (step 06's image work).

1. Layering: hair and face stay in front of the garment; arms stay in front of its torso
   part but go under its sleeves.
2. The old top is removed where the new one does not cover it: skin is painted where
   a body is (arms, midriff), the background is inpainted elsewhere.
3. The new garment carries the person's shading: the low-frequency luminance of the old
   top (folds, shadows, the light falling on the body), with prints and fine texture
   suppressed by a median filter before the blur.
4. Edges are feathered over a pixel or two.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vtryon.state import LIP
from vtryon.vision.garment_landmarks import TORSO
from vtryon.vision.masks import capsule, close, disk, feather, grow

OLD_TOP_LABELS = (LIP["upper-clothes"], LIP["coat"])
SHADING_RANGE = (0.8, 1.12)
SHADING_STRENGTH = 0.6


@dataclass
class Composite:
    image: np.ndarray  # RGB uint8
    garment_alpha: np.ndarray  # float32 [0, 1], where the new garment shows
    filled: np.ndarray  # bool, old-top pixels repainted as skin or background
    changed: np.ndarray  # bool, every pixel that may differ from the person photo


def _coarse_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """A wide Gaussian blur computed at a quarter of the size (it is smooth anyway)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), max(0.5, sigma / 4))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _shading(person: np.ndarray, regions: list[np.ndarray], scale: float) -> np.ndarray:
    """Relative luminance (~1.0 on average) of the person, smooth, computed within each region
    separately (a black top next to bare skin must not read as a shadow)."""
    h, w = person.shape[:2]
    f = 0.5  # computed at half size: the result is smooth anyway
    small = cv2.resize(person, (int(w * f), int(h * f)), interpolation=cv2.INTER_AREA)
    lum = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)[..., 0]
    k = int(max(3, round(scale * f * 0.012)) // 2 * 2 + 1)
    med = cv2.medianBlur(lum, min(k, 15)).astype(np.float32) + 1.0  # suppress prints and texture
    s1 = max(1.0, scale * f * 0.006)
    s2 = max(4.0, scale * f * 0.06)
    out = np.ones(med.shape, np.float32)
    for region in regions:
        r = cv2.resize(region.astype(np.uint8), (med.shape[1], med.shape[0]), interpolation=cv2.INTER_NEAREST).astype(np.float32)
        if r.sum() < 50:
            continue
        # normalised convolutions: averages over the region only
        fine = cv2.GaussianBlur(med * r, (0, 0), s1) / (cv2.GaussianBlur(r, (0, 0), s1) + 1e-3)
        coarse = _coarse_blur(med * r, s2) / (_coarse_blur(r, s2) + 1e-3)
        ratio = np.clip(fine / np.maximum(coarse, 1.0), *SHADING_RANGE)
        inside = r > 0
        out[inside] = 1.0 + (ratio[inside] - 1.0) * SHADING_STRENGTH
    out = cv2.GaussianBlur(out, (0, 0), s1)
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)


def _skin_colour(person: np.ndarray, skin: np.ndarray, near: np.ndarray) -> np.ndarray:
    """Median skin colour (RGB float) of skin pixels, preferring those near ``near``."""
    zone = grow(near, max(3, person.shape[0] // 12))
    sel = skin & zone
    if sel.sum() < 200:
        sel = skin
    if sel.sum() < 50:
        return np.array([205.0, 160.0, 135.0])
    return np.median(person[sel].astype(np.float32), axis=0)


def _extend_nearest(image: np.ndarray, known: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Fill ``where`` with the colour of the nearest ``known`` pixel (the garment's own
    fabric, never the product photo's backdrop), lightly smoothed."""
    ys, xs = np.nonzero(grow(where, 4))
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    pad = 32
    y0, x0 = max(0, y0 - pad), max(0, x0 - pad)
    y1, x1 = min(image.shape[0], y1 + pad), min(image.shape[1], x1 + pad)
    k = known[y0:y1, x0:x1]
    out = image.copy()
    if not k.any():
        return out
    _, labels = cv2.distanceTransformWithLabels((~k).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    ky, kx = np.nonzero(k)  # labels count the known pixels in raster order, from 1
    crop = image[y0:y1, x0:x1]
    nearest = crop[ky[labels - 1], kx[labels - 1]]
    smooth = cv2.GaussianBlur(nearest, (0, 0), 2.0)
    w = where[y0:y1, x0:x1]
    out[y0:y1, x0:x1][w] = smooth[w]
    return out


def _paint_skin(image: np.ndarray, hole: np.ndarray, skin: np.ndarray, colour: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """Fill ``hole`` with skin grown in from the real skin around it.

    Non-skin pixels on the hole's rim are first set to the person's skin colour, so the
    inpainting draws only skin tones; the old top's shading then gives the skin some form.
    """
    h, w = hole.shape
    f = 0.5
    size = (int(w * f), int(h * f))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    hm = cv2.resize(hole.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    sk = cv2.resize(skin.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    rim = cv2.dilate(hm.astype(np.uint8), disk(4)).astype(bool) & ~hm & ~sk
    small[rim] = colour
    small[hm] = colour
    filled = cv2.inpaint(np.clip(small, 0, 255).astype(np.uint8), cv2.dilate(hm.astype(np.uint8), disk(1)), 9, cv2.INPAINT_TELEA)
    # inpainting converges to the rim; blend toward the mean skin colour away from it
    dist = cv2.distanceTransform(hm.astype(np.uint8), cv2.DIST_L2, 3)
    t = np.clip(dist / 12.0, 0, 1)[..., None]
    filled = filled.astype(np.float32) * (1 - t) + colour[None, None, :] * t
    up = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(hole)
    box = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    painted = up[box] * shade[box][..., None]
    # painted skin is not flat: a faint, fixed grain (seeded, so runs are repeatable)
    grain = np.random.default_rng(0).normal(0, 3.0, painted.shape[:2]).astype(np.float32)
    painted += cv2.GaussianBlur(grain, (0, 0), 0.7)[..., None]
    out = image.copy()
    hb = hole[box]
    out[box][hb] = np.clip(painted[hb], 0, 255).astype(np.uint8)
    return out


def _inpaint_background(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Telea inpainting at half size (studio backgrounds are smooth), pasted into the hole."""
    h, w = hole.shape
    small = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    hm = cv2.resize(hole.astype(np.uint8), (w // 2, h // 2), interpolation=cv2.INTER_NEAREST)
    hm = cv2.dilate(hm, disk(2))
    filled = cv2.inpaint(small, hm, 5, cv2.INPAINT_TELEA)
    up = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    out = image.copy()
    out[hole] = up[hole]
    return out


def compose_upper(
    person: np.ndarray,
    parsing: np.ndarray,
    garment: np.ndarray,
    garment_mask: np.ndarray,
    parts: np.ndarray,
    skin: np.ndarray,
    torso_skin: np.ndarray,
    arms: dict[str, list[np.ndarray]],
    shoulders: tuple[np.ndarray, np.ndarray],
    shoulder_width: float,
    hips: tuple[np.ndarray, np.ndarray] | None,
    neckline: list[list[float]] | None = None,
    depth: np.ndarray | None = None,
) -> Composite:
    h, w = parsing.shape
    scale = float(max(h, w))
    new = garment_mask.astype(np.float32) / 255.0
    # the product photo's backdrop can fringe the outline: pull the edge in by a pixel
    new = np.minimum(new, cv2.erode(new, disk(1)) + 0.5)

    hair = parsing == LIP["hair"]
    face = (parsing == LIP["face"]) & ~torso_skin
    arm = np.isin(parsing, [LIP["left-arm"], LIP["right-arm"]])
    front = hair | face | (arm & (parts == TORSO))
    if depth is not None:
        front |= arm & _nearer_than_torso(depth, parsing, torso_skin)
    if neckline is not None:
        front |= torso_skin & _above_neckline((h, w), neckline)
    front_soft = feather(cv2.dilate(front.astype(np.uint8), disk(1)).astype(bool), 1.0)
    alpha = new * (1.0 - front_soft)

    old_top = np.isin(parsing, OLD_TOP_LABELS)
    # gaps the warp leaves between the garment's parts (under the arm, at the shoulder seam)
    # are fabric, not skin: close them with the garment's own colours
    covered = alpha > 0.5
    closed = close(covered, max(2, int(0.15 * shoulder_width)))
    # on the arms only the armhole (down to the armpit) can be such a gap: the sleeve hangs
    # from the whole armhole, the strip that models it only from its middle
    armpit_y = max((2 * poly[0][1] - tip[1] for poly, tip in zip(arms.values(), shoulders)), default=0.0)
    arm_ok = ~arm | (np.arange(h)[:, None] < armpit_y + 0.05 * shoulder_width)
    gap = closed & ~covered & (parsing > 0) & ~hair & ~face & arm_ok
    if gap.any():
        garment = _extend_nearest(garment, covered, gap)
        alpha = np.where(gap, 1.0, alpha).astype(np.float32)
    hole = old_top & (alpha < 0.5)
    # the old top's outline is a band of mixed pixels the parser left to its neighbours: take it too
    rim = grow(hole, 3) & ~hole & (alpha < 0.5) & (parsing == 0)
    hole |= rim
    # clean the hole's rim too: old-top pixels within a few pixels of the new edge
    hole |= old_top & (cv2.dilate((alpha < 0.5).astype(np.uint8), disk(2)).astype(bool)) & (alpha < 0.95)

    # the person's own light, per material (computed once: painted skin and garment share it)
    shade = _shading(person, [old_top, torso_skin, arm], scale)
    base = person.copy()
    if hole.any():
        sw = shoulder_width
        body = np.zeros((h, w), bool)
        for poly in arms.values():
            if len(poly) >= 2:
                body |= capsule((h, w), poly, 0.2 * sw)
        body |= grow(_torso_polygon((h, w), shoulders, hips, sw), 0.05 * sw)
        cx = 0.5 * (shoulders[0][0] + shoulders[1][0])
        cols = np.arange(w)[None, :]
        for tip in shoulders:  # the shoulder caps (straps of the old top rest there)...
            cv2.circle(m := np.zeros((h, w), np.uint8), (int(tip[0]), int(tip[1])), int(0.18 * sw), 1, -1)
            # ...but beyond the shoulder's tip a wider old top (shoulder pads) had backdrop behind it
            inward = cols >= tip[0] - 0.02 * sw if tip[0] < cx else cols <= tip[0] + 0.02 * sw
            body |= m.astype(bool) & inward
        skin_hole = hole & body
        bg_hole = hole & ~body
        if bg_hole.any():
            base = _inpaint_background(base, bg_hole)
        if skin_hole.any():
            base = _paint_skin(base, skin_hole, skin, _skin_colour(person, skin, skin_hole), shade)

    # the old top's light falls on the new garment; elsewhere (skin, background) no change
    a = feather(alpha > 0.5, 0.8) * np.clip(alpha * 1.5, 0, 1)
    image = base.copy()
    ys, xs = np.nonzero(a > 0)
    if len(ys):  # blend only inside the garment's box
        box = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        ab = a[box][..., None]
        shaded = garment[box].astype(np.float32) * shade[box][..., None]
        out = base[box].astype(np.float32) * (1 - ab) + shaded * ab
        image[box] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    changed = cv2.dilate(((a > 0.002) | hole).astype(np.uint8), disk(2)).astype(bool)
    image[~changed] = person[~changed]  # outside the changed region: the photo, exactly
    return Composite(image, a, hole, changed)


DEPTH_MARGIN = 0.05  # relative depth by which an arm must be nearer than the torso to stay in front


def _nearer_than_torso(depth: np.ndarray, parsing: np.ndarray, torso_skin: np.ndarray) -> np.ndarray:
    """Pixels clearly nearer the camera than the torso on the same rows (``depth``: larger =
    nearer, [0, 1]): an arm crossing in front of a sleeve stays in front of it too."""
    torso = np.isin(parsing, OLD_TOP_LABELS) | torso_skin
    out = np.zeros(depth.shape, bool)
    rows = np.nonzero(torso.any(1))[0]
    if len(rows) == 0:
        return out
    ref = np.full(depth.shape[0], np.nan, np.float32)
    for y in rows:
        ref[y] = np.median(depth[y][torso[y]])
    # rows without torso take the nearest row's reference
    filled = np.interp(np.arange(depth.shape[0]), rows, ref[rows])
    return depth > filled[:, None] + DEPTH_MARGIN


def _above_neckline(shape: tuple[int, int], neckline: list[list[float]]) -> np.ndarray:
    """The region above the garment's front neckline (a parabola through its three points)."""
    (x0, y0), (xm, ym), (x1, y1) = neckline
    xs = np.linspace(x0, x1, 32)
    t = (xs - x0) / max(x1 - x0, 1e-6)
    ys = (1 - t) ** 2 * y0 + 2 * t * (1 - t) * (2 * ym - 0.5 * (y0 + y1)) + t**2 * y1
    poly = np.concatenate([[[x0, 0]], np.stack([xs, ys], 1), [[x1, 0]]]).astype(np.int32)
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [poly], 1)
    return m.astype(bool)


def _torso_polygon(shape: tuple[int, int], shoulders: tuple[np.ndarray, np.ndarray], hips: tuple[np.ndarray, np.ndarray] | None, sw: float) -> np.ndarray:
    """Where the body is under the old top: shoulders, the neck's base, down to the hips
    (or the frame's edge when the hips are out of view)."""
    h, w = shape
    sl, sr = (np.asarray(p, np.float64) for p in shoulders)
    neck = 0.5 * (sl + sr) - np.array([0.0, 0.2 * sw])
    if hips is None:
        hl, hr = np.array([sl[0], h - 1.0]), np.array([sr[0], h - 1.0])
    else:
        hl, hr = hips[0] - [0.15 * sw, 0], hips[1] + [0.15 * sw, 0]
    poly = np.array([sl, neck, sr, hr, hl], np.int32)
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [poly], 1)
    return m.astype(bool)
