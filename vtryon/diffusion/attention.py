"""Attention glue the two engines need on top of diffusers' ``UNet2DConditionModel``.

OOTDiffusion (outfitting fusion): the garment UNet runs once and each of its transformer
blocks records the hidden states entering the block (before ``norm1``). In the try-on UNet,
each block's self-attention runs over ``norm1(cat([h, g]))`` along the token axis, the
residual is added and the first half of the tokens is kept. ``norm1`` is a per-token
LayerNorm and attention is row-wise in its queries, so for the kept tokens that is exactly
attention with queries from ``norm1(h)`` and keys/values from ``cat([norm1(h), norm1(g)])``:
an attention processor on ``attn1`` that reads the matching garment block's states by name.

CatVTON: every cross-attention (``attn2``) returns its input unchanged, so diffusers'
block computes ``h = h + norm2(h)`` there (not an identity, as in the original), and the
self-attention weights come from a separate attention-only checkpoint whose keys index a
``ModuleList`` of every module named ``*attn1*`` (see :func:`catvton_attention_keys`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vtryon.errors import CheckpointMismatch


def transformer_blocks(unet: Any) -> list[tuple[str, Any]]:
    """(qualified name, block) of every ``BasicTransformerBlock`` in module order."""
    from diffusers.models.attention import BasicTransformerBlock

    return [(name, m) for name, m in unet.named_modules() if isinstance(m, BasicTransformerBlock)]


class GarmentFeatures:
    """Records, during one garment-UNet forward, the hidden states entering each block."""

    def __init__(self, unet: Any) -> None:
        self.states: dict[str, Any] = {}
        self._handles = []
        for name, block in transformer_blocks(unet):
            self._handles.append(block.register_forward_pre_hook(self._recorder(name), with_kwargs=True))

    def _recorder(self, name: str) -> Any:
        def record(module: Any, args: tuple, kwargs: dict) -> None:
            self.states[name] = args[0] if args else kwargs["hidden_states"]

        return record

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


class OutfittingFusion:
    """``attn1`` processor of one try-on UNet block: self-attention whose keys and values also
    cover the garment block's tokens (normalised by this block's ``norm1``)."""

    def __init__(self, name: str, norm1: Any, features: dict[str, Any]) -> None:
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.name = name
        self.norm1 = norm1
        self.features = features  # shared dict, refilled per generation
        self.attend = AttnProcessor2_0()

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None, attention_mask: Any = None, temb: Any = None, **kwargs: Any) -> Any:
        import torch

        garment = self.features.get(self.name)
        if garment is None:
            raise RuntimeError(f"no garment features recorded for block {self.name}; run the garment UNet first")
        if garment.shape[0] != hidden_states.shape[0] or garment.shape[-1] != hidden_states.shape[-1]:
            raise RuntimeError(f"garment features of block {self.name} have shape {tuple(garment.shape)}, try-on states {tuple(hidden_states.shape)}")
        context = torch.cat([hidden_states, self.norm1(garment.to(hidden_states.dtype))], dim=1)
        return self.attend(attn, hidden_states, encoder_hidden_states=context, attention_mask=attention_mask, temb=temb)


def install_outfitting_fusion(vton_unet: Any, garment_unet: Any) -> dict[str, Any]:
    """Give every try-on block an :class:`OutfittingFusion` processor; returns the shared dict
    that a :class:`GarmentFeatures` recording must fill before each generation."""
    garment_names = [name for name, _ in transformer_blocks(garment_unet)]
    blocks = transformer_blocks(vton_unet)
    if [name for name, _ in blocks] != garment_names:
        raise CheckpointMismatch("the garment UNet and the try-on UNet have different transformer blocks; they must come from the same checkpoint")
    features: dict[str, Any] = {}
    for name, block in blocks:
        block.attn1.set_processor(OutfittingFusion(name, block.norm1, features))
    return features


class SkipCrossAttention:
    """CatVTON's cross-attention: returns its (normalised) input, so the block adds
    ``norm2(h)`` to ``h``."""

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None, attention_mask: Any = None, temb: Any = None, **kwargs: Any) -> Any:
        return hidden_states


def install_skip_cross_attention(unet: Any) -> int:
    from diffusers.models.attention_processor import AttnProcessor2_0

    count = 0
    for _, block in transformer_blocks(unet):
        block.attn1.set_processor(AttnProcessor2_0())
        if block.attn2 is not None:
            block.attn2.set_processor(SkipCrossAttention())
            count += 1
    return count


# CatVTON saved ``ModuleList([m for name, m in unet.named_modules() if "attn1" in name])``
# (diffusers 0.29.2, its attn1 processor being an nn.Module). Each attn1 therefore takes 8
# consecutive indices: the Attention itself, to_q, to_k, to_v, to_out, to_out.0, to_out.1 and
# the processor. The released file holds the first name of each shared tensor
# ("<8k>.to_q.weight", ...); the other aliases ("<8k+1>.weight", ...) are accepted too.
_ATTN1_GROUP = ("", "to_q.", "to_k.", "to_v.", "to_out.", "to_out.0.")
_GROUP_STRIDE = 8


def attn1_modules(unet: Any) -> list[tuple[str, Any]]:
    """The ``attn1`` modules in the order CatVTON's list holds them (diffusers registers the
    UNet's down blocks, then up blocks, then the mid block)."""
    return [(name, m) for name, m in unet.named_modules() if name.endswith(".attn1")]


def catvton_attention_keys(unet: Any) -> dict[str, str]:
    """file key -> UNet parameter name, for every alias CatVTON's ModuleList gives a tensor."""
    mapping: dict[str, str] = {}
    for k, (name, attn) in enumerate(attn1_modules(unet)):
        params = [p for p, _ in attn.named_parameters()]
        for offset, prefix in enumerate(_ATTN1_GROUP):
            for p in params:
                if p.startswith(prefix):
                    mapping[f"{k * _GROUP_STRIDE + offset}.{p[len(prefix):]}"] = f"{name}.{p}"
    return mapping


def catvton_attention_state(unet: Any, file_state: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The UNet's self-attention tensors from CatVTON's attention file, checked strictly:
    every key known, every attn1 tensor given, shapes equal, aliases agreeing."""
    import torch

    mapping = catvton_attention_keys(unet)
    params = dict(unet.named_parameters())
    unexpected = [k for k in file_state if k not in mapping]
    out: dict[str, Any] = {}
    misshaped, disagree = [], []
    for key, tensor in file_state.items():
        if key not in mapping:
            continue
        target = mapping[key]
        if tuple(tensor.shape) != tuple(params[target].shape):
            misshaped.append(f"{key}: file {list(tensor.shape)} vs UNet {list(params[target].shape)}")
        elif target in out and not torch.equal(out[target], tensor):
            disagree.append(key)
        else:
            out[target] = tensor
    wanted = sorted(set(mapping.values()))
    missing = [t for t in wanted if t not in out]
    problems = []
    for label, keys in (("unexpected", unexpected), ("mis-shaped", misshaped), ("conflicting", disagree), ("missing", missing)):
        if keys:
            problems.append(f"{len(keys)} {label} ({'; '.join(keys[:5])}{' ...' if len(keys) > 5 else ''})")
    if problems:
        raise CheckpointMismatch(
            f"{source} does not fit the UNet's self-attention layers: {', '.join(problems)}",
            hint="is it CatVTON's <version>/attention/model.safetensors for this base UNet?",
        )
    return out


def load_catvton_attention(unet: Any, file_state: Mapping[str, Any], source: str) -> None:
    """Replace the UNet's self-attention weights with CatVTON's (in the UNet's dtype)."""
    import torch

    state = catvton_attention_state(unet, file_state, source)
    params = dict(unet.named_parameters())
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor.to(dtype=params[name].dtype))
