"""The clothing-agnostic mask OOTDiffusion inpaints (and CatVTON takes too), from our LIP-20
parsing and OpenPose-18 keypoints.

It follows OOTDiffusion's ``get_mask_location`` (run/utils_ootd.py) at its working height of
512 pixels, with its ATR label sets translated to LIP:

- kept always: head (face, hat, sunglasses), shoes, gloves (hands), and for upper-body
  garments the lower garments (for lower-body garments: upper garments and arms);
- to regenerate: the garment classes of the category, dilated (5x5, 5 times); for upper
  garments and dresses also the arms, redrawn as thick lines shoulder-elbow-wrist (the
  wrist pushed 20% further out) and dilated (5x5, 4 times), and the neck;
- hands (arm pixels beyond the drawn arms) are kept; holes are filled and the largest
  region is kept; the mask is resized back to the parsing's size, where the labels kept
  always are cleared exactly.

LIP has no neck class (OOTDiffusion takes it from ATR's face minus LIP's face): here the
neck is what lies below the chin line (40% of the way from the nose to the neck keypoint)
and is labelled face, or background down to the neck keypoint within the face's width.
"""

from __future__ import annotations

import cv2
import numpy as np

from vtryon.state import CATEGORIES, LIP, Keypoints

WORK_HEIGHT = 512
ARM_WIDTH = {"hd": 60, "dc": 45}  # at 512 pixels high: OOTDiffusion's hd / dc values

_HEAD = (LIP["hat"], LIP["sunglasses"], LIP["face"])
_FIXED = (LIP["left-shoe"], LIP["right-shoe"], LIP["hat"], LIP["sunglasses"], LIP["glove"])
_GARMENT = {
    "upper": (LIP["upper-clothes"], LIP["coat"], LIP["dress"], LIP["jumpsuits"]),
    "lower": (LIP["pants"], LIP["skirt"], LIP["left-leg"], LIP["right-leg"], LIP["socks"]),
    "dress": (LIP["dress"], LIP["upper-clothes"], LIP["coat"], LIP["skirt"], LIP["pants"], LIP["jumpsuits"]),
}
_ALSO_FIXED = {
    "upper": (LIP["skirt"], LIP["pants"]),
    "lower": (LIP["upper-clothes"], LIP["coat"], LIP["left-arm"], LIP["right-arm"]),
    "dress": (),
}
_KERNEL = np.ones((5, 5), np.uint8)
_CHIN = 0.4  # chin line, as a fraction of the nose -> neck keypoint distance


def _isin(labels: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    return np.isin(labels, classes)


def _point(kp: Keypoints | None, name: str, scale: float) -> np.ndarray | None:
    if kp is None:
        return None
    p = kp.get(name)
    return None if p is None else p * scale


def neck_region(labels: np.ndarray, kp: Keypoints | None, scale: float) -> np.ndarray:
    """The neck (and the chest skin a neckline shows) below the chin line: face pixels there
    (parsers trained on ATR, and ours, label that skin as face), and background pixels down
    to the neck keypoint within the face's width (LIP-trained parsers leave the neck unlabelled)."""
    h, w = labels.shape
    nose, neck = _point(kp, "nose", scale), _point(kp, "neck", scale)
    out = np.zeros((h, w), bool)
    if nose is None or neck is None or neck[1] <= nose[1]:
        return out
    face = labels == LIP["face"]
    xs = np.nonzero(face.any(axis=0))[0]
    half = (xs.max() - xs.min() + 1) / 2 if len(xs) else (neck[1] - nose[1]) * 0.5
    chin = nose[1] + _CHIN * (neck[1] - nose[1])
    yy, xx = np.mgrid[0:h, 0:w]
    band = (yy >= chin) & (yy <= neck[1]) & (np.abs(xx - neck[0]) <= half)
    return (face & (yy >= chin)) | (band & (labels == LIP["background"]))


def _draw_arm(size: tuple[int, int], shoulder: np.ndarray, elbow: np.ndarray, wrist: np.ndarray, width: int) -> np.ndarray:
    """A thick polyline shoulder-elbow-(wrist pushed out 20%) with a round shoulder cap."""
    from PIL import Image, ImageDraw

    img = Image.new("L", size)
    draw = ImageDraw.Draw(img)
    wrist = elbow + 1.2 * (wrist - elbow)
    pts = np.clip(np.concatenate([shoulder, elbow, wrist]), 0, 65535).astype(np.uint16).tolist()
    draw.line(pts, fill="white", width=width, joint="curve")
    r = width // 2
    draw.arc([shoulder[0] - r, shoulder[1] - r, shoulder[0] + r, shoulder[1] + r], 0, 360, fill="white", width=width // 2)
    return np.asarray(img) > 0


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    img = np.pad(mask[1:-1, 1:-1].astype(np.uint8) * 255, 1)
    flood = img.copy()
    cv2.floodFill(flood, np.zeros((img.shape[0] + 2, img.shape[1] + 2), np.uint8), (0, 0), 255)
    return (img > 0) | (flood == 0)


def _largest_region(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_TC89_L1)
    out = np.zeros(mask.shape, np.uint8)
    if contours:
        best = max(range(len(contours)), key=lambda i: abs(cv2.contourArea(contours[i], True)))
        cv2.drawContours(out, contours, best, color=255, thickness=-1)
    return out > 0


def agnostic_mask(parsing: np.ndarray, keypoints: Keypoints | None, category: str, *, arm_width: int = ARM_WIDTH["hd"]) -> np.ndarray:
    """uint8 mask {0, 255} at the parsing's size: 255 where the try-on regenerates."""
    if category not in CATEGORIES:
        raise ValueError(f"category {category!r} is not one of {CATEGORIES}")
    H, W = parsing.shape
    scale = WORK_HEIGHT / H
    size = (max(1, round(W * scale)), WORK_HEIGHT)
    labels = cv2.resize(parsing.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)

    neck = neck_region(labels, keypoints, scale) if category in ("upper", "dress") else np.zeros(labels.shape, bool)
    head = _isin(labels, _HEAD) & ~neck
    fixed = _isin(labels, _FIXED + _ALSO_FIXED[category])
    changeable = (labels == LIP["background"]) | ((labels != LIP["background"]) & ~fixed)
    garment = _isin(labels, _GARMENT[category]).astype(np.float32)
    arms_label = {side: labels == LIP[f"{side}-arm"] for side in ("left", "right")}

    drawn: dict[str, np.ndarray] = {}
    if category in ("upper", "dress"):
        for side, tag in (("left", "l"), ("right", "r")):
            pts = [_point(keypoints, f"{tag}-{j}", scale) for j in ("shoulder", "elbow", "wrist")]
            if any(p is None for p in pts):  # as the original for a missing wrist: keep the parsed arm
                drawn[side] = arms_label[side]
            else:
                drawn[side] = _draw_arm(size, *pts, width=int(arm_width / 512 * WORK_HEIGHT))
            fixed |= arms_label[side] & ~drawn[side]  # the hand beyond the drawn arm

    fixed |= head
    region = cv2.dilate(garment, _KERNEL, iterations=5) > 0
    if category in ("upper", "dress"):
        neck_zone = (cv2.dilate(neck.astype(np.float32), _KERNEL, iterations=1) > 0) & ~head
        arms = cv2.dilate((drawn["left"] | drawn["right"]).astype(np.float32), _KERNEL, iterations=4) > 0
        region |= neck_zone | arms

    keep = (changeable & ~region) | fixed
    mask = _largest_region(_fill_holes(~keep))
    mask = cv2.resize(mask.astype(np.uint8) * 255, (W, H), interpolation=cv2.INTER_NEAREST)
    # the labels kept always, kept exactly at full size (the way back from 512 rows rounds)
    neck_full = cv2.resize(neck.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST) > 0
    kept = _isin(parsing, _FIXED + _ALSO_FIXED[category]) | (_isin(parsing, _HEAD) & ~neck_full)
    mask[kept] = 0
    return mask
