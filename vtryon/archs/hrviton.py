"""HR-VITON (sangyun884/HR-VITON): the try-on condition generator (tocg) and the SPADE image generator.

- tocg (``mtviton.pth``): two 5-level ResBlock encoders (cloth+mask, parse-agnostic+DensePose),
  a feature-pyramid flow estimator (flows in pixel units, normalised per level by
  ``(size/2 - 1)/2``, added to a ``linspace(-1, 1)`` grid and sampled with
  ``align_corners=False`` as the original did on PyTorch 1.8) and a segmentation decoder;
  ``out_layer`` is a ResBlock ending in ReLU. The original loads it with ``strict=False``;
  here it loads strictly with the layout's names (the released file's names are unproven:
  see the manifest).
- gen (``gen.pth``): VITON-HD's ALIAS generator with instance norm in every block and 7 labels,
  ``forward(x, seg)``. The original loader renames keys (``ace`` -> ``alias``, drops
  ``.Spade``); the manifest's wrapper applies the same replaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from vtryon.archs.vitonhd import ALIASGenerator, alias_config_from_state_dict

OPTIONAL_KEYS = ("num_batches_tracked",)


class ResBlock(nn.Module):
    """scale (3x3 s2 conv / bilinear x2 + 1x1 conv / 1x1 conv), then relu(res + [conv-BN-ReLU-conv-BN](res))."""

    def __init__(self, in_nc: int, out_nc: int, scale: str) -> None:
        super().__init__()
        if scale == "same":
            self.scale: nn.Module = nn.Conv2d(in_nc, out_nc, 1, bias=True)
        elif scale == "up":
            self.scale = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                       nn.Conv2d(in_nc, out_nc, 1, bias=True))
        else:
            self.scale = nn.Conv2d(in_nc, out_nc, 3, stride=2, padding=1, bias=False)
        self.block = nn.Sequential(
            nn.Conv2d(out_nc, out_nc, 3, padding=1, bias=False), nn.BatchNorm2d(out_nc), nn.ReLU(),
            nn.Conv2d(out_nc, out_nc, 3, padding=1, bias=False), nn.BatchNorm2d(out_nc),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.scale(x)
        return F.relu(res + self.block(res))


def make_grid(n: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    """(n, h, w, 2) identity grid on linspace(-1, 1), as HR-VITON's ``make_grid``."""
    gx = torch.linspace(-1.0, 1.0, w, device=device).view(1, 1, w, 1).expand(n, h, -1, -1)
    gy = torch.linspace(-1.0, 1.0, h, device=device).view(1, h, 1, 1).expand(n, -1, w, -1)
    return torch.cat([gx, gy], 3)


def normalize_flow(flow: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel flow (n, h, w, 2) -> grid offsets, with the original's ``(size/2 - 1)/2`` divisors."""
    return torch.cat([flow[..., 0:1] / ((w / 2 - 1.0) / 2.0), flow[..., 1:2] / ((h / 2 - 1.0) / 2.0)], 3)


class ConditionGenerator(nn.Module):
    def __init__(self, input1_nc: int, input2_nc: int, output_nc: int, ngf: int) -> None:
        super().__init__()
        enc = [(ngf, "down"), (ngf * 2, "down"), (ngf * 4, "down"), (ngf * 4, "down"), (ngf * 4, "down")]

        def encoder(cin: int) -> nn.Sequential:
            blocks = []
            for cout, scale in enc:
                blocks.append(ResBlock(cin, cout, scale))
                cin = cout
            return nn.Sequential(*blocks)

        self.ClothEncoder = encoder(input1_nc)
        self.PoseEncoder = encoder(input2_nc)
        self.conv = ResBlock(ngf * 4, ngf * 8, "same")
        # warp_feature "T1": each decoder level reads cat(x, E2 skip, warped T1 (ngf*4))
        self.SegDecoder = nn.Sequential(
            ResBlock(ngf * 8, ngf * 4, "up"),
            ResBlock(ngf * 4 * 2 + ngf * 4, ngf * 4, "up"),
            ResBlock(ngf * 4 * 2 + ngf * 4, ngf * 2, "up"),
            ResBlock(ngf * 2 * 2 + ngf * 4, ngf, "up"),
            ResBlock(ngf * 1 * 2 + ngf * 4, ngf, "up"),
        )
        self.out_layer = ResBlock(ngf + input1_nc + input2_nc, output_nc, "same")  # out_layer "relu"
        skip_in = (ngf, ngf * 2, ngf * 4, ngf * 4)
        self.conv1 = nn.Sequential(*[nn.Conv2d(c, ngf * 4, 1, bias=True) for c in skip_in])
        self.conv2 = nn.Sequential(*[nn.Conv2d(c, ngf * 4, 1, bias=True) for c in skip_in])
        self.flow_conv = nn.ModuleList([nn.Conv2d(ngf * 8, 2, 3, padding=1, bias=True) for _ in range(5)])
        self.bottleneck = nn.Sequential(*[
            nn.Sequential(nn.Conv2d(c, ngf * 4, 3, padding=1, bias=True), nn.ReLU())
            for c in (ngf * 4, ngf * 4, ngf * 2, ngf)
        ])

    def forward(self, input1: torch.Tensor, input2: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """(flow_list, fake_segmap logits, warped cloth, warped cloth mask), as the original returns."""
        e1, e2 = [], []
        a, b = input1, input2
        for i in range(5):
            a, b = self.ClothEncoder[i](a), self.PoseEncoder[i](b)
            e1.append(a)
            e2.append(b)

        def up2(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

        flows: list[torch.Tensor] = []
        for i in range(5):
            n, _, h, w = e1[4 - i].shape
            grid = make_grid(n, h, w, input1.device).to(input1.dtype)
            if i == 0:
                t1, t2 = e1[4], e2[4]
                flows.append(self.flow_conv[0](torch.cat([t1, t2], 1)).permute(0, 2, 3, 1))
                x = self.SegDecoder[0](self.conv(t2))
                continue
            t1 = up2(t1) + self.conv1[4 - i](e1[4 - i])
            t2 = up2(t2) + self.conv2[4 - i](e2[4 - i])
            flow = up2(flows[i - 1].permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            warped_t1 = F.grid_sample(t1, normalize_flow(flow, h, w) + grid, padding_mode="border", align_corners=False)
            flow = flow + self.flow_conv[i](torch.cat([warped_t1, self.bottleneck[i - 1](x)], 1)).permute(0, 2, 3, 1)
            flows.append(flow)
            x = self.SegDecoder[i](torch.cat([x, e2[4 - i], warped_t1], 1))

        n, _, h, w = input1.shape
        grid = make_grid(n, h, w, input1.device).to(input1.dtype)
        flow = up2(flows[-1].permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        warped = F.grid_sample(input1, normalize_flow(flow, h, w) + grid, padding_mode="border", align_corners=False)
        x = self.out_layer(torch.cat([x, input2, warped], 1))
        return flows, x, warped[:, :-1], warped[:, -1:]


def _tocg_config(state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "input1_nc": state["ClothEncoder.0.scale.weight"].shape[1],
        "input2_nc": state["PoseEncoder.0.scale.weight"].shape[1],
        "output_nc": state["out_layer.scale.weight"].shape[0],
        "ngf": state["ClothEncoder.0.scale.weight"].shape[0],
    }


TOCG_ARCH = SimpleNamespace(
    build=lambda c: ConditionGenerator(c["input1_nc"], c["input2_nc"], c["output_nc"], c["ngf"]),
    config_from_state_dict=_tocg_config,
    OPTIONAL_KEYS=OPTIONAL_KEYS,
)

GEN_ARCH = SimpleNamespace(build=ALIASGenerator, config_from_state_dict=alias_config_from_state_dict)
