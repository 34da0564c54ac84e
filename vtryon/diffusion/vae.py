"""VAE encode/decode as the engines use it: slicing always (exact: one image at a time),
tiling on request (approximate: tiles are blended), fp16 upcast where the VAE needs it."""

from __future__ import annotations

from typing import Any


def configure(vae: Any, *, tiling: bool = False) -> None:
    vae.enable_slicing()
    if tiling:
        vae.enable_tiling()
    else:
        vae.disable_tiling()


def encode(vae: Any, images: Any, *, sample: bool = False, generator: Any = None) -> Any:
    """Latents (unscaled) of ``images`` in [-1, 1], NCHW: the posterior's mode (OOTDiffusion)
    or a sample drawn with ``generator`` (CatVTON). Returned in float32."""
    import torch

    with torch.no_grad():
        posterior = vae.encode(images.to(vae.dtype)).latent_dist
        latents = posterior.sample(generator=generator) if sample else posterior.mode()
    return latents.float()


def decode(vae: Any, latents: Any) -> Any:
    """Images in [-1, 1] (float32) from unscaled latents."""
    import torch

    with torch.no_grad():
        images = vae.decode(latents.to(vae.dtype), return_dict=False)[0]
    return images.float()
