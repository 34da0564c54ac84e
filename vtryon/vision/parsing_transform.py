"""Geometry between a photo and a parsing network's input, and back to a label map.

SCHP's extractor (datasets/simple_extractor_dataset.py + utils/transforms.py) puts the whole
image into the network with an aspect-preserving affine warp: the box ``[0, 0, w-1, h-1]`` is
widened or heightened to the input's aspect ratio around its centre, then scaled so that its
width spans ``input_w - 1`` pixels, centred at ``((input_w-1)/2, (input_h-1)/2)`` (a letterbox with
black borders). The logits come back through the inverse warp (bilinear, border 0) and an argmax.
Note this convention uses ``size - 1``; HRNet's crop uses ``size`` (do not mix them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def box_center_scale(x: float, y: float, w: float, h: float, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre and (width, height) of the box ``x, y, w, h`` grown to ``aspect`` (= width / height)."""
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float64)
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return center, np.array([w, h], dtype=np.float64)


def center_scale_affine(
    center: np.ndarray, scale_w: float, out_hw: tuple[int, int], *, inverse: bool = False
) -> np.ndarray:
    """2x3 matrix taking ``center`` to the output's centre and ``scale_w`` pixels to ``out_w - 1``.

    The closed form of the original's three-point ``get_affine_transform`` at rotation 0.
    """
    out_h, out_w = out_hw
    k = (out_w - 1) / float(scale_w)
    cx, cy = float(center[0]), float(center[1])
    if inverse:
        return np.array([[1 / k, 0.0, cx - (out_w - 1) * 0.5 / k], [0.0, 1 / k, cy - (out_h - 1) * 0.5 / k]])
    return np.array([[k, 0.0, (out_w - 1) * 0.5 - k * cx], [0.0, k, (out_h - 1) * 0.5 - k * cy]])


def letterbox_affine(width: int, height: int, out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(forward, inverse) 2x3 matrices between a ``width`` x ``height`` image and the network input."""
    center, scale = box_center_scale(0, 0, width - 1, height - 1, out_hw[1] / out_hw[0])
    return center_scale_affine(center, scale[0], out_hw), center_scale_affine(center, scale[0], out_hw, inverse=True)


def warp_into(image: np.ndarray, matrix: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """``image`` warped by ``matrix`` to ``out_hw`` (bilinear, black outside)."""
    import cv2

    return cv2.warpAffine(
        image, matrix, (int(out_hw[1]), int(out_hw[0])), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )


def _running_argmax(chunks, shape: tuple[int, int]) -> np.ndarray:
    """Argmax over channels delivered in chunks ``(first_channel, H x W x c array)``; first maximum wins."""
    best = np.full(shape, -np.inf, dtype=np.float32)
    label = np.zeros(shape, dtype=np.int64)
    for first, block in chunks:
        block_max = block.max(axis=2)
        better = block_max > best
        label[better] = block.argmax(axis=2)[better] + first
        best = np.where(better, block_max, best)
    return label


def argmax_warped_back(
    logits: np.ndarray, inverse: np.ndarray, image_hw: tuple[int, int], chunk: int = 4
) -> np.ndarray:
    """Per-pixel argmax of C x h x w ``logits`` warped back to the image with ``inverse``.

    As SCHP's ``transform_logits``: every channel warped bilinearly with border 0, then argmax;
    done a few channels at a time so a large photo never holds all C warped channels.
    """
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    h, w = image_hw

    def chunks():
        for c0 in range(0, logits.shape[0], chunk):
            block = np.ascontiguousarray(logits[c0:c0 + chunk].transpose(1, 2, 0))
            warped = warp_into(block, inverse, (h, w))
            yield c0, warped.reshape(h, w, -1)

    return _running_argmax(chunks(), (h, w))


def argmax_resized(logits: "torch.Tensor", image_hw: tuple[int, int], chunk: int = 4) -> np.ndarray:
    """Argmax of 1 x C x h x w ``logits`` upsampled (bilinear, ``align_corners=True``) to ``image_hw``."""
    import torch.nn.functional as F

    def chunks():
        for c0 in range(0, logits.shape[1], chunk):
            part = logits[:, c0:c0 + chunk].float()
            up = F.interpolate(part, size=tuple(image_hw), mode="bilinear", align_corners=True)
            yield c0, up[0].permute(1, 2, 0).cpu().numpy()

    return _running_argmax(chunks(), tuple(image_hw))
