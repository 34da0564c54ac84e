"""03 cloth segmentation with U^2-Net: the 4-class cloth-segmentation model, or the saliency
models (U2NET, U2NETP) that cut the salient object (the garment of a product photo).

Pre/post-processing as the originals:
- saliency (xuebinqin/U-2-Net ``u2net_test.py``): ``skimage`` resize to 320x320 (no aspect
  preservation), divide by the image maximum, ImageNet mean/std; the fused map d0, min-max
  normalised, resized back with PIL bilinear; the mask is where it reaches 0.5.
- cloth (levindabhi/cloth-segmentation ``infer.py``): ``(x / 255 - 0.5) / 0.5``; the fused
  logits d0, log-softmax, argmax over 0 background, 1 upper, 2 lower, 3 full body. The photo
  is fed at the training resolution (768x768 squares, README) and the logits are resized
  back to the photo (bilinear) before the argmax.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vtryon.errors import NoGarmentFound
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext

SALIENCY_SIZE = 320
SALIENCY_MEAN = (0.485, 0.456, 0.406)
SALIENCY_STD = (0.229, 0.224, 0.225)
CLOTH_SIZE = 768
# cloth-segmentation labels -> the garment categories of the state
CLOTH_CLASSES: dict[int, str] = {1: "upper", 2: "lower", 3: "dress"}
CLOTH_COLOURS = np.array([(0, 0, 0), (220, 40, 40), (40, 180, 60), (230, 200, 30)], np.uint8)


def saliency_input(image: np.ndarray) -> np.ndarray:
    """RGB uint8 photo -> (1, 3, 320, 320) float32 network input (RescaleT + ToTensorLab(0))."""
    from skimage.transform import resize

    x = resize(image, (SALIENCY_SIZE, SALIENCY_SIZE), mode="constant")  # float64 in [0, 1]
    peak = float(np.max(x))
    x = x / peak if peak > 0 else x
    x = (x - np.array(SALIENCY_MEAN)) / np.array(SALIENCY_STD)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def saliency_mask(pred: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Fused saliency (h, w) -> uint8 {0, 255} mask at ``size_hw``: min-max normalised
    (``normPRED``), to 8 bits and resized with PIL bilinear as ``save_output`` does, cut at 0.5."""
    from PIL import Image

    lo, hi = float(pred.min()), float(pred.max())
    if not hi - lo > 1e-8:
        raise NoGarmentFound("garment image: the saliency map is flat, no object stands out", hint="use a product photo of the garment on a plain background")
    norm = (pred - lo) / (hi - lo)
    small = Image.fromarray((norm * 255).astype(np.uint8))
    full = np.asarray(small.resize((size_hw[1], size_hw[0]), resample=Image.BILINEAR))
    return np.where(full >= 128, 255, 0).astype(np.uint8)


def cloth_input(image: np.ndarray, size: int = CLOTH_SIZE) -> np.ndarray:
    """RGB uint8 photo -> (1, 3, size, size) float32 in [-1, 1]."""
    from PIL import Image

    x = np.asarray(Image.fromarray(image).resize((size, size), resample=Image.BILINEAR), np.float32) / 255.0
    return np.ascontiguousarray(((x - 0.5) / 0.5).transpose(2, 0, 1)[None])


def cloth_labels(logits: Any, size_hw: tuple[int, int]) -> np.ndarray:
    """(1, 4, h, w) logits -> uint8 (H, W) class map: resized, log-softmax, argmax."""
    import torch
    import torch.nn.functional as F

    up = F.interpolate(logits.float(), size=size_hw, mode="bilinear", align_corners=False)
    return torch.argmax(F.log_softmax(up, dim=1), dim=1)[0].to(torch.uint8).cpu().numpy()


def garment_from_labels(labels: np.ndarray) -> tuple[np.ndarray, str]:
    """(mask of every garment pixel as uint8 {0, 255}, the class covering most of it)."""
    counts = np.bincount(labels.ravel(), minlength=4)[1:4]
    if counts.sum() == 0:
        raise NoGarmentFound("garment image: the cloth segmentation found no garment", hint="use a photo of one garment, flat or on a plain background")
    return np.where(labels > 0, 255, 0).astype(np.uint8), CLOTH_CLASSES[int(np.argmax(counts)) + 1]


def _run(model: Any, x: np.ndarray) -> Any:
    import torch

    param = next(model.parameters())
    with torch.inference_mode():
        return model(torch.from_numpy(x).to(param.device, param.dtype))[0]


class ClothU2Net(Backend):
    step = "cloth_segmentation"
    name = "cloth-u2net"
    description = "U^2-Net trained for clothes (levindabhi/cloth-segmentation): upper / lower / full-body garment classes"
    reads = ("garment",)
    writes = ("garment_mask", "aux.garment_class", "aux.garment_labels")
    models = ("cloth_segm_u2net",)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        model = ctx.models.load(self.models[0])
        logits = _run(model, cloth_input(state.garment))
        labels = cloth_labels(logits, state.garment.shape[:2])
        state.garment_mask, garment_class = garment_from_labels(labels)
        state.aux["garment_class"] = garment_class  # "upper" / "lower" / "dress"
        state.aux["garment_labels"] = labels  # 0 background, 1 upper, 2 lower, 3 full body

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        from vtryon.visualize import draw_mask, label

        if state.garment_mask is None:
            return {}
        out = {"garment_mask": draw_mask(state.garment, state.garment_mask)}
        labels = state.aux.get("garment_labels")
        if labels is not None:
            tint = (0.45 * state.garment + 0.55 * CLOTH_COLOURS[labels]).astype(np.uint8)
            tint[labels == 0] = (state.garment[labels == 0] * 0.35).astype(np.uint8)
            out["garment_classes"] = label(tint, f"detected: {state.aux.get('garment_class', '?')}")
        return out


class SaliencyU2Net(Backend):
    step = "cloth_segmentation"
    name = "u2net"
    description = "U^2-Net salient-object detection (xuebinqin/U-2-Net, 176 MB): the garment as the photo's salient object"
    reads = ("garment",)
    writes = ("garment_mask",)
    models = ("u2net",)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        model = ctx.models.load(self.models[0])
        fused = _run(model, saliency_input(state.garment))
        state.garment_mask = saliency_mask(fused[0, 0].float().cpu().numpy(), state.garment.shape[:2])

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        from vtryon.visualize import draw_mask

        return {"garment_mask": draw_mask(state.garment, state.garment_mask)} if state.garment_mask is not None else {}


class SaliencyU2NetSmall(SaliencyU2Net):
    name = "u2netp"
    description = "U^2-Net small (U2NETP, 4.7 MB) salient-object detection: the garment as the photo's salient object"
    models = ("u2netp",)
