"""VITON-HD segmentation generation and geometric matching (test.py parts 1 and 2).

The SegGenerator runs here, not in step 06: the GMM reads its predicted upper-garment
channel, and the ALIAS generator of step 06 reads the whole predicted layout
(``aux["vitonhd"]["parse7"]``).

1. The person is framed at the load size 1024x768 (3:4 box around the parsed person); its
   parse-agnostic (13 one-hot classes), cloth-agnostic image and OpenPose BODY_25 rendering
   are built as VITON-HD's dataset builds them (:mod:`vtryon.vision.tryon_inputs`).
2. SegGenerator at 256x192 (bilinear downsampling, binary noise channel seeded by the run's
   seed) -> bilinear up to load size -> 15x15 sigma-3 Gaussian (zero padding) -> argmax ->
   the 7 labels ALIAS reads.
3. GMM at 256x192 (nearest downsampling) -> TPS over [-0.9, 0.9] evaluated at load size ->
   garment-photo pixels (grid_sample with align_corners=False, as VITON-HD ran on PyTorch
   1.x) -> spread over the photo for step 05.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from vtryon.errors import NoPersonFound, UsageError
from vtryon.state import TryOnState, Warp
from vtryon.steps.base import Backend, RunContext

LOAD_SIZE = (1024, 768)
NET_SIZE = (256, 192)
VITONHD_PALETTE_7 = np.array(
    [[0, 0, 0], [255, 170, 0], [200, 30, 60], [120, 60, 20], [60, 180, 75], [0, 130, 200], [160, 160, 160]], np.uint8
)


def segmentation_to_labels(probs: Any, size: tuple[int, int]) -> np.ndarray:
    """test.py: bilinear up to ``size``, torchgeometry GaussianBlur((15, 15), (3, 3)), argmax.

    The blur's 2-D kernel is the outer product of a 1-D Gaussian and it pads with zeros, so it
    runs as two 1-D passes with a zero border (cv2.sepFilter2D): the same sums, far fewer of them.
    """
    import cv2
    import torch.nn.functional as F

    from vtryon.vision.tryon_inputs import gaussian_kernel

    up = F.interpolate(probs.float(), size=size, mode="bilinear", align_corners=False)[0].cpu().numpy()
    g = gaussian_kernel(15, 3.0)
    blurred = np.stack([cv2.sepFilter2D(c, -1, g, g, borderType=cv2.BORDER_CONSTANT) for c in up])
    return blurred.argmax(axis=0).astype(np.uint8)


class VITONHDMatching(Backend):
    step = "geometric_matching"
    name = "vitonhd-gmm"
    description = "VITON-HD: SegGenerator (target layout) + GMM (TPS over [-0.9, 0.9]) at 256x192, grid at 1024x768"
    reads = ("person", "parsing", "keypoints", "garment", "garment_mask")
    writes = ("warp", "aux.vitonhd")
    models = ("vitonhd_seg", "vitonhd_gmm")

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        import torch
        import torch.nn.functional as F

        from vtryon.archs.cpvton import control_point_pairs
        from vtryon.vision import tryon_inputs as ti

        if state.parsing is None or state.keypoints is None or state.garment_mask is None:
            raise UsageError("vitonhd-gmm needs steps 01-03 first; do not start with --from geometric_matching")
        size = LOAD_SIZE  # the inputs are drawn in 1024x768 pixels (the original's constants)
        frame = ti.person_frame(state.parsing, size)
        person_l = frame.crop(state.person, fill=(255, 255, 255))
        parse_l = frame.crop(state.parsing, nearest=True, fill=0)
        xy, present = ti.keypoints_in_frame(state.keypoints, frame)
        pose25, conf25 = ti.body25_from_openpose18(xy, present)
        if not (conf25[2] and conf25[5]):
            raise NoPersonFound(
                f"person image {state.person_path}: VITON-HD needs both shoulders visible; the pose has {int(conf25[2] + conf25[5])}",
                hint="use a photo of the upper body seen from the front",
            )
        drawn = ti.complete_torso(pose25, parse_l)
        parse_agnostic = ti.vitonhd_parse_agnostic(parse_l, drawn)
        img_agnostic = ti.vitonhd_img_agnostic(person_l, parse_l, drawn)
        pose_rgb = ti.render_openpose_body25(pose25, conf25, size)
        garment = ti.garment_frame(state.garment_mask, size)
        cloth = garment.crop(ti.on_white(state.garment, state.garment_mask), fill=(255, 255, 255))
        cloth_mask = (garment.crop(state.garment_mask, fill=0) >= 128).astype(np.float32)

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, np.float32))[None]

        c, cm = t(ti.to_unit_range(cloth)), t(cloth_mask[None])
        pa13 = t(ti.merge_labels(parse_agnostic, ti.VITONHD_13_FROM_LIP))
        pose_t, agn_t = t(ti.to_unit_range(pose_rgb)), t(ti.to_unit_range(img_agnostic))

        def down(x: torch.Tensor, mode: str) -> torch.Tensor:
            return F.interpolate(x, size=NET_SIZE, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))

        noise = t(ti.binary_noise((1,) + NET_SIZE, np.random.default_rng(ctx.seed)))
        seg_in = torch.cat([down(cm, "bilinear"), down(c * cm, "bilinear"), down(pa13, "bilinear"),
                            down(pose_t, "bilinear"), noise], 1)
        seg = ctx.models.load("vitonhd_seg")
        ps = next(seg.parameters())
        with torch.inference_mode():
            probs = seg(seg_in.to(ps.device, ps.dtype))
        labels13 = segmentation_to_labels(probs, size)
        seven = np.zeros_like(labels13)
        for j, (_, sources) in enumerate(ti.VITONHD_7_FROM_13):
            seven[np.isin(labels13, sources)] = j

        gmm = ctx.models.load("vitonhd_gmm")
        pg = next(gmm.parameters())
        upper = t((seven == 2).astype(np.float32)[None])
        gmm_a = torch.cat([down(upper, "nearest"), down(pose_t, "nearest"), down(agn_t, "nearest")], 1)
        with torch.inference_mode():
            theta = gmm.theta(gmm_a.to(pg.device, pg.dtype), down(c, "nearest").to(pg.device, pg.dtype))
            grid = gmm.grid(theta.float(), size)[0].cpu().numpy()
        theta_np = theta[0].float().cpu().numpy()

        map_load = garment.to_image(ti.grid_to_pixels(grid, size, align_corners=False))
        pts_p, pts_q = control_point_pairs(theta_np, gmm.grid_size, gmm.extent)
        # P is where the output grid takes the value P (linspace(-0.9, 0.9) spans the output)
        dst = frame.to_image((pts_p / gmm.extent + 1) / 2 * (np.array([size[1], size[0]]) - 1))
        src = garment.to_image(ti.grid_to_pixels(pts_q, size, align_corners=False))
        state.warp = Warp(
            map_xy=ti.network_map_to_person(map_load, frame, state.size),
            src_points=src.astype(np.float32),
            dst_points=dst.astype(np.float32),
            point_names=tuple(f"tps{i}" for i in range(len(src))),
            params={"model": "vitonhd_gmm", "theta": theta_np.tolist(), "person_frame": asdict(frame), "garment_frame": asdict(garment)},
        )
        state.aux["vitonhd"] = {
            "person_frame": frame,
            "parse7": seven,
            "parse_agnostic": parse_agnostic,
            "img_agnostic": img_agnostic,
            "pose_rgb": pose_rgb,
            "cloth": cloth,
            "noise": noise[0, 0].numpy(),
        }

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        from vtryon.visualize import LIP_PALETTE, draw_warp_grid

        v = state.aux.get("vitonhd")
        if state.warp is None or v is None:
            return {}
        return {
            "vitonhd parse-agnostic": LIP_PALETTE[v["parse_agnostic"]],
            "vitonhd cloth-agnostic person": v["img_agnostic"],
            "vitonhd openpose rendering": v["pose_rgb"],
            "vitonhd cloth input": v["cloth"],
            "vitonhd predicted layout": VITONHD_PALETTE_7[v["parse7"]],
            "warp grid": draw_warp_grid(state.person, state.warp.map_xy),
        }
