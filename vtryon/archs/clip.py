"""OpenAI CLIP, vision-transformer variants (ViT-B/32, ViT-B/16, ViT-L/14, ...).

One definition for every ViT config, with the tensor names of OpenAI's state dict
(openai/CLIP, clip/model.py), so the released files load strictly. The config is read from
the shapes by the rules of OpenAI's ``build_model``. The released ``.pt`` files are
TorchScript archives: vtryon reads their tensors as data (``vtryon.archs.torchscript_data``)
and never runs their code; the three scalar entries ``input_resolution``, ``context_length``
and ``vocab_size`` are dropped by the manifest's wrapper.

Order of operations as the original: pre-norm residual blocks with QuickGELU, sequence-first
``nn.MultiheadAttention``, LayerNorm computed in float32, the class token for the image
feature, the EOT position (highest token id) for the text feature, and a causal text mask.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from vtryon.errors import CheckpointMismatch

IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
HEAD_WIDTH = 64  # both towers use width // 64 heads


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back to the input dtype, as the original (which
    keeps its LayerNorms in fp32 next to fp16 weights); here any weight dtype is accepted."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return nn.functional.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width))])
        )
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x


class VisionTransformer(nn.Module):
    def __init__(self, resolution: int, patch: int, width: int, layers: int, heads: int, output_dim: int) -> None:
        super().__init__()
        grid = resolution // patch
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(torch.empty(grid * grid + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(torch.empty(width, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = x.flatten(2).permute(0, 2, 1)  # (N, grid*grid, width)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x).permute(1, 0, 2)  # sequence first
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        c = dict(config)
        self.config = c
        self.visual = VisionTransformer(
            c["image_resolution"], c["vision_patch_size"], c["vision_width"], c["vision_layers"],
            c["vision_width"] // HEAD_WIDTH, c["embed_dim"],
        )
        width = int(c["transformer_width"])
        self.transformer = Transformer(width, c["transformer_layers"], c["transformer_heads"])
        self.token_embedding = nn.Embedding(c["vocab_size"], width)
        self.positional_embedding = nn.Parameter(torch.empty(int(c["context_length"]), width))
        self.ln_final = LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, c["embed_dim"]))
        self.logit_scale = nn.Parameter(torch.empty(()))

    @property
    def image_resolution(self) -> int:
        return int(self.config["image_resolution"])

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Features of CLIP-normalised images (N, 3, R, R)."""
        return self.visual(image.to(self.visual.conv1.weight.dtype))

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        """Features of token ids (N, context_length); the EOT token has the highest id."""
        x = self.token_embedding(text) + self.positional_embedding.to(self.token_embedding.weight.dtype)
        n = x.shape[1]
        causal = torch.full((n, n), float("-inf"), device=x.device, dtype=x.dtype).triu_(1)
        x = self.transformer(x.permute(1, 0, 2), causal).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0], device=x.device), text.argmax(dim=-1)] @ self.text_projection

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.encode_image(image)
        txt = self.encode_text(text)
        img = img / img.norm(dim=1, keepdim=True)
        txt = txt / txt.norm(dim=1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * img @ txt.t()
        return logits_per_image, logits_per_image.t()


def config_from_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Every hyperparameter from the tensor shapes, by the rules of OpenAI's ``build_model``."""
    if "visual.proj" not in state_dict:
        raise CheckpointMismatch(
            "this CLIP checkpoint is not a vision-transformer model (no visual.proj); vtryon supports the ViT CLIP models"
        )
    sd = state_dict
    vision_layers = len([k for k in sd if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")])
    patch = int(sd["visual.conv1.weight"].shape[-1])
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    width = int(sd["ln_final.weight"].shape[0])
    return {
        "embed_dim": int(sd["text_projection"].shape[1]),
        "image_resolution": patch * grid,
        "vision_layers": vision_layers,
        "vision_width": int(sd["visual.conv1.weight"].shape[0]),
        "vision_patch_size": patch,
        "context_length": int(sd["positional_embedding"].shape[0]),
        "vocab_size": int(sd["token_embedding.weight"].shape[0]),
        "transformer_width": width,
        "transformer_heads": width // HEAD_WIDTH,
        "transformer_layers": len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")}),
    }


def build(config: Mapping[str, Any]) -> CLIP:
    return CLIP(config)


def preprocess(image: Any, resolution: int) -> torch.Tensor:
    """An RGB uint8 image (H, W, 3) -> a normalised (1, 3, R, R) tensor.

    As CLIP's transform (bicubic resize of the shorter side, centre crop) except that the
    image is first padded to a square with white, so a tall garment region is seen whole
    instead of losing its top and bottom to the crop.
    """
    import numpy as np
    from PIL import Image

    arr = np.asarray(image)
    h, w = arr.shape[:2]
    side = max(h, w)
    square = np.full((side, side, 3), 255, np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    square[y0 : y0 + h, x0 : x0 + w] = arr
    pil = Image.fromarray(square).resize((resolution, resolution), Image.BICUBIC)
    t = torch.from_numpy(np.asarray(pil, np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(3, 1, 1)
    return ((t - mean) / std)[None]
