"""U^2-Net (xuebinqin/U-2-Net ``U2NET``/``U2NETP``) and the cloth-segmentation copy
(levindabhi/cloth-segmentation, 4 classes), under the released tensor names.

No maintained library loads these checkpoints as PyTorch modules, so the network is written
here. Topology is the released one (stage heights, dilations, ceil-mode pooling); every width
is read from the checkpoint, so the full-size files and the reduced-width fixtures build the
same way. Upsampling is ``bilinear`` with ``align_corners=False`` to the skip's exact size
(the original ``_upsample_like``), so any input size works.

Config: ``in_ch``, ``out_ch``, ``widths`` (stage -> [in, mid, out]), ``sides``
(side-output input widths) and ``activation``: ``"sigmoid"`` (U-2-Net returns sigmoid of all
seven maps) or ``"logits"`` (the cloth-segmentation copy returns raw logits).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# stage -> (RSU height, dilated "F" variant without pooling), as in the released networks
STAGES: dict[str, tuple[int, bool]] = {
    "stage1": (7, False), "stage2": (6, False), "stage3": (5, False), "stage4": (4, False),
    "stage5": (4, True), "stage6": (4, True),
    "stage5d": (4, True), "stage4d": (4, False), "stage3d": (5, False), "stage2d": (6, False),
    "stage1d": (7, False),
}
OPTIONAL_KEYS = ("num_batches_tracked",)


def _up_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


def _pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2, stride=2, ceil_mode=True)


class REBNCONV(nn.Module):
    """3x3 conv (dilated) -> BatchNorm -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation)
        self.bn_s1 = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn_s1(self.conv_s1(x)))


class RSU(nn.Module):
    """Residual U-block of height ``height``: encoder rebnconv1..L (pooling between all but
    the last two; rebnconvL dilated 2), decoder rebnconv(L-1)d..1d, plus the input conv."""

    def __init__(self, height: int, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.height = height
        self.rebnconvin = REBNCONV(in_ch, out_ch)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch)
        for i in range(2, height):
            setattr(self, f"rebnconv{i}", REBNCONV(mid_ch, mid_ch))
        setattr(self, f"rebnconv{height}", REBNCONV(mid_ch, mid_ch, dilation=2))
        for i in range(height - 1, 1, -1):
            setattr(self, f"rebnconv{i}d", REBNCONV(mid_ch * 2, mid_ch))
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        L = self.height
        hxin = self.rebnconvin(x)
        enc = [self.rebnconv1(hxin)]
        for i in range(2, L):
            enc.append(getattr(self, f"rebnconv{i}")(_pool(enc[-1])))
        deepest = getattr(self, f"rebnconv{L}")(enc[-1])
        hx = getattr(self, f"rebnconv{L - 1}d")(torch.cat((deepest, enc[L - 2]), 1))
        for i in range(L - 2, 0, -1):
            hx = getattr(self, f"rebnconv{i}d")(torch.cat((_up_to(hx, enc[i - 1]), enc[i - 1]), 1))
        return hx + hxin


class RSU4F(nn.Module):
    """Height-4 residual block with dilations 1, 2, 4, 8 (decoder 4, 2, 1) and no pooling."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, 1)
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, 2)
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, 4)
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, 8)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, 4)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, 2)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(hx1)
        hx3 = self.rebnconv3(hx2)
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat((hx4, hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((hx3d, hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((hx2d, hx1), 1))
        return hx1d + hxin


class U2Net(nn.Module):
    """Six encoder stages, five decoder stages, six side outputs fused by a 1x1 conv.

    ``forward`` returns the seven maps ``(d0, d1, ..., d6)`` at the input size; d0 is the
    fused one used at inference.
    """

    def __init__(self, widths: Mapping[str, list[int]], sides: list[int], out_ch: int, activation: str) -> None:
        super().__init__()
        if activation not in ("sigmoid", "logits"):
            raise ValueError(f"U2Net activation must be 'sigmoid' or 'logits', not {activation!r}")
        self.activation = activation
        for name, (height, dilated) in STAGES.items():
            cin, mid, cout = widths[name]
            setattr(self, name, RSU4F(cin, mid, cout) if dilated else RSU(height, cin, mid, cout))
        for i, ch in enumerate(sides, start=1):
            setattr(self, f"side{i}", nn.Conv2d(ch, out_ch, 3, padding=1))
        self.outconv = nn.Conv2d(6 * out_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hx1 = self.stage1(x)
        hx2 = self.stage2(_pool(hx1))
        hx3 = self.stage3(_pool(hx2))
        hx4 = self.stage4(_pool(hx3))
        hx5 = self.stage5(_pool(hx4))
        hx6 = self.stage6(_pool(hx5))

        hx5d = self.stage5d(torch.cat((_up_to(hx6, hx5), hx5), 1))
        hx4d = self.stage4d(torch.cat((_up_to(hx5d, hx4), hx4), 1))
        hx3d = self.stage3d(torch.cat((_up_to(hx4d, hx3), hx3), 1))
        hx2d = self.stage2d(torch.cat((_up_to(hx3d, hx2), hx2), 1))
        hx1d = self.stage1d(torch.cat((_up_to(hx2d, hx1), hx1), 1))

        d1 = self.side1(hx1d)
        sides = [d1] + [
            _up_to(getattr(self, f"side{i}")(h), d1) for i, h in zip(range(2, 7), (hx2d, hx3d, hx4d, hx5d, hx6))
        ]
        d0 = self.outconv(torch.cat(sides, 1))
        maps = (d0, *sides)
        return tuple(torch.sigmoid(m) for m in maps) if self.activation == "sigmoid" else maps


def config_from_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Widths of every stage and side output, and the class count, from tensor shapes."""
    try:
        widths = {}
        for name in STAGES:
            w_in = state_dict[f"{name}.rebnconvin.conv_s1.weight"].shape
            w_1 = state_dict[f"{name}.rebnconv1.conv_s1.weight"].shape
            widths[name] = [int(w_in[1]), int(w_1[0]), int(w_in[0])]
        sides = [int(state_dict[f"side{i}.weight"].shape[1]) for i in range(1, 7)]
        out_ch = int(state_dict["outconv.weight"].shape[0])
    except KeyError as exc:
        raise KeyError(f"not a U^2-Net state dict: no tensor {exc.args[0]!r}") from None
    return {"in_ch": widths["stage1"][0], "out_ch": out_ch, "widths": widths, "sides": sides, "activation": "sigmoid"}


def build(config: Mapping[str, Any]) -> U2Net:
    return U2Net(config["widths"], list(config["sides"]), int(config["out_ch"]), str(config.get("activation", "sigmoid")))


def released_config(small: bool = False, out_ch: int = 1, activation: str = "sigmoid") -> dict[str, Any]:
    """The released U2NET (``small=False``) or U2NETP widths, for tests and benchmarks."""
    if small:
        widths = {n: [64, 16, 64] for n in STAGES}
        widths["stage1"] = [3, 16, 64]
        for n in ("stage5d", "stage4d", "stage3d", "stage2d", "stage1d"):
            widths[n] = [128, 16, 64]
        sides = [64] * 6
    else:
        widths = {
            "stage1": [3, 32, 64], "stage2": [64, 32, 128], "stage3": [128, 64, 256], "stage4": [256, 128, 512],
            "stage5": [512, 256, 512], "stage6": [512, 256, 512], "stage5d": [1024, 256, 512],
            "stage4d": [1024, 128, 256], "stage3d": [512, 64, 128], "stage2d": [256, 32, 64], "stage1d": [128, 16, 64],
        }
        sides = [64, 64, 128, 256, 512, 512]
    return {"in_ch": 3, "out_ch": out_ch, "widths": widths, "sides": sides, "activation": activation}
