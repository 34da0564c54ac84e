"""OOTDiffusion (levihsu/OOTDiffusion) on diffusers' UNet2DConditionModel: backends
``ootd-hd`` (VITON-HD, upper-body garments) and ``ootd-dc`` (Dress Code: upper, lower, dress).

The generation follows ``OotdPipeline.__call__`` of the original:

1. conditioning tokens: the CLIP ViT-L/14 image embedding of the garment placed in the
   SD-1.5 text encoder's output (hd: ``""`` with 2 tokens, token 1 replaced; dc: the
   category word with 3 tokens, the image embedding appended);
2. VAE posterior *modes*, unscaled: garment, agnostic person (grey 127 inside the mask),
   original person;
3. the garment UNet runs once at t=0 (batch garment + zeros for guidance); its per-block
   hidden states feed the try-on UNet's self-attention (see vtryon.diffusion.attention);
4. UniPC (built from the stored SD-1.5 scheduler config), 20 steps; the try-on UNet sees
   ``cat([scaled noisy latents, agnostic latents])`` (8 channels); image guidance (on when
   the scale is >= 1) ``uncond + s * (cond - uncond)``; after every step the unmasked area is
   repainted from the original's latents noised to the next timestep (not after the last);
5. decode ``latents / 0.18215``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vtryon.diffusion.tryon import DiffusionFitting, Settings
from vtryon.errors import CheckpointMismatch
from vtryon.steps.base import RunContext
from vtryon.vision.agnostic_mask import ARM_WIDTH

CLIP_ID = "clip_vit_large_patch14"  # the garment image encoder
# Each variant's folder is the release's checkpoints/ootd with that variant's UNets:
# vae/, text_encoder/, tokenizer/, scheduler/ and ootd_<variant>/checkpoint-36000/{unet_garm,unet_vton}
UNETS_SUBFOLDER = "ootd_{variant}/checkpoint-36000"
CATEGORY_WORDS = {"upper": "upperbody", "lower": "lowerbody", "dress": "dress"}  # the dc prompts
GRAY = 127  # OOTDiffusion's mask_gray fill of the agnostic person


class OOTDEngine:
    """The loaded OOTDiffusion components and one generation."""

    def __init__(self, variant: str, paths: dict[str, Path], model_id: str, ctx: RunContext, dtype: Any, size: tuple[int, int], settings: Settings) -> None:
        import torch

        from vtryon.diffusion import components as c
        from vtryon.diffusion.attention import install_outfitting_fusion
        from vtryon.diffusion.offload import Placement
        from vtryon.diffusion.precision import vae_dtype
        from vtryon.diffusion.vae import configure

        self.variant = variant
        self.size = size
        self.dtype = dtype
        base, clip = paths[model_id], paths[CLIP_ID]
        unets = UNETS_SUBFOLDER.format(variant=variant)
        self.garm = c.load_unet(base, model_id, f"{unets}/unet_garm", dtype, in_channels=4)
        self.vton = c.load_unet(base, model_id, f"{unets}/unet_vton", dtype, in_channels=8)
        vae = c.load_vae(base, model_id, "vae", torch.float32)
        self.vae = vae.to(vae_dtype(vae.config, dtype))
        # the original keeps both encoders in float32; their outputs are cast to the UNets' dtype
        self.text_encoder = c.load_text_encoder(base, model_id, "text_encoder", torch.float32)
        self.tokenizer = c.load_tokenizer(base, model_id, "tokenizer")
        self.image_encoder = c.load_image_encoder(clip, CLIP_ID, None, torch.float32)
        self.image_processor = c.load_image_processor(clip, CLIP_ID, None)
        self.scheduler = c.load_scheduler(base, model_id, "scheduler", "UniPCMultistepScheduler")
        width = self.text_encoder.config.hidden_size
        if self.image_encoder.config.projection_dim != width or self.vton.config.cross_attention_dim != width:
            raise CheckpointMismatch(
                f"{CLIP_ID} projects to {self.image_encoder.config.projection_dim}, the text encoder is {width} wide and "
                f"{model_id}'s UNet attends to {self.vton.config.cross_attention_dim}: they must agree"
            )
        self.factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        if size[0] % self.factor or size[1] % self.factor:
            raise CheckpointMismatch(f"{model_id}: engine size {size} is not a multiple of the VAE's factor {self.factor}")
        self.features = install_outfitting_fusion(self.vton, self.garm)
        configure(self.vae, tiling=settings.vae_tiling)
        self.placement = Placement(ctx.device, ctx.offload)
        self.placement.prepare(
            {
                "vae": self.vae,
                "text_encoder": self.text_encoder,
                "image_encoder": self.image_encoder,
                "unet_garm": self.garm,
                "unet_vton": self.vton,
            }
        )

    @property
    def device(self) -> Any:
        import torch

        return torch.device(self.placement.device)

    def prompt_embeds(self, garment: np.ndarray, category: str) -> Any:
        """The conditioning tokens: text encoder output with the garment's CLIP image embedding."""
        import torch

        with torch.no_grad():
            with self.placement.use("image_encoder") as (enc,):
                pixels = self.image_processor(images=garment, return_tensors="pt")["pixel_values"]
                image_embeds = enc(pixels.to(self.device, torch.float32)).image_embeds.unsqueeze(1)
            text = "" if self.variant == "hd" else CATEGORY_WORDS[category]
            length = 2 if self.variant == "hd" else 3
            ids = self.tokenizer([text], max_length=length, padding="max_length", truncation=True, return_tensors="pt").input_ids
            with self.placement.use("text_encoder") as (te,):
                embeds = te(ids.to(self.device))[0]
        if self.variant == "hd":
            embeds = embeds.clone()
            embeds[:, 1:] = image_embeds
        else:
            embeds = torch.cat([embeds, image_embeds], dim=1)
        return embeds

    def generate(self, person: np.ndarray, garment: np.ndarray, mask: np.ndarray, settings: Settings, category: str) -> list[np.ndarray]:
        import torch
        import torch.nn.functional as F

        from vtryon.diffusion import sampling
        from vtryon.diffusion.attention import GarmentFeatures
        from vtryon.diffusion.vae import decode, encode, to_images, to_tensor

        n, dev, dtype = settings.samples, self.device, self.dtype
        cfg = settings.guidance >= 1.0
        generator = sampling.generator_for(settings.seed)
        inside = mask >= 127
        agnostic = np.where(inside[..., None], np.uint8(GRAY), person)

        prompt = self.prompt_embeds(garment, category).to(dtype).repeat(n, 1, 1)
        with self.placement.use("vae") as (vae,):
            garm, vton, orig = encode(vae, to_tensor([garment, agnostic, person]).to(dev)).split(1)
        sf = float(self.vae.config.scaling_factor)
        garm, vton, orig = (x.to(dtype).repeat(n, 1, 1, 1) for x in (garm, vton, orig))
        m = torch.from_numpy(inside.astype(np.float32))[None, None].to(dev)
        m = F.interpolate(m, size=vton.shape[-2:]).to(dtype).repeat(n, 1, 1, 1)  # nearest, as the original
        if cfg:
            prompt = torch.cat([prompt, prompt])
            garm = torch.cat([garm, torch.zeros_like(garm)])
            vton = torch.cat([vton, vton])

        scheduler = type(self.scheduler).from_config(self.scheduler.config)
        scheduler.set_timesteps(settings.steps, device=dev)
        timesteps = scheduler.timesteps
        noise = sampling.gaussian((n, 4) + tuple(vton.shape[-2:]), generator, dev, dtype) * scheduler.init_noise_sigma
        original = orig * sf

        with torch.no_grad(), self.placement.use("unet_garm") as (unet_garm,):
            recorder = GarmentFeatures(unet_garm)
            try:
                unet_garm(garm, 0, encoder_hidden_states=prompt, return_dict=False)
            finally:
                recorder.remove()
        self.features.clear()
        self.features.update(recorder.states)

        def repaint(i: int, t: Any, latents: Any) -> Any:
            known = original
            if i < len(timesteps) - 1:
                known = scheduler.add_noise(original, noise, timesteps[i + 1 : i + 2])
            return (1 - m) * known + m * latents

        try:
            with self.placement.use("unet_vton") as (unet_vton,):

                def predict(latents: Any, t: Any) -> Any:
                    x = torch.cat([latents] * 2) if cfg else latents
                    x = torch.cat([scheduler.scale_model_input(x, t), vton], dim=1)
                    eps = unet_vton(x, t, encoder_hidden_states=prompt, return_dict=False)[0]
                    if cfg:  # the garment branch first, the zero-garment branch second
                        cond, uncond = eps.chunk(2)
                        eps = sampling.guided(uncond, cond, settings.guidance)
                    return eps

                latents = sampling.denoise(scheduler, noise, predict, extra_step_kwargs=sampling.step_kwargs(scheduler, generator), after_step=repaint)
        finally:
            self.features.clear()
        with self.placement.use("vae") as (vae,):
            images = decode(vae, latents / sf)
        return to_images(images)


class OOTDiffusionFitting(DiffusionFitting):
    variant = "hd"
    model_id = "ootd_hd"
    default_steps = 20  # run_ootd.py / the gradio demo
    default_guidance = 2.0  # run_ootd.py --scale
    accelerator_precision = "fp16"

    def build_engine(self, paths: dict[str, Path], ctx: RunContext, dtype: Any, size: tuple[int, int], settings: Settings) -> OOTDEngine:
        return OOTDEngine(self.variant, paths, self.model_id, ctx, dtype, size, settings)


class OOTDiffusionHD(OOTDiffusionFitting):
    name = "ootd-hd"
    description = "OOTDiffusion (VITON-HD, half body, upper-body garments) through diffusers: 20 UniPC steps, image guidance 2.0, 768x1024"
    models = ("ootd_hd", CLIP_ID)
    variant = "hd"
    model_id = "ootd_hd"
    size_model = "ootd_hd"
    arm_width = ARM_WIDTH["hd"]
    categories = ("upper",)  # the original refuses other categories for hd


class OOTDiffusionDC(OOTDiffusionFitting):
    name = "ootd-dc"
    description = "OOTDiffusion (Dress Code, full body: upper, lower, dress) through diffusers: 20 UniPC steps, image guidance 2.0, 768x1024"
    models = ("ootd_dc", CLIP_ID)
    variant = "dc"
    model_id = "ootd_dc"
    size_model = "ootd_dc"
    arm_width = ARM_WIDTH["dc"]
