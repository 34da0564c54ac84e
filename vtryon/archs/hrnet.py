"""HRNet pose network (leoxiaobin/deep-high-resolution-net.pytorch ``PoseHighResolutionNet``).

Released COCO files: ``pose_hrnet_w32_256x192.pth`` and ``pose_hrnet_w48_384x288.pth``, bare
state dicts whose names are the module's. The stem (two stride-2 3x3 convs, 64 channels) and
``layer1`` (4 Bottlenecks, 64 -> 256) are fixed by the original code; stages 2-4 of BasicBlock
branches take their widths from the checkpoint (``stage4.0.branches.<i>``). Output: one heatmap
per joint (COCO-17) at 1/4 of the input; H and W must be multiples of 32.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FULL_CONFIG: dict[str, Any] = {
    "widths": [32, 64, 128, 256],  # branch widths of stage 4 (stage n uses the first n)
    "modules": [1, 4, 3],  # HighResolutionModules in stages 2, 3, 4
    "blocks": 4,  # BasicBlocks per branch
    "stem": 64,
    "layer1_blocks": 4,
    "joints": 17,
    "final_kernel": 1,
}


def _count(state: Mapping[str, Any], prefix: str) -> int:
    """How many consecutive indices ``prefix<i>.`` occur in the keys."""
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in state):
        n += 1
    return n


def config_from_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    n_branches = _count(state, "stage4.0.branches.")
    final = state["final_layer.weight"].shape
    return {
        "widths": [int(state[f"stage4.0.branches.{i}.0.conv1.weight"].shape[0]) for i in range(n_branches)],
        "modules": [_count(state, f"stage{s}.") for s in (2, 3, 4)],
        "blocks": _count(state, "stage2.0.branches.0."),
        "stem": int(state["conv1.weight"].shape[0]),
        "layer1_blocks": _count(state, "layer1."),
        "joints": int(final[0]),
        "final_kernel": int(final[-1]),
    }


def build(config: Mapping[str, Any] | None = None) -> Any:
    import torch
    from torch import nn

    cfg = {**FULL_CONFIG, **(config or {})}
    stem = int(cfg["stem"])

    def conv_bn(cin: int, cout: int, k: int, stride: int, relu: bool) -> nn.Sequential:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        return nn.Sequential(*layers)

    class BasicBlock(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + x)

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, planes: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = conv_bn(cin, planes * 4, 1, 1, relu=False) if cin != planes * 4 else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            skip = x if self.downsample is None else self.downsample(x)
            return self.relu(out + skip)

    class HighResolutionModule(nn.Module):
        """Parallel branches, then every output branch sums all inputs brought to its
        resolution (nearest upsampling from lower ones, stride-2 convs from higher ones)."""

        def __init__(self, widths: list[int], outputs: int) -> None:
            super().__init__()
            self.branches = nn.ModuleList(nn.Sequential(*[BasicBlock(w) for _ in range(cfg["blocks"])]) for w in widths)
            fuse = nn.ModuleList()
            for i in range(outputs):
                row = nn.ModuleList()
                for j, wj in enumerate(widths):
                    if j > i:
                        row.append(nn.Sequential(
                            nn.Conv2d(wj, widths[i], 1, 1, 0, bias=False), nn.BatchNorm2d(widths[i]),
                            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                        ))
                    elif j == i:
                        row.append(None)
                    else:  # i - j stride-2 convs; only the last one changes the width and has no ReLU
                        steps = [conv_bn(wj, wj, 3, 2, relu=True) for _ in range(i - j - 1)]
                        steps.append(conv_bn(wj, widths[i], 3, 2, relu=False))
                        row.append(nn.Sequential(*steps))
                fuse.append(row)
            self.fuse_layers = fuse
            self.relu = nn.ReLU(inplace=True)

        def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
            xs = [branch(x) for branch, x in zip(self.branches, xs)]
            out = []
            for i, row in enumerate(self.fuse_layers):
                y = xs[0] if i == 0 else row[0](xs[0])
                for j in range(1, len(xs)):
                    y = y + (xs[j] if i == j else row[j](xs[j]))
                out.append(self.relu(y))
            return out

    def transition(pre: list[int], cur: list[int]) -> nn.ModuleList:
        layers = nn.ModuleList()
        for i, width in enumerate(cur):
            if i < len(pre):
                # the COCO configs never change an existing branch's width
                layers.append(conv_bn(pre[i], width, 3, 1, relu=True) if pre[i] != width else None)
            else:  # a new, lower-resolution branch made from the last one
                steps = [conv_bn(pre[-1], pre[-1], 3, 2, relu=True) for _ in range(i - len(pre))]
                steps.append(conv_bn(pre[-1], width, 3, 2, relu=True))
                layers.append(nn.Sequential(*steps))
        return layers

    class PoseHighResolutionNet(nn.Module):
        """forward(x: ImageNet-normalised RGB, N x 3 x H x W) -> N x joints x H/4 x W/4 heatmaps."""

        def __init__(self) -> None:
            super().__init__()
            widths = [int(w) for w in cfg["widths"]]
            self.conv1 = nn.Conv2d(3, stem, 3, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(stem)
            self.conv2 = nn.Conv2d(stem, stem, 3, 2, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(stem)
            self.relu = nn.ReLU(inplace=True)
            blocks = [Bottleneck(stem, stem)] + [Bottleneck(stem * 4, stem) for _ in range(cfg["layer1_blocks"] - 1)]
            self.layer1 = nn.Sequential(*blocks)
            pre = [stem * 4]
            for s, n_modules in zip((2, 3, 4), cfg["modules"]):
                cur = widths[: s]
                setattr(self, f"transition{s - 1}", transition(pre, cur))
                last_outputs = 1 if s == 4 else len(cur)  # stage 4 ends with the high-resolution branch only
                setattr(self, f"stage{s}", nn.Sequential(*[
                    HighResolutionModule(cur, len(cur) if m < n_modules - 1 else last_outputs) for m in range(n_modules)
                ]))
                pre = cur
            k = int(cfg["final_kernel"])
            self.final_layer = nn.Conv2d(widths[0], int(cfg["joints"]), k, 1, 1 if k == 3 else 0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.relu(self.bn2(self.conv2(x)))
            ys = [self.layer1(x)]
            for s in (2, 3, 4):
                trans = getattr(self, f"transition{s - 1}")
                xs = [ys[i] if t is None else t(ys[min(i, len(ys) - 1)]) for i, t in enumerate(trans)]
                ys = getattr(self, f"stage{s}")(xs)
            return self.final_layer(ys[0])

    return PoseHighResolutionNet()
