"""TPS warp refined by RAFT optical flow (raft-things).

Step 04's map is applied first (the same remap as the embedded backend). The TPS leaves the
garment's outline off the body region it should cover, so RAFT estimates the flow from the
target region (the person's garment region of the parsing) to the TPS-warped garment's
silhouette, both rendered as textured silhouettes (mask, inside-distance, outside-distance
channels: flat masks give RAFT nothing to correlate inside). Each target pixel p then takes
the garment pixel the TPS map gives at p + flow(p), and the garment is warped again through
that composed map. The flow runs at ~384 px on the region's box (RAFT needs >= 128 px);
``options["raft_iters"]`` (12) and ``options["raft_long_side"]`` (384) tune it.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from vtryon.errors import UsageError
from vtryon.state import LIP, TryOnState
from vtryon.steps.base import Backend, RunContext

FLOW_LONG_SIDE = 384
ITERS = 12
TARGET_LABELS = {
    "upper": (LIP["upper-clothes"], LIP["coat"], LIP["dress"]),
    "lower": (LIP["pants"], LIP["skirt"]),
    "dress": (LIP["dress"], LIP["upper-clothes"], LIP["skirt"], LIP["coat"]),
}


def textured_silhouette(mask: np.ndarray, scale: float) -> np.ndarray:
    """RGB uint8: the mask, the distance inside it and the distance outside it (each / ``scale``)."""
    m = (mask > 0).astype(np.uint8)
    inside = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, 5)
    return np.stack([m * 255.0, np.clip(inside / scale, 0, 1) * 255, 255 - np.clip(outside / scale, 0, 1) * 255], -1).astype(np.float32)


def region_box(mask: np.ndarray, margin: float = 0.1) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    h, w = mask.shape
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    mx, my = int((x1 - x0) * margin) + 8, int((y1 - y0) * margin) + 8
    return max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)


def flow_between(model: Any, image1: np.ndarray, image2: np.ndarray, iters: int, long_side: int = FLOW_LONG_SIDE) -> np.ndarray:
    """RAFT flow (H, W, 2) from image1 to image2 (float RGB 0..255 of one size), at that size;
    RAFT itself runs with the long side near ``long_side`` (sides multiples of 8, >= 128)."""
    import torch

    from vtryon.archs.raft import MIN_SIDE, estimate_flow

    h, w = image1.shape[:2]
    s = long_side / max(h, w)
    nh, nw = max(MIN_SIDE, int(round(h * s / 8)) * 8), max(MIN_SIDE, int(round(w * s / 8)) * 8)
    p = next(model.parameters())

    def t(a: np.ndarray) -> Any:
        small = cv2.resize(a, (nw, nh), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(small.transpose(2, 0, 1).copy())[None].to(p.device)

    with torch.inference_mode():
        _, predictions = estimate_flow(model, t(image1), t(image2), iters=iters)
    flow = predictions[-1][0].float().cpu().numpy().transpose(1, 2, 0)
    flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    flow[..., 0] *= w / nw
    flow[..., 1] *= h / nh
    return flow


class RaftRefinedWarping(Backend):
    step = "cloth_warping"
    name = "tps+raft"
    description = "step 04's TPS map, refined by RAFT flow from the body's garment region to the warped garment's silhouette"
    reads = ("garment", "garment_mask", "warp", "parsing")
    writes = ("warped_garment", "warped_mask", "aux.raft_flow")
    models = ("raft_things",)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        from vtryon.steps.cloth_warping.embedded import apply_warp

        if state.warp is None or state.garment_mask is None or state.parsing is None:
            raise UsageError("cloth warping needs steps 01-04 first; do not start with --from cloth_warping")
        map_xy = state.warp.map_xy
        warped, soft = apply_warp(state.garment, state.garment_mask, map_xy)
        target = np.isin(state.parsing, TARGET_LABELS.get(state.category, TARGET_LABELS["upper"]))
        box = region_box(target | (soft > 127))
        if box is None or not target.any():  # no body region to fit: the TPS warp stands
            state.warped_garment, state.warped_mask = warped, soft
            state.aux["raft_flow"] = None
            return
        x0, y0, x1, y1 = box
        scale = 0.1 * max(x1 - x0, y1 - y0)
        im1 = textured_silhouette(target[y0:y1, x0:x1], scale)
        im2 = textured_silhouette(soft[y0:y1, x0:x1] > 127, scale)
        model = ctx.models.load("raft_things")
        flow = flow_between(model, im1, im2, int(ctx.options.get("raft_iters", ITERS)),
                            int(ctx.options.get("raft_long_side", FLOW_LONG_SIDE)))

        # composed map: person pixel p takes the TPS map at p + flow(p) (inside the box)
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        sub = map_xy[y0:y1, x0:x1]
        refined_sub = cv2.remap(sub, gx - x0 + flow[..., 0], gy - y0 + flow[..., 1], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(-1.0, -1.0))
        # where p + flow lands outside the garment, bilinear mixes in -1: keep those outside
        refined_sub[(refined_sub < 0).any(-1)] = -1.0
        refined = map_xy.copy()
        refined[y0:y1, x0:x1] = refined_sub
        state.warped_garment, state.warped_mask = apply_warp(state.garment, state.garment_mask, refined)
        full = np.zeros(state.size + (2,), np.float32)
        full[y0:y1, x0:x1] = flow
        state.aux["raft_flow"] = full
        state.aux["raft_tps_only"] = (warped, soft)

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        if state.warped_garment is None:
            return {}
        from vtryon.visualize import draw_warped

        pics = {"warped garment (tps+raft)": draw_warped(state.person, state.warped_garment, state.warped_mask)}
        flow = state.aux.get("raft_flow")
        tps = state.aux.get("raft_tps_only")
        if flow is not None and tps is not None:
            import torch
            from torchvision.utils import flow_to_image

            pics["raft flow"] = flow_to_image(torch.from_numpy(flow.transpose(2, 0, 1).copy())).numpy().transpose(1, 2, 0)
            before = (state.person * 0.35).astype(np.uint8)
            before[tps[1] > 127] = tps[0][tps[1] > 127]
            pics["warped garment (tps only)"] = before
        return pics
