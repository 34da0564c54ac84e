"""03 cloth segmentation with Segment Anything (ViT-B/L/H) or MobileSAM, prompted from the
garment photo itself.

The prompt is the garment's bounding box and one positive point at its most interior pixel,
taken from the border-estimated background segmentation of the product photo
(:func:`vtryon.vision.garment_mask.segment_garment`). When that finds nothing usable (a busy
background, a garment filling the frame) the prompt is the whole photo and its centre, and
the prompt is recorded in ``state.aux["garment_prompt"]`` either way.

SAM runs through ``segment_anything.SamPredictor``: ResizeLongestSide(1024), pixel mean/std,
zero padding to 1024x1024; three candidate masks (logits > 0 at the photo's size), of which
the one with the highest predicted IoU is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vtryon.errors import NoGarmentFound
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext

# a garment found by the background model must cover this much of the photo to prompt SAM
MIN_FOREGROUND = 0.01
MAX_FOREGROUND = 0.97


@dataclass
class GarmentPrompt:
    box: np.ndarray  # (4,) float32 x0, y0, x1, y1 in photo pixels
    point: np.ndarray  # (2,) float32 x, y: a positive point inside the garment
    source: str  # "background model" or "whole photo"

    def as_dict(self) -> dict[str, Any]:
        return {"box": [float(v) for v in self.box], "points": [[float(v) for v in self.point]], "source": self.source}


def garment_prompt(image: np.ndarray) -> GarmentPrompt:
    """Box and interior point of the garment from the border-estimated background."""
    import cv2

    from vtryon.vision.garment_mask import segment_garment

    h, w = image.shape[:2]
    mask = segment_garment(image).mask
    fraction = float(mask.mean())
    if MIN_FOREGROUND <= fraction <= MAX_FOREGROUND:
        ys, xs = np.nonzero(mask)
        box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float32)
        dist = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
        py, px = np.unravel_index(int(np.argmax(dist)), dist.shape)
        return GarmentPrompt(box, np.array([px, py], np.float32), "background model")
    return GarmentPrompt(np.array([0, 0, w - 1, h - 1], np.float32), np.array([w / 2, h / 2], np.float32), "whole photo")


def predict_mask(model: Any, image: np.ndarray, prompt: GarmentPrompt) -> tuple[np.ndarray, float]:
    """SAM's best of three masks for ``prompt`` (bool, photo size) and its predicted IoU."""
    from segment_anything import SamPredictor

    predictor = SamPredictor(model)
    predictor.set_image(np.ascontiguousarray(image), image_format="RGB")
    masks, scores, _ = predictor.predict(
        point_coords=prompt.point[None], point_labels=np.array([1]), box=prompt.box, multimask_output=True
    )
    best = int(np.argmax(scores))
    return masks[best].astype(bool), float(scores[best])


class SamSegmentation(Backend):
    step = "cloth_segmentation"
    name = "sam-vit-b"
    description = "Segment Anything ViT-B (375 MB) prompted with the garment's box and an interior point"
    reads = ("garment",)
    writes = ("garment_mask", "aux.garment_prompt", "aux.garment_mask_iou")
    models = ("sam_vit_b",)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        model = ctx.models.load(self.models[0])
        prompt = garment_prompt(state.garment)
        mask, iou = predict_mask(model, state.garment, prompt)
        if not mask.any():
            raise NoGarmentFound(f"garment image {state.garment_path}: {self.name} returned an empty mask", hint="use a photo of one garment on a plain background")
        state.garment_mask = np.where(mask, 255, 0).astype(np.uint8)
        state.aux["garment_prompt"] = prompt.as_dict()
        state.aux["garment_mask_iou"] = iou  # SAM's own predicted IoU of the kept mask

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        import cv2

        from vtryon.visualize import draw_mask

        if state.garment_mask is None:
            return {}
        out = draw_mask(state.garment, state.garment_mask)
        prompt = state.aux.get("garment_prompt")
        if prompt:
            x0, y0, x1, y1 = (int(v) for v in prompt["box"])
            thick = max(2, state.garment.shape[0] // 300)
            cv2.rectangle(out, (x0, y0), (x1, y1), (255, 200, 0), thick)
            for x, y in prompt["points"]:
                cv2.circle(out, (int(x), int(y)), 3 * thick, (255, 0, 255), -1, cv2.LINE_AA)
        return {"garment_mask": out}


class SamVitL(SamSegmentation):
    name = "sam-vit-l"
    description = "Segment Anything ViT-L (1.2 GB) prompted with the garment's box and an interior point"
    models = ("sam_vit_l",)


class SamVitH(SamSegmentation):
    name = "sam-vit-h"
    description = "Segment Anything ViT-H (2.6 GB) prompted with the garment's box and an interior point"
    models = ("sam_vit_h",)


class MobileSam(SamSegmentation):
    name = "mobile-sam"
    description = "MobileSAM (TinyViT encoder, 39 MB) prompted with the garment's box and an interior point"
    models = ("mobile_sam",)
