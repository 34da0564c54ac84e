"""02 pose with HRNet (COCO-17, top-down): the person box, an affine crop at the network's
input size, heatmaps averaged with the flipped crop's, argmax with the quarter-pixel shift,
back to the photo, then COCO-17 -> OpenPose-18 (neck = mid-shoulders).

As the original's test path (leoxiaobin/deep-high-resolution-net.pytorch, FLIP_TEST,
SHIFT_HEATMAP, POST_PROCESS): the box is widened or heightened to the input's aspect ratio
and padded by 1.25; RGB with ImageNet mean/std. The box comes from the parsing (any non-
background label) or ``aux["person_mask"]`` when an earlier step wrote one, else the photo.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from vtryon.errors import UsageError
from vtryon.state import Keypoints, TryOnState
from vtryon.steps.base import Backend, RunContext

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def person_box(state: TryOnState) -> tuple[float, float, float, float]:
    """(x, y, w, h) of the person: parsing, else the person mask, else the whole photo."""
    from vtryon.vision.keypoints import mask_box

    for mask in (state.parsing, state.aux.get("person_mask")):
        if mask is not None:
            box = mask_box(np.asarray(mask) > 0)
            if box is not None:
                return box
    h, w = state.size
    return 0.0, 0.0, float(w), float(h)


def estimate(model: Any, rgb: np.ndarray, box: tuple[float, float, float, float], input_wh: tuple[int, int]) -> Keypoints:
    """OpenPose-18 keypoints of the person in ``box`` of an RGB photo."""
    import torch

    from vtryon.vision.keypoints import (
        COCO17_FLIP_PAIRS, box_to_center_scale, coco17_to_openpose18, crop, drop_outside, flip_back, heatmaps_to_image,
    )

    center, scale = box_to_center_scale(box, input_wh[0] / input_wh[1])
    patch = crop(rgb, center, scale, input_wh).astype(np.float32) / 255.0
    x = torch.from_numpy(((patch - MEAN) / STD).transpose(2, 0, 1)[None].copy())
    param = next(model.parameters())
    with torch.inference_mode():
        x = x.to(param.device, param.dtype)
        heat = model(x).float().cpu().numpy()
        heat_flipped = model(x.flip(3)).float().cpu().numpy()
    heat = (heat + flip_back(heat_flipped, COCO17_FLIP_PAIRS, shift=True)) * 0.5
    xy, maxvals = heatmaps_to_image(heat[0], center, scale)
    kp = coco17_to_openpose18(xy, np.clip(maxvals, 0.0, 1.0))
    return drop_outside(kp, rgb.shape[:2])


class _HRNetPose(Backend):
    step: ClassVar[str] = "pose"
    reads: ClassVar[tuple[str, ...]] = ("person",)  # and parsing / aux["person_mask"] when present
    writes: ClassVar[tuple[str, ...]] = ("keypoints",)
    input_wh: ClassVar[tuple[int, int]] = (192, 256)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        model = ctx.models.load(self.models[0])
        state.keypoints = estimate(model, state.person, person_box(state), self.input_size(ctx))

    def input_size(self, ctx: RunContext) -> tuple[int, int]:
        """(width, height) of the crop: the manifest's ``capabilities.input_size`` (H, W) when
        it gives one (a fine-tuned checkpoint may), else the released model's."""
        size = ctx.models.entry(self.models[0]).capabilities.input_size
        if not size:
            return self.input_wh
        if len(size) != 2 or size[0] % 32 or size[1] % 32:
            raise UsageError(
                f"manifest entry {self.models[0]}: capabilities.input_size {list(size)} must be [height, width], multiples of 32"
            )
        return int(size[1]), int(size[0])

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        from vtryon.visualize import draw_skeleton

        if state.keypoints is None:
            return {}
        return {"pose": draw_skeleton(state.person, state.keypoints)}


class HRNetW32(_HRNetPose):
    name: ClassVar[str] = "hrnet-w32"
    description: ClassVar[str] = "HRNet-W32 256x192 (COCO-17 top-down, flip test) mapped to OpenPose-18"
    models: ClassVar[tuple[str, ...]] = ("hrnet_w32_256x192",)
    input_wh: ClassVar[tuple[int, int]] = (192, 256)


class HRNetW48(_HRNetPose):
    name: ClassVar[str] = "hrnet-w48"
    description: ClassVar[str] = "HRNet-W48 384x288 (COCO-17 top-down, flip test) mapped to OpenPose-18"
    models: ClassVar[tuple[str, ...]] = ("hrnet_w48_384x288",)
    input_wh: ClassVar[tuple[int, int]] = (288, 384)
