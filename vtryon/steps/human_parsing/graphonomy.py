"""01 human parsing with Graphonomy (CIHP ``inference.pth``): DeepLabv3+ Xception + graph reasoning.

What runs, after the original ``exp/inference/inference.py``: the photo (RGB -> BGR, ``x*2/255-1``)
at the original's six scales (1, 0.5, 0.75, 1.25, 1.5, 1.75; PIL bilinear resize), each scale as
the batch [image, mirrored image]; the mirrored logits flipped back with left/right arm, leg and
shoe channels swapped and averaged with the direct ones; every scale upsampled (bilinear,
``align_corners=True``) to the scale-1 size and summed; argmax. One difference, for speed on CPU:
the photo is first brought to a working size whose longer side is at most 512 pixels (CIHP's
image scale; option ``graphonomy_max_side``, 0 = the photo's own size) and the summed logits are
upsampled to the photo before the argmax. ``graphonomy_scales`` replaces the scale list.
CIHP's 20 labels are LIP's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from vtryon.errors import UsageError
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext
from vtryon.vision.parsing_labels import CIHP_TO_LIP, flip_permutation, parsing_pictures, require_person, to_lip

SCALES = (1.0, 0.5, 0.75, 1.25, 1.5, 1.75)  # inference.py's scale_list
MAX_SIDE = 512


def _scales(value: Any) -> tuple[float, ...]:
    try:
        scales = tuple(float(s) for s in (value if isinstance(value, (list, tuple)) else str(value).split(",")))
    except ValueError:
        scales = ()
    if not scales or any(not 0.1 <= s <= 4.0 for s in scales):
        raise UsageError(f"graphonomy_scales must be numbers between 0.1 and 4 (got {value!r})")
    return scales


def graphonomy_logits(model: Any, rgb: np.ndarray, scales: Sequence[float] = SCALES) -> Any:
    """1 x 20 x H x W summed flip-fused logits over ``scales`` at the size of ``rgb``."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    h, w = rgb.shape[:2]
    image = Image.fromarray(np.ascontiguousarray(rgb))
    param = next(model.parameters())
    perm = flip_permutation()
    total = None
    for s in scales:
        size = (max(1, int(w * s)), max(1, int(h * s)))
        scaled = image if size == (w, h) else image.resize(size, Image.BILINEAR)
        a = np.asarray(scaled, dtype=np.float32) * 2.0 / 255.0 - 1.0
        x = torch.from_numpy(np.ascontiguousarray(a[:, :, ::-1].transpose(2, 0, 1)))  # BGR, CHW
        with torch.inference_mode():
            out = model(torch.stack([x, x.flip(-1)]).to(param.device, param.dtype)).float()
            fused = ((out[0] + out[1][perm].flip(-1)) / 2)[None]
            if fused.shape[2:] != (h, w):
                fused = F.interpolate(fused, size=(h, w), mode="bilinear", align_corners=True)
        total = fused if total is None else total + fused
    return total


class GraphonomyParsing(Backend):
    step: ClassVar[str] = "human_parsing"
    name: ClassVar[str] = "graphonomy"
    description: ClassVar[str] = (
        "Graphonomy CIHP (DeepLabv3+ Xception + graph transfer, 20 LIP classes); the original's 6 scales + "
        "flip at a working size of at most 512 px (options graphonomy_scales, graphonomy_max_side)"
    )
    reads: ClassVar[tuple[str, ...]] = ("person",)
    writes: ClassVar[tuple[str, ...]] = ("parsing",)
    models: ClassVar[tuple[str, ...]] = ("graphonomy_cihp",)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        import cv2

        from vtryon.vision.parsing_transform import argmax_resized

        scales = _scales(ctx.options.get("graphonomy_scales", SCALES))
        max_side = int(ctx.options.get("graphonomy_max_side", MAX_SIDE))
        model = ctx.models.load(self.models[0])
        h, w = state.size
        work = state.person
        if max_side > 0 and max(h, w) > max_side:
            f = max_side / max(h, w)
            work = cv2.resize(work, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        labels = argmax_resized(graphonomy_logits(model, work, scales), (h, w))
        state.parsing = require_person(to_lip(labels, CIHP_TO_LIP), state.person_path, "graphonomy")

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        return parsing_pictures(state.person, state.parsing)


class GraphonomyUniversalParsing(GraphonomyParsing):
    """The universal model's CIHP branch, with the same pre/post-processing (not in BACKENDS yet)."""

    name: ClassVar[str] = "graphonomy-universal"
    description: ClassVar[str] = (
        "Graphonomy universal model (Pascal/ATR/CIHP graphs), its CIHP branch (20 LIP classes); the original's "
        "6 scales + flip at a working size of at most 512 px"
    )
    models: ClassVar[tuple[str, ...]] = ("graphonomy_universal",)
