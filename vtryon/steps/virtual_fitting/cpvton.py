"""CP-VTON try-on module (TOM, 256x192): agnostic + warped garment -> rendered person and composition mask.

TOM reads the agnostic and c, step 05's warped garment (on white, as the original warped the
white-background cloth photo), at 256x192 and renders p and the composition mask m. The
composition ``p_tryon = c * m + p * (1 - m)`` is then evaluated at the photo's resolution
(p and m upsampled, c the full-resolution warped garment) and blended into the photo over the
repainted region (old garment, arms, new garment, never the head; feathered); the rest of the
photo keeps its pixels. The 256x192 ``p_tryon`` of the original is kept for the pictures.
``aux["changed_region"]`` is that region at photo size (bool: every pixel the paste touched).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vtryon.errors import UsageError
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext

SIZE = (256, 192)
FEATHER_PX = 3.0  # at 256x192


class CPVTONFitting(Backend):
    step = "virtual_fitting"
    name = "cpvton-tom"
    description = "CP-VTON TOM: U-Net rendering + composition mask at 256x192, pasted back at full resolution"
    reads = ("person", "parsing", "keypoints", "warped_garment", "warped_mask")
    writes = ("tryon", "aux.changed_region", "aux.cpvton_tom")
    models = ("cpvton_tom",)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        import torch

        from vtryon.archs.cpvton import tom_composite
        from vtryon.vision import tryon_inputs as ti

        if state.parsing is None or state.keypoints is None or state.warped_garment is None or state.warped_mask is None:
            raise UsageError("cpvton-tom needs steps 01-05 first; do not start with --from virtual_fitting")
        frame = ti.person_frame(state.parsing, SIZE)
        person_net = frame.crop(state.person, fill=(255, 255, 255))
        parse_net = frame.crop(state.parsing, nearest=True, fill=0)
        xy, present = ti.keypoints_in_frame(state.keypoints, frame)
        agnostic = ti.cpvton_agnostic(person_net, parse_net, xy, present).stack()
        mask_net = frame.crop(state.warped_mask, fill=0)
        cloth_net = ti.on_white(frame.crop(state.warped_garment, fill=(255, 255, 255)), mask_net)

        model = ctx.models.load("cpvton_tom")
        p = next(model.parameters())
        x = torch.from_numpy(np.concatenate([agnostic, ti.to_unit_range(cloth_net)], 0))[None].to(p.device, p.dtype)
        with torch.inference_mode():
            raw = model(x)
            tryon, rendered, composite = tom_composite(raw.float(), x[:, 22:25].float())
        tryon_net = ti.from_unit_range(tryon[0].cpu().numpy())
        rendered_net = ti.from_unit_range(rendered[0].cpu().numpy())
        m = composite[0, 0].cpu().numpy()
        alpha = ti.repaint_region(parse_net, mask_net.astype(np.float32) / 255.0, FEATHER_PX)
        cloth_photo = ti.on_white(state.warped_garment, state.warped_mask)
        state.tryon = ti.compose_at_photo_resolution(state.person, frame, rendered_net, m, cloth_photo, alpha)
        state.aux["changed_region"] = frame.paste(np.zeros(state.size, np.uint8), np.full(SIZE, 255, np.uint8), alpha) > 0
        state.aux["cpvton_tom"] = {
            "tryon": tryon_net,
            "rendered": rendered_net,
            "composite_mask": (m * 255).astype(np.uint8),
            "cloth": cloth_net,
        }

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        out = state.aux.get("cpvton_tom")
        if state.tryon is None or out is None:
            return {}
        return {
            "tom input cloth": out["cloth"],
            "tom rendered person": out["rendered"],
            "tom composition mask": np.repeat(out["composite_mask"][..., None], 3, 2),
            "tom try-on 256x192": out["tryon"],
            "try-on": state.tryon,
        }
