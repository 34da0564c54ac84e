"""Match garment landmarks to the body and build the dense warp (step 04's geometry).

The torso of the garment is moved by a thin-plate spline through matched landmarks
(shoulders, neckline, armpits, hem); each sleeve is laid along its arm as a strip that
follows the shoulder-elbow-wrist polyline. The result is one sampling map at person size
(for each person pixel, the garment pixel it shows), plus which garment part each person
pixel took (sleeves are drawn in front of the arms, the torso behind them).

The garment keeps its own proportions: one similarity (from shoulder to shoulder) sets its
scale, so a cropped top stays short and a long shirt long. The hem and armpits are then
widened where needed to cover the body and the old garment.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vtryon.state import LIP, Keypoints, Warp
from vtryon.vision.masks import capsule
from vtryon.vision.garment_landmarks import SLEEVE_L, SLEEVE_R, TORSO, GarmentLandmarks

GRID_STEP = 4  # the spline is evaluated every GRID_STEP pixels and interpolated
TPS_REGULARISATION = 10.0


@dataclass
class BodyAnchors:
    points: dict[str, np.ndarray]  # image-side names as the garment's: shoulder_l, armpit_r, ...
    arms: dict[str, list[np.ndarray]]  # "l"/"r": [start, elbow, wrist?] polyline (image sides)
    shoulder_width: float
    centre_x: float
    torso_extent: np.ndarray  # (H, 2) left/right x of the torso per row (NaN where unknown)


def _side_pair(kp: Keypoints, right_name: str, left_name: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(image-left, image-right) of a pair of the person's right/left keypoints."""
    r, l = kp.get(right_name), kp.get(left_name)
    if r is not None and l is not None and r[0] > l[0]:
        r, l = l, r  # seen from the back: the person's right is on the image right
    return r, l


def _torso_extent(parsing: np.ndarray, centre_x: float, sw: float, torso_skin: np.ndarray | None = None, arms: np.ndarray | None = None) -> np.ndarray:
    """Per row, the run of the old top and torso skin (not arms, hair, lower clothes or
    background) around the centre."""
    h, w = parsing.shape
    torso = np.isin(parsing, [LIP["upper-clothes"], LIP["coat"], LIP["dress"], LIP["jumpsuits"]])
    if torso_skin is not None:
        torso |= torso_skin
    if arms is not None:  # a long sleeve hanging against the body is not the torso's width
        torso &= ~arms
    out = np.full((h, 2), np.nan)
    c = int(np.clip(round(centre_x), 0, w - 1))
    lim = int(0.65 * sw)  # a torso is rarely wider; beyond that the run is an old sleeve or an arm
    for y in range(h):
        row = torso[y]
        if not row[c]:
            continue
        lo, hi = max(0, c - lim), min(w, c + lim)
        seg = row[lo:hi]
        # walk out from the centre until the run ends
        left_run = seg[: c - lo][::-1]
        right_run = seg[c - lo:]
        nl = int(left_run.argmin()) if (~left_run).any() else len(left_run)
        nr = int(right_run.argmin()) if (~right_run).any() else len(right_run)
        out[y] = (c - nl, c + nr - 1)
    return out


def body_anchors(kp: Keypoints, parsing: np.ndarray, person_mask: np.ndarray, torso_skin: np.ndarray | None = None) -> BodyAnchors:
    h, w = parsing.shape
    sh_l, sh_r = _side_pair(kp, "r-shoulder", "l-shoulder")
    if sh_l is None or sh_r is None:
        raise ValueError("both shoulders must be visible")
    sw = float(np.linalg.norm(sh_l - sh_r))
    centre_x = 0.5 * (sh_l[0] + sh_r[0])
    blocked = np.isin(parsing, [LIP["hair"], LIP["face"], 0])
    pts: dict[str, np.ndarray] = {}
    for side, s in (("l", sh_l), ("r", sh_r)):
        x = int(np.clip(round(s[0] + (-1 if side == "l" else 1) * 0.04 * sw), 0, w - 1))
        y0 = int(max(0, s[1] - 0.4 * sw))
        col = person_mask[y0 : int(s[1]) + 1, x] & ~blocked[y0 : int(s[1]) + 1, x]
        top = y0 + int(col.argmax()) if col.any() else s[1] - 0.12 * sw
        top = float(np.clip(top, s[1] - 0.3 * sw, s[1] - 0.02 * sw))
        pts[f"shoulder_{side}"] = np.array([s[0] + (-1 if side == "l" else 1) * 0.04 * sw, top])
    arms: dict[str, list[np.ndarray]] = {}
    el_l, el_r = _side_pair(kp, "r-elbow", "l-elbow")
    wr_l, wr_r = _side_pair(kp, "r-wrist", "l-wrist")
    hip_l, hip_r = _side_pair(kp, "r-hip", "l-hip")
    # the arms below the armpits, sleeved or bare
    arm_zone = np.zeros((h, w), bool)
    for sh, el, wr in ((sh_l, el_l, wr_l), (sh_r, el_r, wr_r)):
        if el is not None:
            arm_zone |= capsule((h, w), [el, wr] if wr is not None else [el], 0.11 * sw)
            mid = sh + 0.6 * (el - sh)
            arm_zone |= capsule((h, w), [mid, el], 0.11 * sw)
    extent = _torso_extent(parsing, centre_x, sw, torso_skin, arm_zone)
    for side, sh, el, wr in (("l", sh_l, el_l, wr_l), ("r", sh_r, el_r, wr_r)):
        # the armpit: where the arm's inner edge meets the torso, ~0.4 shoulder widths down
        armpit_y = sh[1] + 0.42 * sw
        inward = 1 if side == "l" else -1
        y = int(np.clip(round(armpit_y), 0, h - 1))
        rows = extent[max(0, y - 4) : y + 5]
        x = sh[0] + inward * 0.12 * sw
        if np.isfinite(rows).any():
            edge = np.nanmin(rows[:, 0]) if side == "l" else np.nanmax(rows[:, 1])
            # the torso's edge, kept between the shoulder joint and 0.25 sw inside it
            x = float(np.clip(edge, sh[0], sh[0] + 0.25 * sw) if side == "l" else np.clip(edge, sh[0] - 0.25 * sw, sh[0]))
        pts[f"armpit_{side}"] = np.array([x, armpit_y])
        poly = [0.5 * (pts[f"shoulder_{side}"] + pts[f"armpit_{side}"])]
        if el is not None:
            poly.append(el)
            if wr is not None:
                poly.append(wr)
        else:
            # elbow out of frame (a portrait): the upper arm hangs down, a little outward
            outward = -1.0 if side == "l" else 1.0
            poly.append(poly[0] + np.array([outward * 0.25, 1.0]) * 1.1 * sw)
        arms[side] = poly
    if hip_l is not None and hip_r is not None:
        pts["hip_l"], pts["hip_r"] = hip_l, hip_r
    return BodyAnchors(pts, arms, sw, centre_x, extent)


def _torso_similarity(g: dict[str, np.ndarray], body: "BodyAnchors", sleeved: bool = True) -> np.ndarray:
    """2x3 similarity placing the garment on the torso: scale from shoulder to shoulder,
    rotation from the torso's axis (shoulders' midpoint to hips' midpoint), shift so the
    shoulders' midpoints meet. A shrug tilts the shoulder line, not the whole garment."""
    b = body.points
    # a sleeved top is sized by its shoulders; a strap top by its body panel, armpit to armpit
    key = "shoulder" if sleeved else "armpit"
    g_mid = 0.5 * (g[f"{key}_l"] + g[f"{key}_r"])
    b_mid = 0.5 * (b[f"{key}_l"] + b[f"{key}_r"])
    scale = np.linalg.norm(b[f"{key}_r"] - b[f"{key}_l"]) / max(np.linalg.norm(g[f"{key}_r"] - g[f"{key}_l"]), 1e-6)
    if not sleeved:
        scale *= 1.08  # the panel wraps a little round the sides of the body
    if "hip_l" in b and "hip_r" in b:
        axis = 0.5 * (b["hip_l"] + b["hip_r"]) - b_mid
        angle = float(np.arctan2(-axis[0], axis[1]))  # 0 when the torso is upright
        angle = float(np.clip(angle, -0.35, 0.35))
    else:
        d = b["shoulder_r"] - b["shoulder_l"]
        angle = float(np.arctan2(d[1], d[0]))
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    m = np.array([[c, -s, 0.0], [s, c, 0.0]])
    m[:, 2] = b_mid - m[:, :2] @ g_mid
    return m


def _on_shoulder_surface(p: np.ndarray, body: "BodyAnchors") -> np.ndarray:
    """Move a point vertically onto the line through the shoulder tips and the neck's base."""
    b = body.points
    sl, sr = b["shoulder_l"], b["shoulder_r"]
    t = np.clip((p[0] - sl[0]) / max(sr[0] - sl[0], 1e-6), 0.0, 1.0)
    # the shoulder line rises towards the neck: a parabola through both tips, 0.12 sw higher mid-way
    y = sl[1] + t * (sr[1] - sl[1]) - 0.12 * body.shoulder_width * 4 * t * (1 - t)
    return np.array([p[0], y])


def _apply(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    return m[:, :2] @ p + m[:, 2]


def _tps_map(dst: np.ndarray, src: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Person->garment sampling map through a thin-plate spline fitted on (dst -> src) pairs."""
    h, w = shape
    tps = cv2.createThinPlateSplineShapeTransformer(TPS_REGULARISATION)
    matches = [cv2.DMatch(i, i, 0) for i in range(len(dst))]
    tps.estimateTransformation(dst.reshape(1, -1, 2).astype(np.float32), src.reshape(1, -1, 2).astype(np.float32), matches)
    gh, gw = (h + GRID_STEP - 1) // GRID_STEP + 1, (w + GRID_STEP - 1) // GRID_STEP + 1
    gy, gx = np.mgrid[0:gh, 0:gw].astype(np.float32) * GRID_STEP
    grid = np.stack([gx, gy], -1).reshape(1, -1, 2)
    _, mapped = tps.applyTransformation(grid)
    coarse = mapped.reshape(gh, gw, 2)
    full = cv2.resize(coarse, (gw * GRID_STEP, gh * GRID_STEP), interpolation=cv2.INTER_LINEAR)
    # resize maps pixel centres; shift so grid node k sits at pixel k*GRID_STEP exactly
    off = (GRID_STEP - 1) / 2.0
    m = cv2.warpAffine(full, np.float32([[1, 0, off], [0, 1, off]]), (full.shape[1], full.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return m[:h, :w].astype(np.float32)


def _strip_map(poly: list[np.ndarray], length: float, half_width: float, g_start: np.ndarray, g_axis: np.ndarray, scale: float, shape: tuple[int, int], back: float = 0.0) -> np.ndarray:
    """Map person pixels near the arm polyline onto the garment's straight sleeve axis.

    Arc length t along the polyline and signed offset s from it become
    ``g_start + t/scale * axis + s/scale * normal``. The first segment is extended ``back``
    pixels before the polyline's start (negative t) to reach the shoulder cap.
    """
    h, w = shape
    out = np.full((h, w, 2), -1.0, np.float32)
    pts = [np.asarray(p, np.float64) for p in poly]
    if len(pts) < 2:
        return out
    if back > 0:
        d0 = (pts[1] - pts[0]) / max(np.linalg.norm(pts[1] - pts[0]), 1e-6)
        pts[0] = pts[0] - d0 * back
    seg_len = [float(np.linalg.norm(b - a)) for a, b in zip(pts, pts[1:])]
    total = sum(seg_len)
    if total < length + back:  # the arm ends before the sleeve does: go on straight
        d = (pts[-1] - pts[-2]) / max(seg_len[-1], 1e-6)
        pts[-1] = pts[-1] + d * (length + back - total)
        seg_len[-1] += length + back - total
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    pad = half_width + 2
    x0, x1 = int(max(0, min(xs) - pad)), int(min(w, max(xs) + pad + 1))
    y0, y1 = int(max(0, min(ys) - pad)), int(min(h, max(ys) + pad + 1))
    if x1 <= x0 or y1 <= y0:
        return out
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    best_d = np.full(yy.shape, np.inf)
    best_t = np.zeros(yy.shape)
    best_s = np.zeros(yy.shape)
    acc = 0.0
    for a, b, seg in zip(pts, pts[1:], seg_len):
        u = (b - a) / max(seg, 1e-6)
        n = np.array([-u[1], u[0]])
        rx, ry = xx - a[0], yy - a[1]
        t = np.clip(rx * u[0] + ry * u[1], 0, seg)
        s = rx * n[0] + ry * n[1]
        d = np.hypot(xx - (a[0] + t * u[0]), yy - (a[1] + t * u[1]))
        better = d < best_d
        best_d[better], best_t[better], best_s[better] = d[better], acc + t[better], s[better]
        acc += seg
    best_t -= back
    inside = (best_d <= half_width) & (best_t <= length)
    g_n = np.array([-g_axis[1], g_axis[0]])
    gx = g_start[0] + best_t / scale * g_axis[0] + best_s / scale * g_n[0]
    gy = g_start[1] + best_t / scale * g_axis[1] + best_s / scale * g_n[1]
    sub = out[y0:y1, x0:x1]
    sub[inside, 0] = gx[inside]
    sub[inside, 1] = gy[inside]
    return out


def _sample_parts(parts: np.ndarray, m: np.ndarray) -> np.ndarray:
    return cv2.remap(parts, m[..., 0], m[..., 1], cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def fit_garment_to_body(lm: GarmentLandmarks, body: BodyAnchors, shape: tuple[int, int]) -> tuple[Warp, np.ndarray]:
    """The warp and, per person pixel, the garment part it shows (0 none, TORSO, SLEEVE_L/R)."""
    g = lm.points
    b = body.points
    sim = _torso_similarity(g, body, lm.sleeved)
    scale = float(np.hypot(sim[0, 0], sim[1, 0]))
    names: list[str] = []
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []

    def match(name: str, target: np.ndarray) -> None:
        names.append(name)
        src.append(g[name])
        dst.append(target)

    if lm.sleeved:
        match("shoulder_l", b["shoulder_l"])
        match("shoulder_r", b["shoulder_r"])
    else:  # strap tops rest on the shoulder's surface where the panel's scale puts them
        for side in ("l", "r"):
            match(f"shoulder_{side}", _on_shoulder_surface(_apply(sim, g[f"shoulder_{side}"]), body))
    for name in ("neck_l", "neck_r"):
        if name in g:
            match(name, _apply(sim, g[name]))
    ext = body.torso_extent
    h = shape[0]

    def widen(p: np.ndarray, side: str, margin: float) -> np.ndarray:
        """Push a side point outward to the body's (old garment's) edge at its row if needed."""
        y = int(np.clip(round(p[1]), 0, h - 1))
        rows = ext[max(0, y - 3) : y + 4]
        if not np.isfinite(rows).any():
            return p
        edge = np.nanmin(rows[:, 0]) - margin if side == "l" else np.nanmax(rows[:, 1]) + margin
        x = min(p[0], edge) if side == "l" else max(p[0], edge)
        return np.array([x, p[1]])

    margin = 0.02 * body.shoulder_width
    for side in ("l", "r"):
        ap = _apply(sim, g[f"armpit_{side}"])
        # x where the arm meets the torso; y from the garment's own proportions
        match(f"armpit_{side}", np.array([b[f"armpit_{side}"][0], ap[1]]))
    for side in ("l", "r"):
        hp = _apply(sim, g[f"hem_{side}"])
        match(f"hem_{side}", widen(hp, side, margin))
    # points down the side seams keep them straight, and wide enough to cover the old top
    # wherever the photo shows it (in a portrait the hem is below the frame)
    for side in ("l", "r"):
        ga, gb = g[f"armpit_{side}"], g[f"hem_{side}"]
        da, db = dst[names.index(f"armpit_{side}")], dst[names.index(f"hem_{side}")]
        for f in (0.25, 0.5, 0.75):
            dp = da + f * (db - da)
            if dp[1] > h - 1:
                break
            names.append(f"side_{side}{int(f * 100)}")
            src.append(ga + f * (gb - ga))
            dst.append(widen(dp, side, margin))
        if db[1] > h - 1 > da[1]:  # where the seam leaves the frame
            f = (h - 1 - da[1]) / (db[1] - da[1])
            names.append(f"side_{side}_frame")
            src.append(ga + f * (gb - ga))
            dst.append(widen(da + f * (db - da), side, margin))
    # a centre point holds the print in place
    gc = np.mean([g["shoulder_l"], g["shoulder_r"], g["hem_l"], g["hem_r"]], axis=0)
    names.append("centre")
    src.append(gc)
    dst.append(_apply(sim, gc))

    src_a, dst_a = np.array(src), np.array(dst)
    torso_map = _tps_map(dst_a, src_a, shape)
    parts_t = _sample_parts(lm.parts, torso_map)
    final = np.where((parts_t == TORSO)[..., None], torso_map, -1.0).astype(np.float32)
    part_of = np.where(parts_t == TORSO, TORSO, 0).astype(np.uint8)

    for side, label in (("l", SLEEVE_L), ("r", SLEEVE_R)):
        sleeve = lm.sleeves.get(side)
        poly = body.arms.get(side)
        if sleeve is None or poly is None or len(poly) < 2:
            continue
        axis = (sleeve.end - sleeve.start) / max(sleeve.length, 1e-6)
        # a sleeve hangs as a tube around the upper arm: seen from the front it is as wide as
        # its opening (a little more: fabric drapes), and as long as it is along its axis
        half = 0.5 * sleeve.width * scale * 1.1
        # start it higher up, at the shoulder cap, so it joins the torso part
        back = 0.5 * np.linalg.norm(g[f"shoulder_{side}"] - g[f"armpit_{side}"]) * scale
        m = _strip_map(poly, sleeve.length * scale, half, sleeve.start, axis, scale, shape, back=back)
        parts_s = _sample_parts(lm.parts, m)
        take = parts_s == label
        final[take] = m[take]
        part_of[take] = label

    neckline = None
    if "neck_l" in names and "neck_r" in names:
        nl, nr = dst_a[names.index("neck_l")], dst_a[names.index("neck_r")]
        # a crew neck dips about a third of its width in front; what is above it is the
        # inside of the back of the collar, which the neck hides
        dip = 0.5 * (nl + nr) + np.array([0.0, 0.33 * np.linalg.norm(nr - nl)])
        neckline = [nl.tolist(), dip.tolist(), nr.tolist()]
    warp = Warp(
        map_xy=final,
        src_points=src_a.astype(np.float32),
        dst_points=dst_a.astype(np.float32),
        point_names=tuple(names),
        params={"scale": scale, "similarity": sim.tolist(), "sleeved": lm.sleeved, "tps_regularisation": TPS_REGULARISATION, "neckline": neckline},
    )
    return warp, part_of
