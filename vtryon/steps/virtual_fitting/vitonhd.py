"""VITON-HD try-on synthesis (ALIAS generator at 1024x768, test.py part 3).

Reads the layout step 04's ``vitonhd-gmm`` predicted (``aux["vitonhd"]``: 7 labels, the
cloth-agnostic person, the OpenPose rendering, the person frame) and step 05's warped
garment (on white, as the original warped the white-background cloth photo). The misaligned
region is ``relu(upper - warped mask)``; it is cut out of the upper channel and given its
own mask-norm channel. ALIAS adds noise scaled by its learned ``noise_scale``: drawn from
a generator seeded with the run's seed (same seed, same image), or off with
``options["gan_noise"] = False``. The 1024x768 result is pasted back into the photo over the
repainted region; ``aux["changed_region"]`` is that region at photo size (bool).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vtryon.errors import UsageError
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext

FEATHER_FRACTION = 1 / 80  # feather width relative to the load height (~13 px at 1024)
LOAD_SIZE = (1024, 768)


def generator_size(ctx: RunContext) -> tuple[int, int]:
    """ALIAS's resolution: 1024x768, or ``options["vitonhd_load_size"]`` (a 4:3 size in multiples
    of 128, e.g. 512x384) to run it cheaper; step 04's inputs are then resized to it."""
    h, w = (int(v) for v in ctx.options.get("vitonhd_load_size", LOAD_SIZE))
    if h % 128 or w % 128 or h * 3 != w * 4:
        raise UsageError(f"vitonhd load size {h}x{w}: use a 4:3 size whose sides are multiples of 128 (1024x768)")
    return h, w


class VITONHDFitting(Backend):
    step = "virtual_fitting"
    name = "vitonhd-alias"
    description = "VITON-HD ALIAS generator at 1024x768 (misalignment-aware normalisation), pasted back at full resolution"
    reads = ("person", "parsing", "warped_garment", "warped_mask", "aux.vitonhd")
    writes = ("tryon", "aux.changed_region", "aux.vitonhd_alias")
    models = ("vitonhd_alias",)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        import cv2
        import torch

        from vtryon.archs.vitonhd import NoiseSource
        from vtryon.vision import tryon_inputs as ti

        v = state.aux.get("vitonhd")
        if v is None:
            raise UsageError(
                "vitonhd-alias reads the layout predicted by the vitonhd-gmm matching; use the viton-hd profile "
                "(geometric_matching = vitonhd-gmm) and do not start with --from virtual_fitting"
            )
        if state.warped_garment is None or state.warped_mask is None:
            raise UsageError("vitonhd-alias needs step 05's warped garment; do not start with --from virtual_fitting")
        size = generator_size(ctx)
        frame = v["person_frame"].with_size(size)
        h, w = size

        def fit(a: np.ndarray, nearest: bool = False) -> np.ndarray:
            if a.shape[:2] == size:
                return a
            return cv2.resize(a, (w, h), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)

        warped_cm = frame.crop(state.warped_mask, fill=0).astype(np.float32) / 255.0
        warped_c = ti.on_white(frame.crop(state.warped_garment, fill=(255, 255, 255)), (warped_cm * 255).astype(np.uint8))

        parse = ti.merge_labels(fit(v["parse7"], nearest=True), tuple((str(i), (i,)) for i in range(7)))
        misalign = np.maximum(parse[2] - warped_cm, 0.0)
        parse_div = np.concatenate([parse, misalign[None]], 0)
        parse_div[2] -= misalign
        x = np.concatenate([ti.to_unit_range(fit(v["img_agnostic"])), ti.to_unit_range(fit(v["pose_rgb"])), ti.to_unit_range(warped_c)], 0)

        model = ctx.models.load("vitonhd_alias")
        p = next(model.parameters())

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, np.float32))[None].to(p.device, p.dtype)

        noise = NoiseSource(torch.Generator().manual_seed(int(ctx.seed)), enabled=bool(ctx.options.get("gan_noise", True)))
        with torch.inference_mode():
            out = model(t(x), t(parse), t(parse_div), t(misalign[None]), noise=noise)
        tryon_l = ti.from_unit_range(out[0].float().cpu().numpy())
        parse_l = frame.crop(state.parsing, nearest=True, fill=0)
        alpha = ti.repaint_region(parse_l, warped_cm, size[0] * FEATHER_FRACTION)
        state.tryon = frame.paste(state.person, tryon_l, alpha)
        state.aux["changed_region"] = frame.paste(np.zeros(state.size, np.uint8), np.full(size, 255, np.uint8), alpha) > 0
        state.aux["vitonhd_alias"] = {"tryon": tryon_l, "cloth": warped_c, "misalign": (misalign * 255).astype(np.uint8), "size": size}

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        out = state.aux.get("vitonhd_alias")
        if state.tryon is None or out is None:
            return {}
        return {
            "alias input cloth": out["cloth"],
            "alias misaligned region": np.repeat(out["misalign"][..., None], 3, 2),
            f"alias try-on {out['size'][0]}x{out['size'][1]}": out["tryon"],
            "try-on": state.tryon,
        }
