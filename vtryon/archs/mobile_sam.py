"""MobileSAM (ChaoningZhang/MobileSAM ``build_sam_vit_t``): a TinyViT image encoder in front
of Segment Anything's prompt encoder and mask decoder.

The prompt encoder, mask decoder and ``Sam`` wrapper come from the ``segment-anything``
package (MobileSAM ships identical copies). TinyViT is written here because no maintained
package builds it from a checkpoint: the PyPI packages that ship MobileSAM's code
(mobilesam-mirror 1.0.0, mobilesam-lite 0.1.2, unofficial one-person copies) hard-code the
1024-pixel token grid and the last-stage width (320), import timm without declaring it, and
the latter vendors AGPL ultralytics. Tensor names are the released ones
(``image_encoder.layers.2.blocks.0.attn.attention_biases`` ...); widths, heads, windows and
block counts are read from shapes.

Differences from the original that do not change results:
- token grids are taken from the input instead of fixed at construction (the original's
  ``x.view(B, 64, 64, C)`` only fits 1024-pixel inputs);
- the merge into the last stage keeps stride 1 by position (the original tests
  ``out_dim in (320, 448, 576)``, which is the last stage of every released TinyViT-SAM);
- attention biases are gathered on every call instead of cached by ``eval()``, so no stale
  cache can survive loading.

The input size (1024) is not visible in any tensor shape; it is the config's ``img_size``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtryon.archs.sam import assemble, count_children, prompt_and_decoder_config

OPTIONAL_KEYS = ("num_batches_tracked",)
RELEASED_IMG_SIZE = 1024


class Conv2d_BN(nn.Sequential):
    """Conv2d without bias followed by BatchNorm (TinyViT's ``Conv2d_BN``: children c, bn)."""

    def __init__(self, cin: int, cout: int, ks: int = 1, stride: int = 1, pad: int = 0, groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(cin, cout, ks, stride, pad, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout))


class PatchEmbed(nn.Module):
    """Two stride-2 3x3 convs (C/2 then C) with GELU between: 1/4 resolution."""

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(Conv2d_BN(in_chans, dim // 2, 3, 2, 1), nn.GELU(), Conv2d_BN(dim // 2, dim, 3, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> GELU -> depthwise 3x3 -> GELU -> 1x1 -> + input -> GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = Conv2d_BN(dim, hidden)
        self.conv2 = Conv2d_BN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.conv3 = Conv2d_BN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return F.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """1x1 -> GELU -> depthwise 3x3 (stride 2, or 1 into the last stage) -> GELU -> 1x1."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = Conv2d_BN(dim, out_dim)
        self.conv2 = Conv2d_BN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2d_BN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C', H', W')
        return self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x)))))


@lru_cache(maxsize=None)
def _window_offsets(window: int) -> tuple[int, tuple[int, ...]]:
    """(number of distinct |dy|,|dx| offsets, index of each token pair's offset) in a window,
    in the original's first-seen order."""
    points = list(itertools.product(range(window), range(window)))
    seen: dict[tuple[int, int], int] = {}
    idxs = []
    for p1 in points:
        for p2 in points:
            off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            idxs.append(seen.setdefault(off, len(seen)))
    return len(seen), tuple(idxs)


class Attention(nn.Module):
    """Window attention with a learned bias per head and per relative offset."""

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = dim // num_heads
        self.scale = self.key_dim ** -0.5
        self.window = window
        n_offsets = window * window  # distinct (|dy|, |dx|) pairs in a window
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, n_offsets))
        self.register_buffer("attention_bias_idxs", torch.zeros(window * window, window * window, dtype=torch.long), persistent=False)

    def set_bias_index(self) -> None:
        _, idxs = _window_offsets(self.window)
        n = self.window * self.window
        device = self.attention_biases.device
        self.attention_bias_idxs = torch.tensor(idxs, dtype=torch.long, device=device).view(n, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(B, N, self.num_heads, 3 * self.key_dim)
        q, k, v = (t.permute(0, 2, 1, 3) for t in qkv.split(self.key_dim, dim=3))  # per head: q, k, v
        bias = self.attention_biases[:, self.attention_bias_idxs]
        attn = ((q @ k.transpose(-2, -1)) * self.scale + bias).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, -1))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Window attention (zero-padded to whole windows) + residual, depthwise local conv,
    MLP + residual. Works on tokens (B, H*W, C)."""

    def __init__(self, dim: int, num_heads: int, window: int, mlp_hidden: int, local_conv_size: int) -> None:
        super().__init__()
        self.window = window
        self.attn = Attention(dim, num_heads, window)
        self.mlp = Mlp(dim, mlp_hidden)
        self.local_conv = Conv2d_BN(dim, dim, local_conv_size, 1, local_conv_size // 2, groups=dim)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        H, W = hw
        B, L, C = x.shape
        ws = self.window
        if H == ws and W == ws:
            y = self.attn(x)
        else:
            y = x.view(B, H, W, C)
            pad_b, pad_r = (ws - H % ws) % ws, (ws - W % ws) % ws
            if pad_b or pad_r:
                y = F.pad(y, (0, 0, 0, pad_r, 0, pad_b))
            pH, pW = H + pad_b, W + pad_r
            nH, nW = pH // ws, pW // ws
            y = y.view(B, nH, ws, nW, ws, C).transpose(2, 3).reshape(B * nH * nW, ws * ws, C)
            y = self.attn(y)
            y = y.view(B, nH, nW, ws, ws, C).transpose(2, 3).reshape(B, pH, pW, C)
            y = y[:, :H, :W].reshape(B, L, C)
        x = x + y
        x = self.local_conv(x.transpose(1, 2).reshape(B, C, H, W)).view(B, C, L).transpose(1, 2)
        return x + self.mlp(x)


class ConvStage(nn.Module):
    """Stage 0: MBConv blocks on feature maps, then a patch merge."""

    def __init__(self, dim: int, depth: int, hidden: int, downsample: PatchMerging | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, hidden) for _ in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class AttentionStage(nn.Module):
    """Stages 1-3: TinyViT blocks on tokens, then (except the last) a patch merge."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, mlp_hidden: int,
                 local_conv_size: int, downsample: PatchMerging | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, num_heads, window, mlp_hidden, local_conv_size) for _ in range(depth)
        )
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) in and out
        B, C, H, W = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        for blk in self.blocks:
            tokens = blk(tokens, (H, W))
        x = tokens.transpose(1, 2).reshape(B, C, H, W)
        return self.downsample(x) if self.downsample is not None else x


class LayerNorm2d(nn.Module):
    """LayerNorm over channels of an NCHW map (eps 1e-6), as in SAM's neck."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class TinyViT(nn.Module):
    """TinyViT-5M as MobileSAM uses it: 1/16-resolution image embedding through SAM's neck.

    ``norm_head``/``head`` (the ImageNet classifier) are in the released file and kept so it
    loads strictly; ``forward`` does not use them, as in the original.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.img_size = int(config["img_size"])
        dims = [int(d) for d in config["embed_dims"]]
        depths = [int(d) for d in config["depths"]]
        n = len(dims)
        self.patch_embed = PatchEmbed(3, dims[0])
        self.layers = nn.ModuleList()
        for i in range(n):
            down = None
            if i < n - 1:  # the merge into the last stage keeps the resolution (stride 1)
                down = PatchMerging(dims[i], dims[i + 1], stride=1 if i == n - 2 else 2)
            if i == 0:
                self.layers.append(ConvStage(dims[0], depths[0], int(config["mbconv_hidden"]), down))
            else:
                self.layers.append(AttentionStage(
                    dims[i], depths[i], int(config["num_heads"][i]), int(config["window_sizes"][i]),
                    int(config["mlp_hidden"][i]), int(config["local_conv_size"]), down,
                ))
        self.norm_head = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], int(config["num_classes"]))
        out = int(config["out_chans"])
        self.neck = nn.Sequential(
            nn.Conv2d(dims[-1], out, 1, bias=False),
            LayerNorm2d(out),
            nn.Conv2d(out, out, 3, padding=1, bias=False),
            LayerNorm2d(out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.neck(x)


def config_from_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """TinyViT widths, depths, heads and windows from tensor shapes; ``img_size`` is the
    released 1024 (no tensor shows it)."""
    e = "image_encoder."
    try:
        n = count_children(state_dict, e + "layers")
        dims, depths, heads, windows, mlp_hidden = [], [], [], [], []
        for i in range(n):
            p = f"{e}layers.{i}."
            depths.append(count_children(state_dict, p + "blocks"))
            if i == 0:
                dims.append(int(state_dict[p + "blocks.0.conv1.c.weight"].shape[1]))
                heads.append(0), windows.append(0), mlp_hidden.append(0)
                continue
            biases = state_dict[p + "blocks.0.attn.attention_biases"].shape  # (heads, window^2)
            dims.append(int(state_dict[p + "blocks.0.attn.qkv.weight"].shape[1]))
            heads.append(int(biases[0]))
            windows.append(math.isqrt(int(biases[1])))
            mlp_hidden.append(int(state_dict[p + "blocks.0.mlp.fc1.weight"].shape[0]))
        config = {
            "img_size": RELEASED_IMG_SIZE,
            "embed_dims": dims,
            "depths": depths,
            "num_heads": heads,
            "window_sizes": windows,
            "mlp_hidden": mlp_hidden,
            "mbconv_hidden": int(state_dict[e + "layers.0.blocks.0.conv1.c.weight"].shape[0]),
            "local_conv_size": int(state_dict[e + "layers.1.blocks.0.local_conv.c.weight"].shape[2]),
            "num_classes": int(state_dict[e + "head.weight"].shape[0]),
            "out_chans": int(state_dict[e + "neck.0.weight"].shape[0]),
        }
    except KeyError as exc:
        raise KeyError(f"not a MobileSAM state dict: no tensor {exc.args[0]!r}") from None
    config.update(prompt_and_decoder_config(state_dict))
    return config


def build(config: Mapping[str, Any]) -> Any:
    return assemble(TinyViT(config), config)


def materialize(model: Any) -> None:
    """Non-persistent buffers: SAM's pixel normalisation and each window's offset index."""
    from vtryon.archs import sam

    sam.materialize(model)
    for module in model.modules():
        if isinstance(module, Attention):
            module.set_bias_index()
