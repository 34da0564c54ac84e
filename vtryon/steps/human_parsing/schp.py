"""01 human parsing with SCHP (Self-Correction for Human Parsing), LIP-20 or ATR-18 model.

Pre/post-processing as the original ``simple_extractor.py``: the photo in BGR, the whole image
put into the network input (473x473 for LIP, 512x512 for ATR) with an aspect-preserving affine
warp (black letterbox), ``/255`` and ImageNet mean/std in BGR order; the fusion logits upsampled
to the input size (bilinear, ``align_corners=True``), warped back to the photo with the inverse
affine (bilinear, border 0) and argmax. ATR labels are mapped into LIP-20.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext
from vtryon.vision.parsing_labels import ATR_TO_LIP, LIP_TO_LIP, parsing_pictures, require_person, to_lip

# BGR order: the ImageNet RGB statistics reversed, as the extractor passes them
MEAN_BGR = (0.406, 0.456, 0.485)
STD_BGR = (0.225, 0.224, 0.229)


def schp_label_map(model: Any, rgb: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """The model's own labels (argmax of the fusion logits) at the photo's size."""
    import torch
    import torch.nn.functional as F

    from vtryon.vision.parsing_transform import argmax_warped_back, letterbox_affine, warp_into

    h, w = rgb.shape[:2]
    forward, inverse = letterbox_affine(w, h, input_hw)
    bgr = warp_into(np.ascontiguousarray(rgb[:, :, ::-1]), forward, input_hw)
    x = torch.from_numpy(bgr.transpose(2, 0, 1).astype(np.float32) / 255.0)
    x = (x - torch.tensor(MEAN_BGR)[:, None, None]) / torch.tensor(STD_BGR)[:, None, None]
    param = next(model.parameters())
    with torch.inference_mode():
        _, fusion, _ = model(x[None].to(param.device, param.dtype))
        logits = F.interpolate(fusion.float(), size=input_hw, mode="bilinear", align_corners=True)[0]
    return argmax_warped_back(logits.cpu().numpy(), inverse, (h, w))


class _SCHPParsing(Backend):
    step: ClassVar[str] = "human_parsing"
    reads: ClassVar[tuple[str, ...]] = ("person",)
    writes: ClassVar[tuple[str, ...]] = ("parsing",)
    input_hw: ClassVar[tuple[int, int]] = (473, 473)
    to_lip_table: ClassVar[np.ndarray] = LIP_TO_LIP

    def network(self, ctx: RunContext) -> Any:
        """The SCHP network (a runtime other than torch overrides this)."""
        return ctx.models.load(self.models[0])

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        labels = schp_label_map(self.network(ctx), state.person, self.input_hw)
        state.parsing = require_person(to_lip(labels, self.to_lip_table), state.person_path, self.name)

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        return parsing_pictures(state.person, state.parsing)


class SCHPLip(_SCHPParsing):
    name: ClassVar[str] = "schp-lip"
    description: ClassVar[str] = (
        "SCHP ResNet-101 CE2P trained on LIP (20 classes), 473x473 letterboxed input, as the original extractor"
    )
    models: ClassVar[tuple[str, ...]] = ("schp_lip",)
    input_hw = (473, 473)


class SCHPAtr(_SCHPParsing):
    name: ClassVar[str] = "schp-atr"
    description: ClassVar[str] = (
        "SCHP ResNet-101 CE2P trained on ATR (18 classes), 512x512 letterboxed input, mapped into LIP-20 "
        "(belt -> pants, bag -> background)"
    )
    models: ClassVar[tuple[str, ...]] = ("schp_atr",)
    input_hw = (512, 512)
    to_lip_table = ATR_TO_LIP
