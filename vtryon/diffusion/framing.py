"""The window of the person photo that a diffusion engine sees, and the paste-back.

The engines work at a fixed size (768x1024 for the released checkpoints). The window is the
largest one of that aspect inside the photo, slid to centre the region to regenerate; when
that region does not fit (a very wide photo), the window grows past the photo's edges and
the outside is filled by repeating the edge pixels. Mapping back is the exact inverse, and
the result keeps every person pixel outside the regenerated region.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import cv2
import numpy as np


@dataclass(frozen=True)
class Frame:
    """``box`` = (x0, y0, x1, y1) in person pixels (may reach past the photo); ``size`` =
    (width, height) the engine works at."""

    box: tuple[int, int, int, int]
    size: tuple[int, int]

    @property
    def box_size(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return x1 - x0, y1 - y0


def _slide(lo: float, hi: float, length: int, limit: int) -> int:
    """Start of a window of ``length`` in [0, limit) centred on [lo, hi], clamped inside."""
    start = round((lo + hi) / 2 - length / 2)
    return int(min(max(start, 0), limit - length))


def frame_for(region: np.ndarray, size: tuple[int, int]) -> Frame:
    """The window of aspect ``size`` (w, h) covering the nonzero pixels of ``region`` (HxW).

    Its sides are whole multiples of the aspect's unit (3x4 for 768x1024), so the aspect is
    exact and the way back is one uniform scale."""
    h, w = region.shape[:2]
    mw, mh = size
    g = math.gcd(mw, mh)
    uw, uh = mw // g, mh // g
    ys, xs = np.nonzero(region)
    if len(xs) == 0:
        ys, xs = np.array([0, h - 1]), np.array([0, w - 1])
    bx0, bx1, by0, by1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    # the largest whole-unit window inside the photo, grown (past the photo) if the region needs it
    n = max(1, min(w // uw, h // uh), math.ceil((bx1 - bx0) / uw), math.ceil((by1 - by0) / uh))
    fw, fh = n * uw, n * uh
    x0 = _slide(bx0, bx1, fw, w) if fw <= w else round((bx0 + bx1) / 2 - fw / 2)
    y0 = _slide(by0, by1, fh, h) if fh <= h else round((by0 + by1) / 2 - fh / 2)
    return Frame((x0, y0, x0 + fw, y0 + fh), (mw, mh))


def _window(image: np.ndarray, frame: Frame) -> np.ndarray:
    """The box of ``image``, edge pixels repeated where the box leaves the photo."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = frame.box
    pad = (max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w))
    if any(pad):
        image = cv2.copyMakeBorder(image, *pad, borderType=cv2.BORDER_REPLICATE)
        x0, x1, y0, y1 = x0 + pad[2], x1 + pad[2], y0 + pad[0], y1 + pad[0]
    return image[y0:y1, x0:x1]


def crop(image: np.ndarray, frame: Frame, *, nearest: bool = False) -> np.ndarray:
    """``image`` (person size) as the engine sees it: the window resized to ``frame.size``."""
    win = _window(image, frame)
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if win.shape[1] > frame.size[0] else cv2.INTER_CUBIC
    return cv2.resize(win, frame.size, interpolation=interp)


def uncrop(image: np.ndarray, frame: Frame, person_hw: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """An engine-size ``image`` back at person size (the part of the window inside the photo)."""
    fw, fh = frame.box_size
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_CUBIC if fw > image.shape[1] else cv2.INTER_AREA
    full = cv2.resize(image, (fw, fh), interpolation=interp)
    h, w = person_hw
    x0, y0, _, _ = frame.box
    out = np.zeros((h, w) + full.shape[2:], full.dtype)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(w, x0 + fw), min(h, y0 + fh)
    out[sy0:sy1, sx0:sx1] = full[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
    return out


def paste_back(person: np.ndarray, generated: np.ndarray, mask: np.ndarray, frame: Frame, *, feather: float = 0.0) -> np.ndarray:
    """The person photo with the engine's output (engine size, RGB uint8) inside ``mask``
    (engine size, nonzero = regenerated). Outside the mask the person's pixels are kept
    exactly; ``feather`` > 0 blends a band of that Gaussian sigma (engine pixels) across the
    edge instead (CatVTON's optional repaint)."""
    h, w = person.shape[:2]
    gen_full = uncrop(generated, frame, (h, w))
    if feather > 0:
        soft = cv2.GaussianBlur((mask > 0).astype(np.float32), (0, 0), sigmaX=feather)
        alpha = uncrop(soft, frame, (h, w))
    else:
        alpha = uncrop((mask > 0).astype(np.uint8) * 255, frame, (h, w), nearest=True).astype(np.float32) / 255.0
    alpha = alpha[..., None]
    out = person.astype(np.float32) * (1.0 - alpha) + gen_full.astype(np.float32) * alpha
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if feather <= 0:
        out[alpha[..., 0] == 0] = person[alpha[..., 0] == 0]  # bit-exact outside
    return out


def fit_inside(image: np.ndarray, size: tuple[int, int], fill: int = 255) -> np.ndarray:
    """``image`` scaled to fit ``size`` (w, h) and centred on ``fill`` (CatVTON's
    ``resize_and_padding`` for garment photos: the garment keeps its proportions)."""
    h, w = image.shape[:2]
    tw, th = size
    if w * th < h * tw:
        nh, nw = th, max(1, w * th // h)
    else:
        nw, nh = tw, max(1, h * tw // w)
    interp = cv2.INTER_AREA if nw < w else cv2.INTER_CUBIC
    scaled = cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.full((th, tw) + image.shape[2:], fill, image.dtype)
    y0, x0 = (th - nh) // 2, (tw - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = scaled
    return out
