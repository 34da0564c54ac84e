"""DPT-Hybrid MiDaS (relative inverse depth) through transformers' ``DPTForDepthEstimation``.

The released file is intel-isl/MiDaS v3 ``dpt_hybrid-midas-501f0c75.pt``: a bare state dict
in MiDaS's names (``pretrained.model.*`` for the timm ViT-hybrid, whose ResNet stem is
``pretrained.model.patch_embed.backbone.*``; ``pretrained.act_postprocess*`` for the
reassemble blocks; ``scratch.*`` for the RefineNet neck and the head). The renaming here
follows transformers' ``convert_dpt_hybrid_to_pytorch.py``: the fused ``attn.qkv`` is split
into query/key/value, and the unused classifier ``pretrained.model.head.*`` is dropped.

Widths and depths are read from tensor shapes. Not readable from shapes, fixed at the
released values: 64-dim attention heads, ViT hooks [2, 5, 8, 11] (the hybrid reads the first
two features from the ResNet stages), 32 GroupNorm groups in the ResNet, readout "project".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

HEAD_DIM = 64
OUT_INDICES = [2, 5, 8, 11]
DROPPED_PREFIXES = ("pretrained.model.head.",)

_VIT = "pretrained.model."
_RESNET = "pretrained.model.patch_embed.backbone."
_HF_RESNET = "dpt.embeddings.backbone.bit."

# exact-name pieces of the ViT blocks: original -> transformers
_BLOCK_PARTS = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_FUSION_PARTS = {
    "out_conv": "projection",
    "resConfUnit1.conv1": "residual_layer1.convolution1",
    "resConfUnit1.conv2": "residual_layer1.convolution2",
    "resConfUnit2.conv1": "residual_layer2.convolution1",
    "resConfUnit2.conv2": "residual_layer2.convolution2",
}
# reassemble blocks of the hybrid: act_postprocess1/2 are identities (ResNet features)
_POSTPROCESS = {
    "act_postprocess3.0.project.0": "neck.reassemble_stage.readout_projects.2.0",
    "act_postprocess4.0.project.0": "neck.reassemble_stage.readout_projects.3.0",
    "act_postprocess3.3": "neck.reassemble_stage.layers.2.projection",
    "act_postprocess4.3": "neck.reassemble_stage.layers.3.projection",
    "act_postprocess4.4": "neck.reassemble_stage.layers.3.resize",
}


def _rename(key: str) -> str:
    """The transformers name of one original tensor (the fused qkv keeps a ``.qkv.`` marker)."""
    body, leaf = key.rsplit(".", 1)
    if key.startswith(_RESNET):
        rest = key[len(_RESNET):]
        if rest.startswith("stem.conv."):
            return _HF_RESNET + "embedder.convolution." + rest[len("stem.conv."):]
        if rest.startswith("stem.norm."):
            return _HF_RESNET + "embedder.norm." + rest[len("stem.norm."):]
        m = re.fullmatch(r"stages\.(\d+)\.blocks\.(\d+)\.(.+)", rest)
        if m:
            return f"{_HF_RESNET}encoder.stages.{m[1]}.layers.{m[2]}.{m[3]}"
        raise KeyError(key)
    if key.startswith(_VIT):
        rest = body[len(_VIT):]
        simple = {"cls_token": "dpt.embeddings.cls_token", "pos_embed": "dpt.embeddings.position_embeddings"}
        if key[len(_VIT):] in simple:
            return simple[key[len(_VIT):]]
        if rest == "patch_embed.proj":
            return f"dpt.embeddings.projection.{leaf}"
        if rest == "norm":
            return f"dpt.layernorm.{leaf}"
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", rest)
        if m and m[2] == "attn.qkv":
            return f"dpt.encoder.layer.{m[1]}.attn.qkv.{leaf}"
        if m and m[2] in _BLOCK_PARTS:
            return f"dpt.encoder.layer.{m[1]}.{_BLOCK_PARTS[m[2]]}.{leaf}"
        raise KeyError(key)
    if key.startswith("pretrained."):
        return f"{_POSTPROCESS[body[len('pretrained.'):]]}.{leaf}"
    m = re.fullmatch(r"scratch\.layer([1-4])_rn", body)
    if m:
        return f"neck.convs.{int(m[1]) - 1}.{leaf}"
    m = re.fullmatch(r"scratch\.refinenet([1-4])\.(.+)", body)
    if m:  # refinenet4 (deepest) runs first: fusion layer 0
        return f"neck.fusion_stage.layers.{4 - int(m[1])}.{_FUSION_PARTS[m[2]]}.{leaf}"
    m = re.fullmatch(r"scratch\.output_conv\.(\d+)", body)
    if m:
        return f"head.head.{m[1]}.{leaf}"
    raise KeyError(key)


def released_to_module_keys(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """MiDaS names -> transformers names; qkv split in three; the classifier head dropped.

    Values may also be non-tensors (names, for mapping checks): a fused qkv value is then
    repeated for query, key and value.
    """
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        if key.startswith(DROPPED_PREFIXES):
            continue
        try:
            name = _rename(key)
        except KeyError:
            out[key] = value  # not a MiDaS name: the strict load will list it as unexpected
            continue
        if ".attn.qkv." not in name:
            out[name] = value
            continue
        prefix, leaf = name.split(".attn.qkv.")
        parts = value.chunk(3, dim=0) if hasattr(value, "chunk") else (value,) * 3
        for role, part in zip(("query", "key", "value"), parts):
            out[f"{prefix}.attention.attention.{role}.{leaf}"] = part
    return out


def config_from_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Widths and depths from the transformers-named tensors."""
    pos = state_dict["dpt.embeddings.position_embeddings"].shape
    patch = state_dict["dpt.embeddings.projection.weight"].shape
    hidden = int(pos[-1])
    layers = 1 + max(int(k.split(".")[3]) for k in state_dict if k.startswith("dpt.encoder.layer."))
    grid = int(round((pos[1] - 1) ** 0.5))
    stage_re = re.compile(r"dpt\.embeddings\.backbone\.bit\.encoder\.stages\.(\d+)\.layers\.(\d+)\.conv3\.weight")
    depths: dict[int, int] = {}
    widths: dict[int, int] = {}
    for k, v in state_dict.items():
        m = stage_re.fullmatch(k)
        if m:
            s = int(m[1])
            depths[s] = max(depths.get(s, 0), int(m[2]) + 1)
            widths[s] = int(v.shape[0])
    stages = sorted(depths)
    neck = [int(state_dict[f"neck.convs.{i}.weight"].shape[1]) for i in range(4)]
    return {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": max(1, hidden // HEAD_DIM),
        "intermediate_size": int(state_dict["dpt.encoder.layer.0.intermediate.dense.weight"].shape[0]),
        "image_size": grid * 16,  # the ResNet stem reduces by 16 before the 1x1 patch projection
        "embedding_size": int(state_dict[_HF_RESNET + "embedder.convolution.weight"].shape[0]),
        "depths": [depths[s] for s in stages],
        "stage_widths": [widths[s] for s in stages],
        "backbone_channels": int(patch[1]),
        "neck_hidden_sizes": neck,
        "fusion_hidden_size": int(state_dict["neck.convs.0.weight"].shape[0]),
    }


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        from vtryon.errors import UsageError

        raise UsageError("DPT-Hybrid MiDaS depth needs transformers", hint='install it with `pip install "vtryon[neural]"`') from exc
    return transformers


def dpt_config(config: Mapping[str, Any]) -> Any:
    """The transformers ``DPTConfig`` of the DPT-hybrid MiDaS network at ``config``."""
    tf = _transformers()
    BitConfig, DPTConfig = tf.BitConfig, tf.DPTConfig

    widths = list(config["stage_widths"])
    grid = config["image_size"] // 16
    backbone = BitConfig(
        global_padding="same",
        layer_type="bottleneck",
        depths=list(config["depths"]),
        hidden_sizes=widths,
        embedding_size=config["embedding_size"],
        out_features=[f"stage{i + 1}" for i in range(len(widths))],
        embedding_dynamic_padding=True,
    )
    return DPTConfig(
        is_hybrid=True,
        backbone_config=backbone,
        backbone_featmap_shape=[1, config["backbone_channels"], grid, grid],
        hidden_size=config["hidden_size"],
        num_hidden_layers=config["num_hidden_layers"],
        num_attention_heads=config["num_attention_heads"],
        intermediate_size=config["intermediate_size"],
        image_size=config["image_size"],
        patch_size=16,
        backbone_out_indices=list(OUT_INDICES),
        readout_type="project",
        reassemble_factors=[1, 1, 1, 0.5],
        neck_hidden_sizes=list(config["neck_hidden_sizes"]),
        fusion_hidden_size=config["fusion_hidden_size"],
        use_batch_norm_in_fusion_residual=False,
        neck_ignore_stages=[0, 1],
    )


FULL_CONFIG: dict[str, Any] = {
    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
    "image_size": 384, "embedding_size": 64, "depths": [3, 4, 9], "stage_widths": [256, 512, 1024],
    "backbone_channels": 1024, "neck_hidden_sizes": [256, 512, 768, 768], "fusion_hidden_size": 256,
}


def build(config: Mapping[str, Any]) -> Any:
    """``DPTForDepthEstimation`` at ``config``, empty: the loader builds it on the meta device and
    fills every tensor strictly from the checkpoint."""
    return _transformers().DPTForDepthEstimation(dpt_config(config))


def example_input(config: Mapping[str, Any]) -> Any:
    """transformers' hybrid embeddings accept only the configured size (384 for the release)."""
    import torch

    return {"pixel_values": torch.zeros(1, 3, config["image_size"], config["image_size"])}
