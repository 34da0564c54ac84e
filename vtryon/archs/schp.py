"""SCHP (Self-Correction for Human Parsing): CE2P on a ResNet-101 with a deep stem.

Matches the released ``exp-schp-*-{lip,atr}.pth`` files (GoGoDuck912/Self-Correction-Human-Parsing,
networks/AugmentCE2P.py): same module names, widths read from tensor shapes.

Facts the forward reproduces:

- Every normalisation is mapillary's InPlaceABNSync, whose inference is
  ``(x - mean) * rsqrt(var + eps) * (|weight| + eps) + bias`` (note the absolute value), then
  leaky_relu(0.01). The layers the original builds as ``BatchNorm2d = partial(InPlaceABNSync,
  activation='none')`` have no activation: the stem's bn1..bn3, the Bottleneck's bn1..bn3 and
  the downsample BN (the Bottleneck and stem apply their own ReLU). Every other ABN (PSP, edge,
  decoder, fusion) is leaky.
- ResNet-101 layer4 has stride 1 and dilation 2 (output stride 16); PSP pooling sizes 1, 2, 3, 6;
  all upsampling is bilinear with ``align_corners=True``.
- ``forward`` returns ``(parsing, fusion, edge)`` logits at 1/4 of the input; inference uses
  ``fusion`` (the original's ``output[0][-1]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PSP_SIZES = (1, 2, 3, 6)
# (stride, dilation) of layer1..layer4 in the released ResNet-101
LAYER_GEOMETRY = ((1, 1), (2, 1), (2, 1), (1, 2))
OPTIONAL_KEYS: tuple[str, ...] = ()  # ABN modules have no num_batches_tracked


class InPlaceABN(nn.Module):
    """Inference form of InPlaceABNSync: |weight|+eps scale, then leaky_relu unless ``activation='none'``."""

    def __init__(
        self, num_features: int, activation: str = "leaky_relu", slope: float = 0.01, eps: float = 1e-5
    ) -> None:
        super().__init__()
        if activation not in ("leaky_relu", "none"):
            raise ValueError(f"unsupported ABN activation {activation!r}")
        self.activation = activation
        self.slope = slope
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # batch_norm in eval form is (x - mean) / sqrt(var + eps) * gamma + beta; ABN's gamma is |w| + eps
        gamma = self.weight.abs() + self.eps
        y = F.batch_norm(x, self.running_mean, self.running_var, gamma, self.bias, False, 0.0, self.eps)
        if self.activation == "leaky_relu":
            y = F.leaky_relu(y, self.slope, inplace=True)
        return y

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, activation={self.activation}"


def _plain_bn(num_features: int) -> InPlaceABN:
    """The original's ``BatchNorm2d = partial(InPlaceABNSync, activation='none')``."""
    return InPlaceABN(num_features, activation="none")


def _conv(
    cin: int, cout: int, k: int = 1, stride: int = 1, padding: int = 0, dilation: int = 1, bias: bool = False
) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, bias=bias)


class Bottleneck(nn.Module):
    def __init__(
        self, cin: int, planes: int, cout: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv(cin, planes)
        self.bn1 = _plain_bn(planes)
        self.conv2 = _conv(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation)
        self.bn2 = _plain_bn(planes)
        self.conv3 = _conv(planes, cout)
        self.bn3 = _plain_bn(cout)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


class PSPModule(nn.Module):
    def __init__(self, cin: int, cout: int, sizes: tuple[int, ...] = PSP_SIZES) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d((s, s)), _conv(cin, cout), InPlaceABN(cout)) for s in sizes
        )
        self.bottleneck = nn.Sequential(_conv(cin + len(sizes) * cout, cout, 3, padding=1), InPlaceABN(cout))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        size = feats.shape[2:]
        priors = [F.interpolate(stage(feats), size=size, mode="bilinear", align_corners=True) for stage in self.stages]
        return self.bottleneck(torch.cat(priors + [feats], 1))


class EdgeModule(nn.Module):
    def __init__(self, cins: tuple[int, int, int], mid: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(_conv(cins[0], mid), InPlaceABN(mid))
        self.conv2 = nn.Sequential(_conv(cins[1], mid), InPlaceABN(mid))
        self.conv3 = nn.Sequential(_conv(cins[2], mid), InPlaceABN(mid))
        self.conv4 = _conv(mid, cout, 3, padding=1, bias=True)
        self.conv5 = _conv(cout * 3, cout, bias=True)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = x1.shape[2:]

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, size=size, mode="bilinear", align_corners=True)

        f1, f2, f3 = self.conv1(x1), self.conv2(x2), self.conv3(x3)
        e1, e2, e3 = self.conv4(f1), self.conv4(f2), self.conv4(f3)  # conv4 is shared by the three levels
        edge = self.conv5(torch.cat([e1, up(e2), up(e3)], 1))
        return edge, torch.cat([f1, up(f2), up(f3)], 1)


class DecoderModule(nn.Module):
    def __init__(self, cin: int, low_in: int, mid: int, low: int, cout: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(_conv(cin, mid), InPlaceABN(mid))
        self.conv2 = nn.Sequential(_conv(low_in, low), InPlaceABN(low))
        self.conv3 = nn.Sequential(_conv(mid + low, cout), InPlaceABN(cout), _conv(cout, cout), InPlaceABN(cout))
        self.conv4 = _conv(cout, num_classes, bias=True)

    def forward(self, xt: torch.Tensor, xl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xt = F.interpolate(self.conv1(xt), size=xl.shape[2:], mode="bilinear", align_corners=True)
        x = self.conv3(torch.cat([xt, self.conv2(xl)], 1))
        return self.conv4(x), x


class SCHP(nn.Module):
    """CE2P ResNet-101 as in AugmentCE2P.ResNet; ``forward`` -> (parsing, fusion, edge) logits at 1/4 size."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        stem = list(config["stem"])
        planes, blocks, expansion = list(config["planes"]), list(config["blocks"]), int(config["expansion"])
        ncls = int(config["num_classes"])
        self.conv1 = _conv(3, stem[0], 3, stride=2, padding=1)
        self.bn1 = _plain_bn(stem[0])
        self.conv2 = _conv(stem[0], stem[1], 3, padding=1)
        self.bn2 = _plain_bn(stem[1])
        self.conv3 = _conv(stem[1], stem[2], 3, padding=1)
        self.bn3 = _plain_bn(stem[2])
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        cin = stem[2]
        outs = []
        for i, (p, n, (stride, dilation)) in enumerate(zip(planes, blocks, LAYER_GEOMETRY), start=1):
            cout = p * expansion
            down = None
            if stride != 1 or cin != cout:
                down = nn.Sequential(_conv(cin, cout, stride=stride), _plain_bn(cout))
            layer = [Bottleneck(cin, p, cout, stride, dilation, down)]
            layer += [Bottleneck(cout, p, cout, 1, dilation) for _ in range(1, n)]
            setattr(self, f"layer{i}", nn.Sequential(*layer))
            outs.append(cout)
            cin = cout

        psp = int(config["psp_out"])
        self.context_encoding = PSPModule(outs[3], psp, tuple(config.get("psp_sizes", PSP_SIZES)))
        edge_mid, edge_out = int(config["edge_mid"]), int(config["edge_out"])
        self.edge = EdgeModule((outs[0], outs[1], outs[2]), edge_mid, edge_out)
        dec_out = int(config["decoder_out"])
        mid, low = int(config["decoder_mid"]), int(config["decoder_low"])
        self.decoder = DecoderModule(psp, outs[0], mid, low, dec_out, ncls)
        fusion = int(config["fusion_mid"])
        self.fushion = nn.Sequential(  # sic: the released name
            _conv(dec_out + 3 * edge_mid, fusion), InPlaceABN(fusion), nn.Dropout2d(0.1), _conv(fusion, ncls, bias=True)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = self.maxpool(x)
        x2 = self.layer1(x)
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        x5 = self.layer4(x4)
        parsing, parsing_fea = self.decoder(self.context_encoding(x5), x2)
        edge, edge_fea = self.edge(x2, x3, x4)
        fusion = self.fushion(torch.cat([parsing_fea, edge_fea], 1))
        return parsing, fusion, edge


def build(config: Mapping[str, Any]) -> SCHP:
    return SCHP(config)


def _out(state: Mapping[str, Any], key: str) -> int:
    return int(state[key].shape[0])


def config_from_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """Widths, depth and class count read from the tensor shapes (keys without ``module.``)."""
    blocks = []
    for i in range(1, 5):
        prefix = f"layer{i}."
        blocks.append(len({k.split(".")[1] for k in state if k.startswith(prefix)}))
    planes = [_out(state, f"layer{i}.0.conv1.weight") for i in range(1, 5)]
    n_stages = len({k.split(".")[2] for k in state if k.startswith("context_encoding.stages.")})
    if n_stages != len(PSP_SIZES):
        raise ValueError(f"SCHP checkpoint has {n_stages} PSP stages; the released network has {len(PSP_SIZES)}")
    return {
        "num_classes": _out(state, "fushion.3.weight"),
        "stem": [_out(state, f"conv{i}.weight") for i in (1, 2, 3)],
        "planes": planes,
        "blocks": blocks,
        "expansion": _out(state, "layer1.0.conv3.weight") // planes[0],
        "psp_out": _out(state, "context_encoding.stages.0.1.weight"),
        "psp_sizes": list(PSP_SIZES),
        "edge_mid": _out(state, "edge.conv1.0.weight"),
        "edge_out": _out(state, "edge.conv4.weight"),
        "decoder_mid": _out(state, "decoder.conv1.0.weight"),
        "decoder_low": _out(state, "decoder.conv2.0.weight"),
        "decoder_out": _out(state, "decoder.conv3.0.weight"),
        "fusion_mid": _out(state, "fushion.0.weight"),
    }


RELEASED_CONFIG_LIP: dict[str, Any] = {
    "num_classes": 20, "stem": [64, 64, 128], "planes": [64, 128, 256, 512], "blocks": [3, 4, 23, 3],
    "expansion": 4, "psp_out": 512, "psp_sizes": list(PSP_SIZES), "edge_mid": 256, "edge_out": 2,
    "decoder_mid": 256, "decoder_low": 48, "decoder_out": 256, "fusion_mid": 256,
}
RELEASED_CONFIG_ATR: dict[str, Any] = {**RELEASED_CONFIG_LIP, "num_classes": 18}
