"""Embedded remap plus DPT-Hybrid MiDaS depth of the person (a step-05 aid).

The garment is warped exactly as the embedded backend does. DPT-Hybrid (MiDaS v3) then
estimates the person's relative inverse depth: the photo resized to 384x384, scaled to
[-1, 1] (mean = std = 0.5, as MiDaS's transform), the prediction resized back bicubically
and normalised to [0, 1] (larger = nearer). It is written to ``state.aux["person_depth"]``
so a later step can order occlusions (an arm nearer than the torso stays in front of the
garment). The warped garment is shaded gently from the depth's surface normals: Lambert
light from the front and slightly above, mapped to factors 0.9..1.05, so it follows the
body's roundness instead of lying flat.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vtryon.errors import PipelineError, UsageError
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext

MODEL_ID = "dpt_hybrid_midas"
NET_SIZE = 384
SHADE_RANGE = (0.9, 1.05)
LIGHT = np.array([0.0, -0.4, 1.0]) / np.linalg.norm([0.0, -0.4, 1.0])  # from the viewer, a little above
RELIEF = 0.3  # the depth range [0, 1] as a height of this fraction of the image width: how round the normals are


def relative_depth(model: Any, image: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1], larger = nearer, from an RGB uint8 image."""
    import cv2
    import torch

    h, w = image.shape[:2]
    size = int(getattr(model.config, "image_size", NET_SIZE))  # transformers' hybrid takes only this size
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    p = next(model.parameters())
    x = torch.from_numpy(((small - 0.5) / 0.5).transpose(2, 0, 1).copy())[None].to(p.device, p.dtype)
    with torch.inference_mode():
        pred = model(pixel_values=x).predicted_depth  # (1, size, size) inverse relative depth
        pred = torch.nn.functional.interpolate(pred[:, None].float(), size=(h, w), mode="bicubic", align_corners=False)
    depth = pred[0, 0].cpu().numpy()
    lo, hi = float(depth.min()), float(depth.max())
    if not np.isfinite([lo, hi]).all():
        raise PipelineError("DPT-Hybrid MiDaS returned non-finite depth", hint="try --precision fp32")
    if hi - lo < 1e-8:  # a flat prediction: no depth order to give
        return np.zeros((h, w), np.float32)
    return ((depth - lo) / (hi - lo)).astype(np.float32)


def depth_shading(depth: np.ndarray, lo: float = SHADE_RANGE[0], hi: float = SHADE_RANGE[1]) -> np.ndarray:
    """(H, W) float32 factors in [lo, hi]: Lambert shading of the depth surface's normals."""
    import cv2

    h, w = depth.shape
    smooth = cv2.GaussianBlur(depth, (0, 0), max(1.0, 0.01 * max(h, w)))
    scale = RELIEF * w / 8.0  # the 3x3 Sobel weighs 8 one-pixel differences
    dx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) * scale
    dy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) * scale
    # depth grows towards the viewer: the surface z = depth has normal (-dz/dx, -dz/dy, 1)
    normal = np.dstack([-dx, -dy, np.ones_like(dx)])
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    lambert = np.clip(normal @ LIGHT, 0.0, 1.0)
    return (lo + (hi - lo) * lambert).astype(np.float32)


class DepthAidedWarping(Backend):
    step = "cloth_warping"
    name = "embedded+depth"
    description = (
        "cv2.remap through step 04's map, then DPT-Hybrid MiDaS depth of the person (aux.person_depth, "
        "[0, 1], larger = nearer, for occlusion order) and a gentle 0.9-1.05 shading of the warped garment "
        "from the depth's surface normals"
    )
    reads = ("person", "garment", "garment_mask", "warp")
    writes = ("warped_garment", "warped_mask", "aux.person_depth", "aux.depth_shading")
    models = (MODEL_ID,)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        from vtryon.steps.cloth_warping.embedded import apply_warp

        if state.warp is None or state.garment_mask is None:
            raise UsageError("cloth warping needs step 04's warp; do not start with --from cloth_warping")
        warped, soft = apply_warp(state.garment, state.garment_mask, state.warp.map_xy)
        depth = relative_depth(ctx.models.load(MODEL_ID), state.person)
        shade = depth_shading(depth)
        state.warped_garment = np.clip(warped.astype(np.float32) * shade[..., None], 0, 255).astype(np.uint8)
        state.warped_mask = soft
        state.aux["person_depth"] = depth
        state.aux["depth_shading"] = shade

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        if state.warped_garment is None:
            return {}
        from vtryon.visualize import draw_warped

        pics = {"warped garment (depth-shaded)": draw_warped(state.person, state.warped_garment, state.warped_mask)}
        depth = state.aux.get("person_depth")
        if depth is not None:
            import cv2

            grey = (depth * 255).astype(np.uint8)
            pics["person depth"] = cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
        return pics
