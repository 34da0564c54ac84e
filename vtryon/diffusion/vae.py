"""VAE encode/decode as the engines use it: slicing always (exact: one image at a time),
tiling on request (approximate: tiles are blended), fp16 upcast where the VAE needs it."""

from __future__ import annotations

from typing import Any

import numpy as np


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


def to_tensor(images: list[np.ndarray]) -> Any:
    """RGB uint8 HxWx3 images -> float32 NCHW in [-1, 1], the VAE's pixel range."""
    import torch

    arr = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def to_images(tensor: Any) -> list[np.ndarray]:
    """NCHW in [-1, 1] -> RGB uint8 images, rounded as diffusers' postprocess rounds."""
    arr = (tensor / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
    return [np.rint(a * 255).astype(np.uint8) for a in arr]
