"""Split a person mask into LIP-20 regions with pose, face mesh, hands and colour cues.

This is the embedded human parser: no learned parsing network, but every region comes
from something observed in the photo:

- face: the face-mesh oval; neck and chest skin get the face label too (LIP annotates the
  neck with the face) and are also returned separately as ``torso_skin``;
- skin: a chroma model (YCrCb) learned from the person's own face;
- hair: a colour model learned above the forehead, grown from the top of the head;
- arms / legs: skin inside capsules along the pose's limbs, plus the hands;
- shoes: non-skin around the feet;
- clothes: the rest of the person, split into upper and lower clothes by two colour models
  seeded on the chest and on the thighs, with a spatial prior around the hip line.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vtryon.state import LIP
from vtryon.vision import mediapipe_body as mpb
from vtryon.vision.masks import capsule, disk, grabcut_refine, grow, largest_component, shrink

VISIBLE = 0.5


@dataclass
class BodyRegions:
    parsing: np.ndarray  # uint8 LIP-20
    person: np.ndarray  # bool
    skin: np.ndarray  # bool, all visible skin
    torso_skin: np.ndarray  # bool, neck and chest skin
    shoulder_width: float


def refine_person_mask(image: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """MediaPipe's soft mask is blurry at the outline; GrabCut snaps it to the photo's edges."""
    h, w = prob.shape
    r = max(2, round(0.012 * max(h, w)))
    sure_fg = shrink(prob > 0.9, r)
    sure_bg = ~grow(prob > 0.15, 2 * r)
    mask = grabcut_refine(image, prob > 0.5, sure_fg, sure_bg)
    return largest_component(mask, min_fraction=0.05)


class _Pose:
    """Pose landmarks with visibility and bounds checks."""

    def __init__(self, obs: mpb.BodyObservation, shape: tuple[int, int]) -> None:
        self.xy = obs.pose_xy
        self.vis = obs.pose_visibility
        self.h, self.w = shape

    def get(self, i: int, min_vis: float = VISIBLE) -> np.ndarray | None:
        if self.xy is None or self.vis[i] < min_vis:
            return None
        x, y = self.xy[i]
        if not (-0.05 * self.w <= x <= 1.05 * self.w and -0.05 * self.h <= y <= 1.05 * self.h):
            return None
        return self.xy[i].astype(np.float64)


def _robust_stats(values: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    med = np.median(values, axis=0)
    mad = np.median(np.abs(values - med), axis=0) * 1.4826
    return med, np.maximum(mad, floor)


def _face_mask(obs: mpb.BodyObservation, pose: _Pose, shape: tuple[int, int], sw: float) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    if obs.face is not None:
        hull = cv2.convexHull(obs.face[list(mpb.FACE_OVAL)].astype(np.int32))
        cv2.fillConvexPoly(m, hull, 1)
        return m.astype(bool)
    nose = pose.get(mpb.MP_NOSE, 0.3)
    if nose is not None:  # no face mesh (profile view, small face): an ellipse around the nose
        ax = int(0.22 * sw)
        cv2.ellipse(m, (int(nose[0]), int(nose[1] - 0.05 * sw)), (ax, int(ax * 1.35)), 0, 0, 360, 1, -1)
    return m.astype(bool)


def _skin_model(ycrcb: np.ndarray, face: np.ndarray, sw: float) -> tuple[np.ndarray, np.ndarray] | None:
    core = cv2.erode(face.astype(np.uint8), disk(max(2, int(0.04 * sw)))).astype(bool)
    samples = ycrcb[core][:, 1:].astype(np.float32)
    if len(samples) < 50:
        return None
    return _robust_stats(samples, floor=2.5)


def _skin_mask(ycrcb: np.ndarray, model: tuple[np.ndarray, np.ndarray] | None, person: np.ndarray) -> np.ndarray:
    if model is None:  # no face to learn from: a generic skin chroma box (Chai & Ngan)
        cr, cb = ycrcb[..., 1], ycrcb[..., 2]
        return person & (cr >= 135) & (cr <= 175) & (cb >= 80) & (cb <= 130)
    med, spread = model
    d = (ycrcb[..., 1:].astype(np.float32) - med) / spread
    dist = np.sqrt((d**2).sum(-1))
    y = ycrcb[..., 0]
    return person & (dist < 3.2) & (y > 40)


def _hair(lab: np.ndarray, person: np.ndarray, face: np.ndarray, skin: np.ndarray, pose: _Pose, obs: mpb.BodyObservation, sw: float, shoulder_y: float) -> np.ndarray:
    h, w = person.shape
    ys, xs = np.nonzero(face)
    if len(ys) == 0:
        return np.zeros_like(person)
    top, x0, x1 = ys.min(), xs.min(), xs.max()
    cx = 0.5 * (x0 + x1)
    # seed: person pixels above the forehead within the face's columns, and beside the temples
    seed = np.zeros_like(person)
    seed[: max(1, top), int(x0): int(x1) + 1] = True
    seed &= person & ~face
    head_band = np.zeros_like(person)
    y_face_mid = int(0.5 * (top + ys.max()))
    head_band[:y_face_mid, max(0, int(x0 - 0.15 * sw)): min(w, int(x1 + 0.15 * sw))] = True
    seed |= head_band & person & ~face & ~skin
    if seed.sum() < 30:
        return np.zeros_like(person)
    samples = lab[seed].astype(np.float32)
    med, spread = _robust_stats(samples, floor=4.0)
    d = np.sqrt((((lab.astype(np.float32) - med) / spread) ** 2).sum(-1))
    like = person & ~face & ~skin & (d < 3.0)
    # hair may fall over the shoulders, but not below the chest nor far from the head
    zone = np.zeros_like(person)
    y_max = int(min(h, shoulder_y + 0.55 * sw))
    zone[:y_max, max(0, int(cx - 1.0 * sw)): min(w, int(cx + 1.0 * sw))] = True
    like &= zone
    like = cv2.morphologyEx(like.astype(np.uint8), cv2.MORPH_OPEN, disk(max(1, int(0.01 * sw)))).astype(bool)
    # keep the pieces connected to the seed
    n, labels = cv2.connectedComponents((like | seed).astype(np.uint8), connectivity=8)
    keep = np.unique(labels[seed & (labels > 0)])
    hair = np.isin(labels, keep[keep > 0])
    return hair & person & ~face


def _kmeans_model(samples: np.ndarray, k: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    samples = samples.astype(np.float32)
    if len(samples) > 4000:
        idx = np.random.default_rng(0).choice(len(samples), 4000, replace=False)
        samples = samples[idx]
    k = max(1, min(k, len(samples) // 20))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    _, labels, centers = cv2.kmeans(samples, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    comps = []
    for j in range(k):
        pts = samples[labels.ravel() == j]
        if len(pts) < 5:
            continue
        comps.append((centers[j], np.maximum(pts.std(0), 4.0)))
    return comps


def _nll(values: np.ndarray, model: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Negative log-likelihood of each value under the best component (diagonal Gaussians)."""
    best = np.full(values.shape[0], np.inf, np.float32)
    for mean, std in model:
        z = (values - mean) / std
        nll = 0.5 * (z**2).sum(-1) + np.log(std).sum()
        best = np.minimum(best, nll)
    return best


def _split_clothes(lab: np.ndarray, clothes: np.ndarray, pose: _Pose, sw: float, shoulder_y: float) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower clothes from colour (and texture) models seeded on the chest and the thighs.

    ``lab`` holds one feature vector per pixel (Lab colour, then texture)."""
    h, w = clothes.shape
    hips = [pose.get(mpb.MP_L_HIP), pose.get(mpb.MP_R_HIP)]
    if any(p is None for p in hips) or max(p[1] for p in hips) > h * 0.98:
        return clothes.copy(), np.zeros_like(clothes)  # no lower body in view
    hip_y = float(np.mean([p[1] for p in hips]))
    hip_x = float(np.mean([p[0] for p in hips]))
    torso = max(hip_y - shoulder_y, 0.3 * sw)
    ls, rs = pose.get(mpb.MP_L_SHOULDER), pose.get(mpb.MP_R_SHOULDER)
    cx = 0.5 * (ls[0] + rs[0])
    half = 0.25 * sw
    upper_seed = np.zeros_like(clothes)
    upper_seed[int(shoulder_y + 0.15 * torso): int(shoulder_y + 0.5 * torso), int(cx - half): int(cx + half)] = True
    upper_seed &= clothes
    lower_seed = np.zeros_like(clothes)
    knees = [pose.get(mpb.MP_L_KNEE), pose.get(mpb.MP_R_KNEE)]
    y_lo = int(hip_y + 0.15 * torso)
    y_hi = int(min(h, hip_y + (0.6 * torso if all(k is not None for k in knees) else 0.3 * torso)))
    lower_seed[y_lo:y_hi, int(hip_x - 0.4 * sw): int(hip_x + 0.4 * sw)] = True
    lower_seed &= clothes
    if upper_seed.sum() < 50:
        return clothes & (np.arange(h)[:, None] < hip_y), clothes & (np.arange(h)[:, None] >= hip_y)
    if lower_seed.sum() < 50:
        return clothes.copy(), np.zeros_like(clothes)
    up_model = _kmeans_model(lab[upper_seed])
    lo_model = _kmeans_model(lab[lower_seed])
    ys, xs = np.nonzero(clothes)
    vals = lab[ys, xs].astype(np.float32)
    # spatial prior: a logistic in y around the hip line (upper above, lower below)
    prior = (ys - hip_y) / (0.12 * torso)
    score = _nll(vals, lo_model) - _nll(vals, up_model) - 1.5 * prior
    upper = np.zeros_like(clothes)
    upper[ys, xs] = score > 0
    upper = cv2.medianBlur(upper.astype(np.uint8) * 255, 5) > 127
    upper &= clothes
    upper = largest_component(upper, min_fraction=0.1) | (upper_seed & clothes)
    lower = clothes & ~upper
    lower = largest_component(lower, min_fraction=0.1) if lower.any() else lower
    upper |= clothes & ~lower & (np.arange(h)[:, None] < hip_y)
    lower = clothes & ~upper
    return upper, lower


def _is_skirt(lower: np.ndarray, pose: _Pose) -> bool:
    """A skirt is one piece across both legs at knee height; trousers are two."""
    knees = [pose.get(mpb.MP_L_KNEE), pose.get(mpb.MP_R_KNEE)]
    if any(k is None for k in knees):
        return False
    y = int(np.mean([k[1] for k in knees]))
    hips = [pose.get(mpb.MP_L_HIP), pose.get(mpb.MP_R_HIP)]
    y_mid = int(0.5 * (y + np.mean([p[1] for p in hips])))
    if not (0 <= y_mid < lower.shape[0]):
        return False
    row = lower[y_mid].astype(np.int8)
    runs = int(((row[1:] - row[:-1]) == 1).sum() + row[0])
    return runs == 1 and row.sum() > 0


def split_body_regions(image: np.ndarray, obs: mpb.BodyObservation, person: np.ndarray | None = None) -> BodyRegions:
    """The LIP-20 map of ``image``. ``person`` may come from another segmenter (DeepLabV3)."""
    h, w = image.shape[:2]
    shape = (h, w)
    pose = _Pose(obs, shape)
    ls, rs = pose.get(mpb.MP_L_SHOULDER), pose.get(mpb.MP_R_SHOULDER)
    if ls is None or rs is None:
        raise ValueError("both shoulders must be visible")
    sw = float(np.linalg.norm(ls - rs))
    shoulder_y = 0.5 * (ls[1] + rs[1])
    if person is None:
        person = refine_person_mask(image, obs.segmentation)
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)

    face = _face_mask(obs, pose, shape, sw) & person
    skin_all = _skin_mask(ycrcb, _skin_model(ycrcb, face, sw), person)
    # skin is only believed where skin can be: face, neck/chest, limbs, hands
    hair = _hair(lab, person, face, skin_all & ~face, pose, obs, sw, shoulder_y)
    skin_all &= ~hair

    parsing = np.zeros(shape, np.uint8)
    limb = {}
    for name, ids, radii in (
        ("left-arm", (mpb.MP_L_SHOULDER, mpb.MP_L_ELBOW, mpb.MP_L_WRIST), (0.2, 0.17)),
        ("right-arm", (mpb.MP_R_SHOULDER, mpb.MP_R_ELBOW, mpb.MP_R_WRIST), (0.2, 0.17)),
        ("left-leg", (mpb.MP_L_HIP, mpb.MP_L_KNEE, mpb.MP_L_ANKLE), (0.24, 0.2)),
        ("right-leg", (mpb.MP_R_HIP, mpb.MP_R_KNEE, mpb.MP_R_ANKLE), (0.24, 0.2)),
    ):
        pts = [pose.get(i, 0.3) for i in ids]
        zone = np.zeros(shape, bool)
        if pts[0] is not None and pts[1] is not None:
            zone |= capsule(shape, pts[:2], radii[0] * sw)
            if pts[2] is not None:
                zone |= capsule(shape, pts[1:], radii[1] * sw)
        limb[name] = zone
    hand_zone = {"left-arm": np.zeros(shape, bool), "right-arm": np.zeros(shape, bool)}
    for hand in obs.hands:
        m = np.zeros(shape, np.uint8)
        cv2.fillConvexPoly(m, cv2.convexHull(hand.astype(np.int32)), 1)
        m = cv2.dilate(m, disk(max(2, int(0.04 * sw)))).astype(bool)
        # assign the hand to the nearer wrist
        c = hand.mean(0)
        wl, wr = pose.get(mpb.MP_L_WRIST, 0.2), pose.get(mpb.MP_R_WRIST, 0.2)
        dl = np.inf if wl is None else np.linalg.norm(c - wl)
        dr = np.inf if wr is None else np.linalg.norm(c - wr)
        hand_zone["left-arm" if dl <= dr else "right-arm"] |= m

    # legs and arms may overlap (hands on thighs): arms win where skin is near a wrist
    for name in ("left-leg", "right-leg"):
        parsing[limb[name] & skin_all & ~face] = LIP[name]
    for name in ("left-arm", "right-arm"):
        parsing[((limb[name] & skin_all) | (hand_zone[name] & person)) & ~face] = LIP[name]

    # feet: non-skin around heel/toe/ankle
    for name, ids in (("left-shoe", (mpb.MP_L_ANKLE, mpb.MP_L_HEEL, mpb.MP_L_FOOT)), ("right-shoe", (mpb.MP_R_ANKLE, mpb.MP_R_HEEL, mpb.MP_R_FOOT))):
        pts = [pose.get(i, 0.5) for i in ids]
        if all(p is not None for p in pts) and max(p[1] for p in pts) < h:
            zone = capsule(shape, [pts[0], pts[1], pts[2]], 0.13 * sw) & person & ~skin_all
            ankle_y = pts[0][1]
            zone &= np.arange(h)[:, None] > ankle_y - 0.05 * sw
            parsing[zone & (parsing == 0)] = LIP[name]

    # neck and chest skin: skin below the chin, between the shoulders, not on an arm
    chin_y = obs.face[mpb.CHIN][1] if obs.face is not None else shoulder_y - 0.35 * sw
    torso_skin = skin_all & ~face & (parsing == 0)
    torso_skin &= np.arange(h)[:, None] > chin_y - 0.02 * sw
    torso_skin = largest_component(torso_skin, 0.2) if torso_skin.any() else torso_skin
    parsing[hair] = LIP["hair"]
    parsing[face] = LIP["face"]
    parsing[torso_skin] = LIP["face"]

    # the rest of the person is clothing (or skin the model missed: kept as clothing-like
    # only if not skin-coloured)
    clothes = person & (parsing == 0) & ~skin_all
    # the outline of bare limbs mixes skin with backdrop into colours that are not skin:
    # thin slivers are not clothing (they fall to the limbs below)
    r = max(2.0, 0.012 * sw)
    limbs = limb["left-arm"] | limb["right-arm"] | limb["left-leg"] | limb["right-leg"]
    limbs &= np.arange(h)[:, None] > shoulder_y + 0.3 * sw  # straps over the shoulders are clothing
    clothes &= grow(shrink(clothes, r), r) | ~limbs
    # colour plus local texture: a white top and the white stripes of a zebra skirt share a
    # colour but not a texture
    lum = lab[..., 0].astype(np.float32)
    k = max(3, int(0.02 * sw) | 1)
    mean = cv2.blur(lum, (k, k))
    texture = np.sqrt(np.maximum(cv2.blur(lum * lum, (k, k)) - mean * mean, 0.0))
    features = np.dstack([lab.astype(np.float32), 1.5 * texture])
    upper, lower = _split_clothes(features, clothes, pose, sw, shoulder_y)
    parsing[upper] = LIP["upper-clothes"]
    parsing[lower] = LIP["skirt"] if _is_skirt(lower, pose) else LIP["pants"]
    # skin no limb claimed: the limb's edge if it lies just outside a limb's capsule (a wide
    # arm), else torso skin (a bare midriff, a shoulder)
    leftover = person & (parsing == 0)
    for name in ("left-arm", "right-arm", "left-leg", "right-leg"):
        near = leftover & grow(limb[name], 0.08 * sw)
        parsing[near] = LIP[name]
        leftover &= ~near
    # small skin-coloured islands inside clothing are print (leopard spots), not skin
    n, labels, stats, _ = cv2.connectedComponentsWithStats(leftover.astype(np.uint8), connectivity=8)
    cloth_labels = [LIP["upper-clothes"], LIP["pants"], LIP["skirt"]]
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] > 0.03 * sw * sw:
            continue
        x, y, bw, bh = stats[i, :4]
        box = np.s_[max(0, y - 3) : y + bh + 3, max(0, x - 3) : x + bw + 3]
        island = labels[box] == i
        ring = grow(island, 2) & ~island
        around = parsing[box][ring]
        is_cloth = np.isin(around, cloth_labels)
        if len(around) and is_cloth.mean() > 0.6:
            values, counts = np.unique(around[is_cloth], return_counts=True)
            parsing[box][island] = values[counts.argmax()]
            leftover[box][island] = False
    torso_skin |= leftover
    parsing[leftover] = LIP["face"]
    return BodyRegions(parsing, person, skin_all | torso_skin, torso_skin, sw)
