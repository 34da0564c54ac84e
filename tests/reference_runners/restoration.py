"""Fixture runners of the restoration (Real-ESRGAN, SwinIR, GFPGAN) and quality (LPIPS, CLIP)
networks, called as each fixture's json records, through the project's own helpers."""

from __future__ import annotations

from typing import Any


def _plain(model: Any, fx: Any) -> dict[str, Any]:
    return {"output": model(fx.inputs["input"])}


def _swinir(model: Any, fx: Any) -> dict[str, Any]:
    from vtryon.steps.post_processing.upscale import upscale_tensor

    x = fx.inputs["input"]
    return {
        "model": model(x),  # the network alone: reflect-pads to the window inside, crops
        "test_script": upscale_tensor(model, x, tile=0, overlap=0, mirror_window=8),
    }


def _gfpgan(model: Any, fx: Any) -> dict[str, Any]:
    image, rgbs = model(fx.inputs["input"], return_rgb=True, randomize_noise=False)
    return {"image": image, **{f"rgb_{i}": rgb for i, rgb in enumerate(rgbs)}}


def _lpips(model: Any, fx: Any) -> dict[str, Any]:
    in0, in1 = fx.inputs["in0"], fx.inputs["in1"]
    value, layers = model(in0, in1, per_layer=True)
    return {
        "value": value,
        **{f"layer_{k}": layer for k, layer in enumerate(layers)},
        "spatial_map": model(in0, in1, spatial=True),
        "value_normalize_true": model((in0 + 1) / 2, (in1 + 1) / 2, normalize=True),
    }


def _clip(model: Any, fx: Any) -> dict[str, Any]:
    image, text = fx.inputs["image"], fx.inputs["text"]
    logits_per_image, logits_per_text = model(image, text)
    return {
        "image_features": model.encode_image(image),
        "text_features": model.encode_text(text),
        "logits_per_image": logits_per_image,
        "logits_per_text": logits_per_text,
    }


RUNNERS = {
    "realesrgan_x4plus": _plain,
    "realesrgan_x2plus": _plain,
    "realesr_general_x4v3": _plain,
    "swinir_l_realsr_x4_gan": _swinir,
    "gfpgan_v1_4": _gfpgan,
    "lpips_alex_v0_1": _lpips,
    "clip_vit_b32": _clip,
}
