"""Segment Anything (vit_h / vit_l / vit_b) built by the ``segment-anything`` package.

The package's ``build_sam_*`` functions hard-code the released sizes and read the file with
``torch.load``; here the same classes (``Sam``, ``ImageEncoderViT``, ``PromptEncoder``,
``MaskDecoder``, ``TwoWayTransformer``) are built from a config read off the tensor shapes,
and the project's loader fills them strictly. So ``sam_vit_h_4b8939.pth`` & co. and the
reduced-width fixtures load through one path.

``pixel_mean``/``pixel_std`` are non-persistent buffers (not in the file): :func:`materialize`
sets SAM's constants after loading.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
OPTIONAL_KEYS = ("num_batches_tracked",)


def count_children(state: Mapping[str, Any], prefix: str) -> int:
    """How many numbered children ``prefix.<i>.`` the state dict has."""
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pat.match(k))}
    return max(found) + 1 if found else 0


def _need(state: Mapping[str, Any], key: str) -> Any:
    try:
        return state[key]
    except KeyError:
        raise KeyError(f"not a Segment Anything state dict: no tensor {key!r}") from None


def prompt_and_decoder_config(state: Mapping[str, Any]) -> dict[str, Any]:
    """Prompt encoder and mask decoder sizes (shared by SAM and MobileSAM)."""
    prompt_dim = int(_need(state, "prompt_encoder.no_mask_embed.weight").shape[1])
    t = "mask_decoder.transformer.layers.0."
    inner = int(_need(state, t + "cross_attn_token_to_image.q_proj.weight").shape[0])
    return {
        "prompt_embed_dim": prompt_dim,
        "mask_in_chans": int(_need(state, "prompt_encoder.mask_downscaling.3.weight").shape[0]),
        "decoder_depth": count_children(state, "mask_decoder.transformer.layers"),
        "decoder_mlp_dim": int(_need(state, t + "mlp.lin1.weight").shape[0]),
        "decoder_heads": 8,  # not visible in shapes; 8 in every released SAM
        "attention_downsample_rate": prompt_dim // inner,
        "num_multimask_outputs": int(_need(state, "mask_decoder.mask_tokens.weight").shape[0]) - 1,
        "iou_head_depth": count_children(state, "mask_decoder.iou_prediction_head.layers"),
        "iou_head_hidden_dim": int(_need(state, "mask_decoder.iou_prediction_head.layers.0.weight").shape[0]),
    }


def config_from_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """ViT encoder sizes, window/global layout and prompt/decoder sizes from tensor shapes.

    Heads come from the relative-position tables (their width is the head dimension); a block
    whose table spans the whole token grid is a global-attention block.
    """
    e = "image_encoder."
    patch = _need(state_dict, e + "patch_embed.proj.weight").shape  # (C, 3, p, p)
    embed_dim, patch_size = int(patch[0]), int(patch[2])
    grid = int(_need(state_dict, e + "pos_embed").shape[1])
    depth = count_children(state_dict, e + "blocks")
    use_rel_pos = f"{e}blocks.0.attn.rel_pos_h" in state_dict
    global_idx: list[int] = []
    window = 14
    head_dim = embed_dim // 12
    if use_rel_pos:
        spans = [int(state_dict[f"{e}blocks.{i}.attn.rel_pos_h"].shape[0]) for i in range(depth)]
        head_dim = int(state_dict[f"{e}blocks.0.attn.rel_pos_h"].shape[1])
        global_idx = [i for i, s in enumerate(spans) if s == 2 * grid - 1]
        local = [s for s in spans if s != 2 * grid - 1]
        if local:
            window = (local[0] + 1) // 2
        else:  # every block sees the whole grid: a window as large as the grid is the same thing
            window, global_idx = grid, []
    return {
        "img_size": grid * patch_size,
        "patch_size": patch_size,
        "encoder_embed_dim": embed_dim,
        "encoder_depth": depth,
        "encoder_num_heads": embed_dim // head_dim,
        "encoder_global_attn_indexes": global_idx,
        "window_size": window,
        "mlp_ratio": int(state_dict[f"{e}blocks.0.mlp.lin1.weight"].shape[0]) / embed_dim,
        "qkv_bias": f"{e}blocks.0.attn.qkv.bias" in state_dict,
        "use_rel_pos": use_rel_pos,
        "out_chans": int(_need(state_dict, e + "neck.0.weight").shape[0]),
        **prompt_and_decoder_config(state_dict),
    }


def assemble(image_encoder: Any, config: Mapping[str, Any]) -> Any:
    """A ``segment_anything`` ``Sam`` around ``image_encoder`` with the prompt encoder and
    mask decoder of ``config`` (MobileSAM reuses this with its TinyViT)."""
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    img_size = int(config["img_size"])
    emb = img_size // 16  # both encoders reduce by 16
    dim = int(config["prompt_embed_dim"])
    return Sam(
        image_encoder=image_encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(emb, emb),
            input_image_size=(img_size, img_size),
            mask_in_chans=int(config["mask_in_chans"]),
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=int(config["num_multimask_outputs"]),
            transformer=TwoWayTransformer(
                depth=int(config["decoder_depth"]),
                embedding_dim=dim,
                mlp_dim=int(config["decoder_mlp_dim"]),
                num_heads=int(config["decoder_heads"]),
                attention_downsample_rate=int(config["attention_downsample_rate"]),
            ),
            transformer_dim=dim,
            iou_head_depth=int(config["iou_head_depth"]),
            iou_head_hidden_dim=int(config["iou_head_hidden_dim"]),
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )


def build(config: Mapping[str, Any]) -> Any:
    from functools import partial

    import torch
    from segment_anything.modeling import ImageEncoderViT

    encoder = ImageEncoderViT(
        img_size=int(config["img_size"]),
        patch_size=int(config.get("patch_size", 16)),
        embed_dim=int(config["encoder_embed_dim"]),
        depth=int(config["encoder_depth"]),
        num_heads=int(config["encoder_num_heads"]),
        mlp_ratio=float(config.get("mlp_ratio", 4.0)),
        out_chans=int(config["out_chans"]),
        qkv_bias=bool(config.get("qkv_bias", True)),
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=bool(config.get("use_rel_pos", True)),
        window_size=int(config.get("window_size", 14)),
        global_attn_indexes=tuple(config["encoder_global_attn_indexes"]),
    )
    return assemble(encoder, config)


def materialize(model: Any) -> None:
    """Set SAM's non-persistent pixel normalisation buffers (RGB, 0-255 scale)."""
    import torch

    device = model.mask_decoder.mask_tokens.weight.device
    model.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN, device=device).view(-1, 1, 1), persistent=False)
    model.register_buffer("pixel_std", torch.tensor(PIXEL_STD, device=device).view(-1, 1, 1), persistent=False)
