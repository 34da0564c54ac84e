"""Which dtype a diffusion engine computes in, and which its VAE runs in."""

from __future__ import annotations

from typing import Any

from vtryon.errors import UsageError

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def compute_dtype(device: str, precision: str, accelerator_default: str = "fp16") -> Any:
    """fp32 on CPU unless asked otherwise; on an accelerator the engine's own default
    (OOTDiffusion fp16, CatVTON bf16), falling back to fp16 where bf16 is not supported."""
    import torch

    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r} is not one of: {', '.join(PRECISIONS)}")
    name = precision
    if name == "auto":
        if device == "cpu":
            name = "fp32"
        else:
            name = accelerator_default
            if name == "bf16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
                name = "fp16"
            if name == "bf16" and device == "mps":
                name = "fp16"
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def vae_dtype(vae_config: Any, dtype: Any) -> Any:
    """The SD VAE overflows in fp16 at high resolution; diffusers marks such VAEs with
    ``force_upcast`` (its default for configs that predate the flag), and they run in fp32.
    bf16 has fp32's range, so it needs no upcast."""
    import torch

    if dtype == torch.float16 and bool(getattr(vae_config, "force_upcast", True)):
        return torch.float32
    return dtype
