"""The inputs of the GAN try-on networks, built as CP-VTON's and VITON-HD's datasets build them.

Each original reads a person photo already framed at its network size (256x192 or
1024x768) with a LIP parsing and OpenPose keypoints. Here the person is framed by a
:class:`Frame` (a 3:4 box around the person, cropped and resized, padded when it leaves the
photo) and the network's output is pasted back into the photo at full resolution.

What is built exactly as the originals do (PIL drawing, PIL resizes, label tables):
- CP-VTON's 22-channel agnostic: body shape (parse > 0 down to W/16 x H/16 and back with
  PIL bilinear, in [-1, 1]), head RGB (LIP 1, 2, 4, 13; -1 elsewhere), 18 pose maps with an
  11x11 white square per keypoint (radius 5; points with x <= 1 or y <= 1 are not drawn).
- VITON-HD's parse-agnostic (arms masked along the pose with PIL lines and ellipses, upper
  clothes and label 10 removed) and its 13-class merge; the cloth-agnostic person image
  (grey PIL shapes over arms, torso and neck, head and lower body pasted back); the pose
  rendered as OpenPose renders BODY_25 on black; the binary noise map of ``gen_noise``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vtryon.state import OPENPOSE18, Keypoints

# ----------------------------------------------------------------------------------------
# Framing: person / garment box <-> network pixels
# ----------------------------------------------------------------------------------------

NETWORK_ASPECT = 0.75  # width / height of 256x192 and 1024x768
# A photo within 5% of 3:4 whose person spans at least 70% of its height is used whole.
WHOLE_PHOTO_ASPECT_TOLERANCE = 0.05
WHOLE_PHOTO_MIN_HEIGHT = 0.7


@dataclass(frozen=True)
class Frame:
    """An axis-aligned box (x0, y0, w, h) in image pixels, shown at ``size`` (h, w) network pixels.

    The box keeps the network's aspect, so one scale maps both axes. It may extend beyond
    the image; that part is filled when cropping. Pixel centres follow ``cv2.resize``:
    network x = (image x - x0 + 0.5) * scale - 0.5.
    """

    x0: int
    y0: int
    w: int
    h: int
    size: tuple[int, int]

    @property
    def scale(self) -> float:
        return self.size[1] / self.w

    def to_network(self, xy: np.ndarray) -> np.ndarray:
        """Image pixel coordinates (..., 2) -> network pixel coordinates."""
        return (np.asarray(xy, np.float64) - (self.x0, self.y0) + 0.5) * self.scale - 0.5

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """Network pixel coordinates (..., 2) -> image pixel coordinates."""
        return (np.asarray(xy, np.float64) + 0.5) / self.scale - 0.5 + (self.x0, self.y0)

    def with_size(self, size: tuple[int, int]) -> "Frame":
        return Frame(self.x0, self.y0, self.w, self.h, size)

    def crop(self, image: np.ndarray, *, nearest: bool = False, fill: float | tuple[float, ...] = 0) -> np.ndarray:
        """The box of ``image`` at network size (area filter when shrinking, nearest for labels)."""
        ih, iw = image.shape[:2]
        pad_l, pad_t = max(0, -self.x0), max(0, -self.y0)
        pad_r, pad_b = max(0, self.x0 + self.w - iw), max(0, self.y0 + self.h - ih)
        part = image[max(0, self.y0) : min(ih, self.y0 + self.h), max(0, self.x0) : min(iw, self.x0 + self.w)]
        if pad_l or pad_t or pad_r or pad_b:
            value = fill if isinstance(fill, tuple) else (fill,) * (image.shape[2] if image.ndim == 3 else 1)
            part = cv2.copyMakeBorder(part, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_CONSTANT, value=value)
        h, w = self.size
        if nearest:
            interp = cv2.INTER_NEAREST
        else:
            interp = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
        return cv2.resize(part, (w, h), interpolation=interp)

    def upsample(self, src: np.ndarray, photo_hw: tuple[int, int], *, cubic: bool = False) -> tuple[np.ndarray, tuple[slice, slice]]:
        """Network-size ``src`` resized to the box (float32), cut to the part inside a photo of
        ``photo_hw``, and the photo slices that part covers."""
        ih, iw = photo_hw
        big = cv2.resize(src.astype(np.float32), (self.w, self.h), interpolation=cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR)
        xs0, ys0 = max(0, self.x0), max(0, self.y0)
        xs1, ys1 = min(iw, self.x0 + self.w), min(ih, self.y0 + self.h)
        part = big[ys0 - self.y0 : ys1 - self.y0, xs0 - self.x0 : xs1 - self.x0]
        return part, (slice(ys0, ys1), slice(xs0, xs1))

    def paste(self, dst: np.ndarray, src: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Blend network-size ``src`` into ``dst`` (image size) through ``alpha`` (network size, 0..1)."""
        part, sl = self.upsample(src, dst.shape[:2], cubic=True)
        a, _ = self.upsample(alpha, dst.shape[:2])
        a = np.clip(a, 0, 1)
        out = dst.astype(np.float32)
        if out.ndim == 3:
            a = a[..., None]
        out[sl] = a * part + (1 - a) * out[sl]
        return np.clip(np.rint(out), 0, 255).astype(dst.dtype)


def _fit_span(lo: float, length: float, limit: int) -> float:
    """Start of a span of ``length`` that covers [lo, lo + length) shifted inside [0, limit] when it fits."""
    if length >= limit:
        return (limit - length) / 2  # larger than the photo: centred, padded on both sides
    return min(max(lo, 0.0), limit - length)


def _aspect_box(x0: float, y0: float, x1: float, y1: float, aspect: float, margin: float,
                image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box of width/height ``aspect`` around (x0, y0, x1, y1) plus ``margin``, kept inside the
    photo where the photo has room (a 3:4 photo of a standing person is taken whole)."""
    ih, iw = image_hw
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    x0, x1 = max(0.0, x0 - mx), min(float(iw), x1 + mx)
    y0, y1 = max(0.0, y0 - my), min(float(ih), y1 + my)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    if w / h < aspect:
        w = h * aspect
        x0 = _fit_span((x0 + x1) / 2 - w / 2, w, iw)
    else:
        h = w / aspect
        y0 = _fit_span((y0 + y1) / 2 - h / 2, h, ih)
    h = max(h, 8.0)
    w = h * aspect
    return int(round(x0)), int(round(y0)), max(1, int(round(w))), max(1, int(round(h)))


def person_frame(parsing: np.ndarray, size: tuple[int, int], margin: float = 0.04) -> Frame:
    """The 3:4 box the networks see: the whole photo when it is already framed like the datasets
    (3:4, person filling most of the height), else a 3:4 box around the parsed person (parse > 0)
    kept inside the photo where it has room, or the whole photo when nothing is parsed."""
    ih, iw = parsing.shape
    aspect = size[1] / size[0]
    ys, xs = np.nonzero(parsing > 0)
    if len(xs) == 0:
        x0, y0, x1, y1 = 0.0, 0.0, float(iw), float(ih)
    else:
        x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    if abs(iw / ih / aspect - 1) < WHOLE_PHOTO_ASPECT_TOLERANCE and (y1 - y0) >= WHOLE_PHOTO_MIN_HEIGHT * ih:
        return Frame(0, 0, iw, ih, size)  # framed like the datasets already: the originals' own input
    bx, by, bw, bh = _aspect_box(x0, y0, x1, y1, aspect, margin, (ih, iw))
    return Frame(bx, by, bw, bh, size)


def garment_frame(mask: np.ndarray, size: tuple[int, int], margin: float = 0.08) -> Frame:
    """The 3:4 box around the garment mask, as in-shop photos frame a garment."""
    ys, xs = np.nonzero(mask > 127)
    ih, iw = mask.shape
    if len(xs) == 0:
        x0, y0, x1, y1 = 0.0, 0.0, float(iw), float(ih)
    else:
        x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    bx, by, bw, bh = _aspect_box(x0, y0, x1, y1, size[1] / size[0], margin, (ih, iw))
    return Frame(bx, by, bw, bh, size)


def on_white(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The garment on a white background (in-shop training photos are white-background shots)."""
    a = (mask.astype(np.float32) / 255.0)[..., None]
    return np.clip(np.rint(image * a + 255.0 * (1 - a)), 0, 255).astype(np.uint8)


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """uint8 HxWxC -> float32 CxHxW in [-1, 1] (ToTensor + Normalize(0.5, 0.5))."""
    return (image.astype(np.float32).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5


def from_unit_range(chw: np.ndarray) -> np.ndarray:
    """float CxHxW in [-1, 1] -> uint8 HxWxC, as the originals save images."""
    return np.clip((chw.transpose(1, 2, 0) + 1) * 0.5 * 255, 0, 255).astype(np.uint8)


def keypoints_in_frame(kp: Keypoints, frame: Frame, min_conf: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(xy (18, 2) in network pixels, present (18,) bool) for the keypoints of ``kp``."""
    xy = frame.to_network(kp.xy)
    present = kp.conf >= min_conf
    return xy, present


# ----------------------------------------------------------------------------------------
# CP-VTON
# ----------------------------------------------------------------------------------------

CPVTON_HEAD = (1, 2, 4, 13)  # LIP hat, hair, sunglasses, face
CPVTON_CLOTH = (5, 6, 7)  # LIP upper-clothes, dress, coat
CPVTON_RADIUS = 5  # test.py --radius


@dataclass
class CPVTONAgnostic:
    shape: np.ndarray  # (H, W) float32 in [-1, 1]
    head: np.ndarray  # (3, H, W) float32 in [-1, 1]
    pose: np.ndarray  # (18, H, W) float32 in {-1, 1}

    def stack(self) -> np.ndarray:
        """The 22-channel agnostic, in the original's order."""
        return np.concatenate([self.shape[None], self.head, self.pose], 0).astype(np.float32)


def cpvton_body_shape(parse: np.ndarray) -> np.ndarray:
    """parse > 0, to (W/16, H/16) and back with PIL bilinear, mapped to [-1, 1]."""
    from PIL import Image

    h, w = parse.shape
    im = Image.fromarray(((parse > 0) * 255).astype(np.uint8))
    im = im.resize((w // 16, h // 16), Image.BILINEAR).resize((w, h), Image.BILINEAR)
    return ((np.asarray(im, np.float32) / 255.0) - 0.5) / 0.5


def cpvton_pose_maps(xy: np.ndarray, present: np.ndarray, size: tuple[int, int], radius: int = CPVTON_RADIUS) -> np.ndarray:
    """18 maps: -1, with a white (2r+1)-square drawn by PIL at each keypoint with x > 1 and y > 1."""
    from PIL import Image, ImageDraw

    h, w = size
    maps = np.full((len(OPENPOSE18), h, w), -1.0, np.float32)
    for i, ((x, y), ok) in enumerate(zip(xy, present)):
        if not ok or not (x > 1 and y > 1):  # the original leaves (0, 0) points undrawn
            continue
        one = Image.new("L", (w, h))
        ImageDraw.Draw(one).rectangle((x - radius, y - radius, x + radius, y + radius), "white", "white")
        maps[i] = (np.asarray(one, np.float32) / 255.0 - 0.5) / 0.5
    return maps


def cpvton_agnostic(person: np.ndarray, parse: np.ndarray, xy: np.ndarray, present: np.ndarray) -> CPVTONAgnostic:
    """CP-VTON's person representation from a network-size person (uint8), LIP parse and keypoints."""
    im = to_unit_range(person)
    phead = np.isin(parse, CPVTON_HEAD).astype(np.float32)
    head = im * phead - (1 - phead)
    return CPVTONAgnostic(cpvton_body_shape(parse), head, cpvton_pose_maps(xy, present, parse.shape))


# ----------------------------------------------------------------------------------------
# VITON-HD
# ----------------------------------------------------------------------------------------

# OpenPose-18 (COCO) index -> BODY_25 index; BODY_25's MidHip (8) and feet (19-24) are not in COCO-18.
COCO18_TO_BODY25 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
BODY25_PAIRS = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12), (12, 13),
    (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21), (11, 22), (22, 23),
    (11, 24),
)
BODY25_COLORS = (  # RGB, OpenPose's POSE_BODY_25_COLORS_RENDER
    (255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (255, 0, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (255, 0, 170), (170, 0, 255), (255, 0, 255), (85, 0, 255), (0, 0, 255), (0, 0, 255),
    (0, 0, 255), (0, 255, 255), (0, 255, 255), (0, 255, 255),
)
OPENPOSE_RENDER_THRESHOLD = 0.05  # --render_threshold default

# VITON-HD's 13 parse-agnostic classes from the LIP labels (datasets.py), and the 7 labels
# the try-on generator reads, merged from the 13 the segmentation generator predicts (test.py).
VITONHD_13_FROM_LIP = (
    ("background", (0, 10)), ("hair", (1, 2)), ("face", (4, 13)), ("upper", (5, 6, 7)), ("bottom", (9, 12)),
    ("left_arm", (14,)), ("right_arm", (15,)), ("left_leg", (16,)), ("right_leg", (17,)), ("left_shoe", (18,)),
    ("right_shoe", (19,)), ("socks", (8,)), ("noise", (3, 11)),
)
VITONHD_7_FROM_13 = (
    ("background", (0,)), ("paste", (2, 4, 7, 8, 9, 10, 11)), ("upper", (3,)), ("hair", (1,)),
    ("left_arm", (5,)), ("right_arm", (6,)), ("noise", (12,)),
)


def body25_from_openpose18(kp_xy: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pose_data (25, 2), confidence (25,)) as OpenPose's BODY_25 json: missing points at (0, 0).

    MidHip is the mean of the two hips when both are present (how BODY_25 places it).
    """
    pose = np.zeros((25, 2), np.float64)
    conf = np.zeros(25, np.float32)
    for i18, i25 in enumerate(COCO18_TO_BODY25):
        if present[i18]:
            pose[i25] = kp_xy[i18]
            conf[i25] = 1.0
    if conf[9] and conf[12]:
        pose[8] = (pose[9] + pose[12]) / 2
        conf[8] = 1.0
    return pose, conf


def render_openpose_body25(pose: np.ndarray, conf: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The OpenPose BODY_25 rendering on black (``--disable_blending``), as renderKeypointsCpu draws it."""
    h, w = size
    canvas = np.zeros((h, w, 3), np.uint8)
    ok = conf > OPENPOSE_RENDER_THRESHOLD
    if not ok.any():
        return canvas
    pts = pose[ok]
    rect_w, rect_h = pts[:, 0].max() - pts[:, 0].min(), pts[:, 1].max() - pts[:, 1].min()
    if rect_w * rect_h <= 0:
        return canvas
    ratio = min(1.0, max(rect_w / w, rect_h / h))
    thickness_ratio = max(int(round(np.sqrt(w * h) / 75.0 * ratio)), 2)
    thickness_circle = max(1, thickness_ratio if ratio > 0.05 else -1)
    thickness_line = max(1, int(round(thickness_ratio * 0.75)))
    radius = thickness_ratio // 2

    def pt(i: int) -> tuple[int, int]:
        return int(round(pose[i, 0])), int(round(pose[i, 1]))

    for a, b in BODY25_PAIRS:
        if ok[a] and ok[b]:
            cv2.line(canvas, pt(a), pt(b), BODY25_COLORS[b], thickness_line, cv2.LINE_8)
    for i in range(25):
        if ok[i]:
            cv2.circle(canvas, pt(i), radius, BODY25_COLORS[i], thickness_circle, cv2.LINE_8)
    return canvas


def _missing(pose: np.ndarray, i: int) -> bool:
    return pose[i, 0] == 0.0 and pose[i, 1] == 0.0


def vitonhd_parse_agnostic(parse: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """datasets.py ``get_parse_agnostic``: arms masked along the pose, upper clothes and label 10 removed.

    ``parse``: LIP labels at load size; ``pose``: BODY_25 (25, 2) with (0, 0) for missing points.
    """
    from PIL import Image, ImageDraw

    h, w = parse.shape
    r = 10
    agnostic = Image.fromarray(parse.astype(np.uint8), "L")
    for parse_id, pose_ids in ((14, (2, 5, 6, 7)), (15, (5, 2, 3, 4))):
        mask_arm = Image.new("L", (w, h), "black")
        draw = ImageDraw.Draw(mask_arm)
        i_prev = pose_ids[0]
        for i in pose_ids[1:]:
            if _missing(pose, i_prev) or _missing(pose, i):
                continue
            draw.line([tuple(pose[j]) for j in (i_prev, i)], "white", width=r * 10)
            px, py = pose[i]
            radius = r * 4 if i == pose_ids[-1] else r * 15
            draw.ellipse((px - radius, py - radius, px + radius, py + radius), "white", "white")
            i_prev = i
        parse_arm = (np.asarray(mask_arm) / 255) * (parse == parse_id).astype(np.float32)
        agnostic.paste(0, None, Image.fromarray(np.uint8(parse_arm * 255), "L"))
    agnostic.paste(0, None, Image.fromarray(np.uint8(np.isin(parse, (5, 6, 7)) * 255), "L"))
    agnostic.paste(0, None, Image.fromarray(np.uint8((parse == 10) * 255), "L"))
    return np.asarray(agnostic, np.uint8)


def merge_labels(labels: np.ndarray, table: tuple[tuple[str, tuple[int, ...]], ...]) -> np.ndarray:
    """One-hot (len(table), H, W) float32: channel i is the sum of the source labels it merges."""
    out = np.zeros((len(table),) + labels.shape, np.float32)
    for i, (_, sources) in enumerate(table):
        out[i] = np.isin(labels, sources)
    return out


def vitonhd_img_agnostic(image: np.ndarray, parse: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """datasets.py ``get_img_agnostic``: grey (128) over arms, torso and neck; head and lower body kept.

    The hips are first moved about their midpoint to shoulder width, as the original does.
    """
    from PIL import Image, ImageDraw

    pose = pose.copy()
    phead = np.isin(parse, (4, 13))
    plower = np.isin(parse, (9, 12, 16, 17, 18, 19))
    r = 20
    img = Image.fromarray(image)
    agnostic = img.copy()
    draw = ImageDraw.Draw(agnostic)
    length_a = np.linalg.norm(pose[5] - pose[2])
    length_b = np.linalg.norm(pose[12] - pose[9])
    if length_b > 0:  # the original divides by zero (NaN drawing) when the hips coincide
        point = (pose[9] + pose[12]) / 2
        pose[9] = point + (pose[9] - point) / length_b * length_a
        pose[12] = point + (pose[12] - point) / length_b * length_a
    draw.line([tuple(pose[i]) for i in (2, 5)], "gray", width=r * 10)
    for i in (2, 5):
        px, py = pose[i]
        draw.ellipse((px - r * 5, py - r * 5, px + r * 5, py + r * 5), "gray", "gray")
    for i in (3, 4, 6, 7):
        if _missing(pose, i - 1) or _missing(pose, i):
            continue
        draw.line([tuple(pose[j]) for j in (i - 1, i)], "gray", width=r * 10)
        px, py = pose[i]
        draw.ellipse((px - r * 5, py - r * 5, px + r * 5, py + r * 5), "gray", "gray")
    for i in (9, 12):
        px, py = pose[i]
        draw.ellipse((px - r * 3, py - r * 6, px + r * 3, py + r * 6), "gray", "gray")
    draw.line([tuple(pose[i]) for i in (2, 9)], "gray", width=r * 6)
    draw.line([tuple(pose[i]) for i in (5, 12)], "gray", width=r * 6)
    draw.line([tuple(pose[i]) for i in (9, 12)], "gray", width=r * 12)
    draw.polygon([tuple(pose[i]) for i in (2, 5, 12, 9)], "gray", "gray")
    px, py = pose[1]
    draw.rectangle((px - r * 7, py - r * 7, px + r * 7, py + r * 7), "gray", "gray")
    agnostic.paste(img, None, Image.fromarray(np.uint8(phead * 255), "L"))
    agnostic.paste(img, None, Image.fromarray(np.uint8(plower * 255), "L"))
    return np.asarray(agnostic, np.uint8)


def complete_torso(pose: np.ndarray, parse: np.ndarray) -> np.ndarray:
    """Fill the BODY_25 points VITON-HD's drawing needs (neck, shoulders, hips) when the pose lacks them.

    The original assumes a full-body dataset pose; for a photo cut at the waist a hip is
    placed below its shoulder at the bottom of the clothed torso, and a missing neck between
    the shoulders. A missing shoulder cannot be guessed: the caller reports it.
    """
    pose = pose.copy()
    if _missing(pose, 1) and not (_missing(pose, 2) or _missing(pose, 5)):
        pose[1] = (pose[2] + pose[5]) / 2
    torso = np.isin(parse, (5, 6, 7, 9, 12))
    ys = np.nonzero(torso.any(axis=1))[0]
    bottom = float(ys.max()) if len(ys) else float(parse.shape[0] - 1)
    for hip, shoulder in ((9, 2), (12, 5)):
        if _missing(pose, hip) and not _missing(pose, shoulder):
            pose[hip] = (pose[shoulder][0], max(bottom, pose[shoulder][1] + 1.0))
    return pose


def binary_noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """``gen_noise``: N(0, 255) saturated into uint8, divided by 255 and truncated -> {0, 1} (~16% ones)."""
    z = np.clip(np.rint(rng.standard_normal(shape) * 255.0), 0, 255)
    return (z / 255).astype(np.uint8).astype(np.float32)


def gaussian_kernel(size: int = 15, sigma: float = 3.0) -> np.ndarray:
    """torchgeometry's normalised 1-D Gaussian (test.py blurs with a 15x15, sigma 3 kernel)."""
    x = np.arange(size, dtype=np.float64) - size // 2
    if size % 2 == 0:
        x = x + 0.5
    g = np.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


# ----------------------------------------------------------------------------------------
# From network outputs back to the photo
# ----------------------------------------------------------------------------------------

OUTSIDE = -1.0  # map value where the garment does not reach (Warp.map_xy convention)


def grid_to_pixels(grid: np.ndarray, size: tuple[int, int], *, align_corners: bool) -> np.ndarray:
    """A ``grid_sample`` grid (h, w, 2) in [-1, 1] -> pixel coordinates of an image of ``size`` (h, w)."""
    h, w = size
    scale = np.array([w, h], np.float64)
    g = grid.astype(np.float64)
    if align_corners:
        return (g + 1) / 2 * (scale - 1)
    return ((g + 1) * scale - 1) / 2


def network_map_to_person(map_net: np.ndarray, person: Frame, person_size: tuple[int, int]) -> np.ndarray:
    """A sampling map over the person frame's network pixels -> the same map over every photo pixel.

    ``map_net`` (h, w, 2) holds garment-photo coordinates; it is resized (bilinear, the TPS
    is smooth) to the frame's box in the photo and placed there; photo pixels outside the
    box get :data:`OUTSIDE`.
    """
    ih, iw = person_size
    big = cv2.resize(map_net.astype(np.float32), (person.w, person.h), interpolation=cv2.INTER_LINEAR)
    out = np.full((ih, iw, 2), OUTSIDE, np.float32)
    xs0, ys0 = max(0, person.x0), max(0, person.y0)
    xs1, ys1 = min(iw, person.x0 + person.w), min(ih, person.y0 + person.h)
    out[ys0:ys1, xs0:xs1] = big[ys0 - person.y0 : ys1 - person.y0, xs0 - person.x0 : xs1 - person.x0]
    return out


# LIP labels a try-on repaints: the old upper garment, arms and hands; the new garment's mask
# is added. The head is never repainted (the generators blur faces); everything else (lower
# body, background) keeps the photo's pixels too.
REPAINTED_LIP = (3, 5, 6, 7, 10, 11, 14, 15)  # glove, upper-clothes, dress, coat, jumpsuits, scarf, arms
KEPT_LIP = (1, 2, 4, 13)  # hat, hair, sunglasses, face


def compose_at_photo_resolution(person: np.ndarray, frame: Frame, rendered: np.ndarray, composite: np.ndarray,
                                cloth: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """CP-VTON's ``c * m + p * (1 - m)`` evaluated at the photo's resolution, blended in through ``alpha``.

    ``rendered`` (uint8) and ``composite`` m (0..1) come from the network and are upsampled;
    ``cloth`` is the warped garment already at photo size (step 05's), so the garment keeps its
    full-resolution detail instead of the network's 256x192 copy.
    """
    hw = person.shape[:2]
    p, sl = frame.upsample(rendered, hw, cubic=True)
    m, _ = frame.upsample(composite, hw)
    a, _ = frame.upsample(alpha, hw)
    m, a = np.clip(m, 0, 1)[..., None], np.clip(a, 0, 1)[..., None]
    out = person.astype(np.float32)
    inner = cloth[sl].astype(np.float32) * m + p * (1 - m)
    out[sl] = a * inner + (1 - a) * out[sl]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


MIN_COMPONENT_FRACTION = 0.02  # parsing specks (a few "upper-clothes" pixels in the hair) are not repainted


def _drop_specks(mask: np.ndarray, fraction: float) -> np.ndarray:
    """Keep the connected components of at least ``fraction`` of the largest one."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= fraction * areas.max()) + 1
    return np.isin(labels, keep)


def repaint_region(parse: np.ndarray, warped_mask: np.ndarray, feather_px: float) -> np.ndarray:
    """Where the generated image replaces the photo (float32 0..1, network size): old garment,
    arms and the new garment except over the head, grown by ``feather_px`` and feathered."""
    region = (np.isin(parse, REPAINTED_LIP) | (warped_mask > 0.5)) & ~np.isin(parse, KEPT_LIP)
    region = _drop_specks(region, MIN_COMPONENT_FRACTION)
    r = max(1, int(round(feather_px)))
    grown = cv2.dilate(region.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    soft = cv2.GaussianBlur(grown.astype(np.float32), (0, 0), sigmaX=max(0.5, feather_px / 2))
    return np.maximum(soft, region.astype(np.float32))
