"""Seeding, initial noise, classifier-free guidance and the scheduler loop.

Every random draw comes from one CPU ``torch.Generator`` seeded with the run's seed, in a
fixed order, and is moved to the device afterwards: the same seed gives the same noise on
any device and under any offload mode.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def generator_for(seed: int) -> Any:
    import torch

    return torch.Generator(device="cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)


def gaussian(shape: tuple[int, ...], generator: Any, device: Any, dtype: Any) -> Any:
    """Standard normal noise drawn in float32 on the CPU, then moved and cast."""
    import torch

    return torch.randn(shape, generator=generator, device="cpu", dtype=torch.float32).to(device=device, dtype=dtype)


def guided(uncond: Any, cond: Any, scale: float) -> Any:
    """Classifier-free guidance: ``uncond + scale * (cond - uncond)``."""
    return uncond + scale * (cond - uncond)


def step_kwargs(scheduler: Any, generator: Any, eta: float | None = None) -> dict[str, Any]:
    """The optional arguments this scheduler's ``step`` accepts (DDIM: eta, generator)."""
    accepted = set(inspect.signature(scheduler.step).parameters)
    kwargs: dict[str, Any] = {}
    if eta is not None and "eta" in accepted:
        kwargs["eta"] = eta
    if "generator" in accepted:
        kwargs["generator"] = generator
    return kwargs


def denoise(
    scheduler: Any,
    latents: Any,
    predict_noise: Callable[[Any, Any], Any],
    *,
    extra_step_kwargs: dict[str, Any] | None = None,
    after_step: Callable[[int, Any, Any], Any] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> Any:
    """Run ``scheduler.timesteps`` (set by the caller) from ``latents``.

    ``predict_noise(latents, t)`` returns the guided noise prediction;
    ``after_step(i, t, latents)`` may rewrite the latents after each step (OOTDiffusion's
    repainting); ``on_step(i, n)`` reports progress.
    """
    import torch

    timesteps = scheduler.timesteps
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            noise = predict_noise(latents, t)
            latents = scheduler.step(noise, t, latents, **(extra_step_kwargs or {}), return_dict=False)[0]
            if after_step is not None:
                latents = after_step(i, t, latents)
            if on_step is not None:
                on_step(i + 1, len(timesteps))
    return latents
