"""CP-VTON geometric matching (GMM, 256x192): a TPS from the person representation and the garment.

The person is framed at 256x192 (a 3:4 box around the parsed person), the garment on white
at 256x192 (a 3:4 box around its mask). The GMM's grid (align_corners=True, as PyTorch 0.4
sampled) is turned into garment-photo pixels and spread over the photo, so step 05's remap
applies it at full resolution. ``Warp.params`` keeps theta and both frames;
``aux["cpvton_inputs"]`` the network-size inputs, for the pictures.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from vtryon.errors import UsageError
from vtryon.state import TryOnState, Warp
from vtryon.steps.base import Backend, RunContext

SIZE = (256, 192)


class CPVTONMatching(Backend):
    step = "geometric_matching"
    name = "cpvton-gmm"
    description = "CP-VTON GMM: feature correlation -> 5x5 TPS at 256x192, spread to the photo"
    reads = ("person", "parsing", "keypoints", "garment", "garment_mask")
    writes = ("warp", "aux.cpvton_inputs")
    models = ("cpvton_gmm",)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        import torch

        from vtryon.archs.cpvton import control_point_pairs
        from vtryon.vision import tryon_inputs as ti

        if state.parsing is None or state.keypoints is None or state.garment_mask is None:
            raise UsageError("cpvton-gmm needs steps 01-03 first; do not start with --from geometric_matching")
        person = ti.person_frame(state.parsing, SIZE)
        garment = ti.garment_frame(state.garment_mask, SIZE)
        person_net = person.crop(state.person, fill=(255, 255, 255))
        parse_net = person.crop(state.parsing, nearest=True, fill=0)
        xy, present = ti.keypoints_in_frame(state.keypoints, person)
        agnostic = ti.cpvton_agnostic(person_net, parse_net, xy, present)
        cloth_net = garment.crop(ti.on_white(state.garment, state.garment_mask), fill=(255, 255, 255))

        model = ctx.models.load("cpvton_gmm")
        p = next(model.parameters())
        a = torch.from_numpy(agnostic.stack())[None].to(p.device, p.dtype)
        b = torch.from_numpy(ti.to_unit_range(cloth_net))[None].to(p.device, p.dtype)
        with torch.inference_mode():
            theta = model.theta(a, b)
            grid = model.grid(theta.float())[0].cpu().numpy()
        theta_np = theta[0].float().cpu().numpy()

        cloth_px = ti.grid_to_pixels(grid, SIZE, align_corners=True)  # PyTorch 0.4 grid_sample
        map_net = garment.to_image(cloth_px)
        pts_p, pts_q = control_point_pairs(theta_np, model.grid_size, model.extent)
        dst = person.to_image(ti.grid_to_pixels(pts_p, SIZE, align_corners=True))
        src = garment.to_image(ti.grid_to_pixels(pts_q, SIZE, align_corners=True))
        state.warp = Warp(
            map_xy=ti.network_map_to_person(map_net, person, state.size),
            src_points=src.astype(np.float32),
            dst_points=dst.astype(np.float32),
            point_names=tuple(f"tps{i}" for i in range(len(src))),
            params={"model": "cpvton_gmm", "theta": theta_np.tolist(), "person_frame": asdict(person), "garment_frame": asdict(garment)},
        )
        state.aux["cpvton_inputs"] = {"person_frame": person, "agnostic": agnostic, "cloth": cloth_net, "parse": parse_net}

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        from vtryon.visualize import draw_points, draw_warp_grid
        from vtryon.vision.tryon_inputs import from_unit_range

        inputs = state.aux.get("cpvton_inputs")
        if state.warp is None or inputs is None:
            return {}
        agn = inputs["agnostic"]
        shape = np.repeat(((agn.shape + 1) * 127.5).astype(np.uint8)[..., None], 3, 2)
        pose = np.repeat(((agn.pose.max(0) + 1) * 127.5).astype(np.uint8)[..., None], 3, 2)
        return {
            "cpvton body shape": shape,
            "cpvton head": from_unit_range(agn.head),
            "cpvton pose maps": pose,
            "cpvton cloth input": inputs["cloth"],
            "tps control points": draw_points(state.garment, state.warp.src_points, ("",) * len(state.warp.src_points), (255, 0, 0)),
            "warp grid": draw_warp_grid(state.person, state.warp.map_xy),
        }
