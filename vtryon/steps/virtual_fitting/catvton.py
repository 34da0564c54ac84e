"""CatVTON (Zheng-Chong/CatVTON) on diffusers' UNet2DConditionModel: backend ``catvton``.

The generation follows ``CatVTONPipeline.__call__`` of the original:

- the SD-1.5 inpainting UNet (9 input channels) with its self-attention weights replaced by
  CatVTON's attention-only checkpoint and every cross-attention skipped (``h + norm2(h)``,
  no text encoder: ``encoder_hidden_states=None``);
- the VAE is stabilityai/sd-vae-ft-mse; latents are posterior *samples* (drawn from the
  run's generator) times 0.18215;
- person (masked: ``image * (mask < 0.5)``) and garment latents are concatenated along the
  height; the mask latent (nearest) is concatenated with zeros; the unconditional branch
  of guidance zeroes the garment latent; DDIM with eta = 1.0, 50 steps, guidance 2.5;
- the top half of the latents is decoded.

The mask is our agnostic mask, smoothed as the app smooths its masks (Gaussian blur of
radius 9 at 1024 rows, then binarised at 0.5 as the pipeline does). ``options["repaint"]`` blends the
result into the photo with the original's Gaussian-feathered mask (radius height // 50)
instead of the hard edge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vtryon.diffusion.tryon import DiffusionFitting, Settings
from vtryon.errors import CheckpointMissing, UsageError
from vtryon.steps.base import RunContext
from vtryon.vision.agnostic_mask import ARM_WIDTH

BASE_ID = "sd15_inpainting"  # booksforcharlie/stable-diffusion-inpainting: unet/, scheduler/
VAE_ID = "sd_vae_ft_mse"
ATTENTION_ID = "catvton_attention"  # zhengchong/CatVTON: <version>/attention/
# options["catvton_version"] -> (folder, the (width, height) it was trained and is run at)
VERSIONS = {
    "mix": ("mix-48k-1024", (768, 1024)),  # app.py's default
    "vitonhd": ("vitonhd-16k-512", (384, 512)),
    "dresscode": ("dresscode-16k-512", (384, 512)),
}
# what accelerate.load_checkpoint_in_model reads from a folder: safetensors first
ATTENTION_FILES = ("model.safetensors", "pytorch_model.bin")
APP_BLUR = 9  # VaeImageProcessor.blur(mask, blur_factor=9) in app.py, at 1024 rows


def version_of(options: Any) -> str:
    version = str((options or {}).get("catvton_version", "mix"))
    if version not in VERSIONS:
        raise UsageError(f"catvton_version {version!r} is not one of: {', '.join(VERSIONS)}")
    return version


def read_attention_file(folder: Path, version: str) -> dict[str, Any]:
    """The attention-only state dict of ``version`` (read as data: safetensors, or a
    ``.bin`` through ``torch.load(weights_only=True)``)."""
    from vtryon.models.checkpoint_io import read_state_dict

    where = folder / VERSIONS[version][0] / "attention"
    for name in ATTENTION_FILES:
        if (where / name).is_file():
            return dict(read_state_dict(where / name))
    raise CheckpointMissing(
        f"{ATTENTION_ID}: {where / ATTENTION_FILES[0]} is missing (CatVTON version {version!r})",
        hint=f"run `vtryon download {ATTENTION_ID}` to fetch it",
    )


class CatVTONEngine:
    """The loaded CatVTON components and one generation."""

    def __init__(self, paths: dict[str, Path], ctx: RunContext, dtype: Any, size: tuple[int, int], settings: Settings, version: str) -> None:
        import torch

        from vtryon.diffusion import components as c
        from vtryon.diffusion.attention import install_skip_cross_attention, load_catvton_attention
        from vtryon.diffusion.offload import Placement
        from vtryon.diffusion.precision import vae_dtype
        from vtryon.diffusion.vae import configure

        self.size = size
        self.dtype = dtype
        self.unet = c.load_unet(paths[BASE_ID], BASE_ID, "unet", dtype, in_channels=9)
        install_skip_cross_attention(self.unet)
        attention = read_attention_file(paths[ATTENTION_ID], version)
        load_catvton_attention(self.unet, attention, f"{ATTENTION_ID}: {paths[ATTENTION_ID] / VERSIONS[version][0]}")
        del attention
        vae = c.load_vae(paths[VAE_ID], VAE_ID, None, torch.float32)
        self.vae = vae.to(vae_dtype(vae.config, dtype))
        self.scheduler = c.load_scheduler(paths[BASE_ID], BASE_ID, "scheduler", "DDIMScheduler")
        self.factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        configure(self.vae, tiling=settings.vae_tiling)
        self.placement = Placement(ctx.device, ctx.offload)
        self.placement.prepare({"vae": self.vae, "unet": self.unet})

    def generate(self, person: np.ndarray, garment: np.ndarray, mask: np.ndarray, settings: Settings, category: str) -> list[np.ndarray]:
        import torch
        import torch.nn.functional as F

        from vtryon.diffusion import sampling
        from vtryon.diffusion.vae import decode, encode, to_images, to_tensor

        n, dev, dtype = settings.samples, torch.device(self.placement.device), self.dtype
        cfg = settings.guidance > 1.0
        generator = sampling.generator_for(settings.seed)
        m = torch.from_numpy((mask >= 127).astype(np.float32))[None, None]
        images = to_tensor([person, garment])
        masked_person = images[:1] * (m < 0.5)
        sf = float(self.vae.config.scaling_factor)
        with self.placement.use("vae") as (vae,):
            masked = encode(vae, masked_person.to(dev), sample=True, generator=generator) * sf
            cloth = encode(vae, images[1:].to(dev), sample=True, generator=generator) * sf
        masked, cloth = masked.to(dtype), cloth.to(dtype)
        m_lat = F.interpolate(m.to(dev), size=masked.shape[-2:], mode="nearest").to(dtype)
        cond = torch.cat([masked, cloth], dim=-2)
        mask_cat = torch.cat([m_lat, torch.zeros_like(m_lat)], dim=-2)
        cond, mask_cat = cond.repeat(n, 1, 1, 1), mask_cat.repeat(n, 1, 1, 1)
        if cfg:  # unconditional first: the garment half zeroed
            uncond = torch.cat([masked, torch.zeros_like(cloth)], dim=-2).repeat(n, 1, 1, 1)
            cond = torch.cat([uncond, cond])
            mask_cat = torch.cat([mask_cat, mask_cat])

        scheduler = type(self.scheduler).from_config(self.scheduler.config)
        scheduler.set_timesteps(settings.steps, device=dev)
        latents = sampling.gaussian((n,) + tuple(cond.shape[1:]), generator, dev, dtype) * scheduler.init_noise_sigma

        with self.placement.use("unet") as (unet,):

            def predict(x: Any, t: Any) -> Any:
                inp = torch.cat([x] * 2) if cfg else x
                inp = torch.cat([scheduler.scale_model_input(inp, t), mask_cat, cond], dim=1)
                eps = unet(inp, t, encoder_hidden_states=None, return_dict=False)[0]
                if cfg:
                    e_uncond, e_cond = eps.chunk(2)
                    eps = sampling.guided(e_uncond, e_cond, settings.guidance)
                return eps

            latents = sampling.denoise(scheduler, latents, predict, extra_step_kwargs=sampling.step_kwargs(scheduler, generator, eta=1.0))
        top = latents.split(latents.shape[-2] // 2, dim=-2)[0]
        with self.placement.use("vae") as (vae,):
            out = decode(vae, top / sf)
        return to_images(out)


class CatVTONFitting(DiffusionFitting):
    name = "catvton"
    description = "CatVTON (SD-1.5 inpainting UNet + attention-only weights, no text encoder) through diffusers: 50 DDIM steps, guidance 2.5, 768x1024"
    models = (BASE_ID, VAE_ID, ATTENTION_ID)
    size_model = ATTENTION_ID
    default_steps = 50
    default_guidance = 2.5
    accelerator_precision = "bf16"  # app.py --mixed_precision bf16
    arm_width = ARM_WIDTH["hd"]

    def build_engine(self, paths: dict[str, Path], ctx: RunContext, dtype: Any, size: tuple[int, int], settings: Settings) -> CatVTONEngine:
        return CatVTONEngine(paths, ctx, dtype, size, settings, version_of(ctx.options))

    def default_size(self, ctx: RunContext) -> tuple[int, int]:
        return VERSIONS[version_of(ctx.options)][1]

    def engine_variant(self, ctx: RunContext) -> tuple:
        return (version_of(ctx.options),)

    def model_mask(self, mask: np.ndarray) -> np.ndarray:
        import cv2

        sigma = APP_BLUR * mask.shape[0] / 1024
        soft = cv2.GaussianBlur((mask > 0).astype(np.float32), (0, 0), sigmaX=sigma)
        return np.where(soft >= 0.5, np.uint8(255), np.uint8(0))

    def feather(self, settings: Settings, size: tuple[int, int]) -> float:
        if not settings.repaint:
            return 0.0
        k = size[1] // 50  # inference.py repaint(): GaussianBlur(h // 50, odd)
        return float(k + 1 if k % 2 == 0 else k)
