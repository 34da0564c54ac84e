"""CMU OpenPose COCO body network (the converted Caffe model ``body_pose_model.pth``).

Layer names are the Caffe ones, as Hzzone/pytorch-openpose's ``bodypose_model`` keeps them:
the first 10 VGG-19 layers plus two CPM layers (``model0``), then six stages of two branches,
``model<t>_1`` (38 part-affinity-field channels) and ``model<t>_2`` (19 heatmap channels:
18 parts + background). Each stage after the first reads ``cat([pafs, heatmaps, features])``.

The released file holds the bare layer names (``conv1_1.weight``);
:func:`released_to_module_keys` puts each under its Sequential (``model0.conv1_1.weight``).

Quirk kept on purpose: the original's ``no_relu_layers`` lists ``Mconv7_stage6_L1`` twice and
omits ``Mconv7_stage6_L2``, so the final heatmap layer IS followed by a ReLU.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

STAGES = 6
# Layers without a ReLU after them: each branch's last layer, except the final heatmap one.
_NO_RELU = {"conv5_5_CPM_L1", "conv5_5_CPM_L2"} | {f"Mconv7_stage{t}_L1" for t in range(2, STAGES + 1)} | {
    f"Mconv7_stage{t}_L2" for t in range(2, STAGES)
}

FULL_CONFIG: dict[str, Any] = {
    "vgg": [64, 128, 256, 512],  # conv1_x .. conv4_x widths
    "cpm": [256, 128],  # conv4_3_CPM, conv4_4_CPM (the features every stage reads)
    "stage1": [128, 512],  # conv5_1..3 width, conv5_4 width
    "stage": 128,  # Mconv1..6 width of stages 2-6
    "pafs": 38,
    "heatmaps": 19,
}

# (name, kernel) per layer; "pool" marks a 2x2 max pool.
_VGG = (
    ("conv1_1", 0), ("conv1_2", 0), "pool", ("conv2_1", 1), ("conv2_2", 1), "pool",
    ("conv3_1", 2), ("conv3_2", 2), ("conv3_3", 2), ("conv3_4", 2), "pool", ("conv4_1", 3), ("conv4_2", 3),
)


def _layer_specs(config: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Sequential name -> [(layer, in, out, kernel) or "pool", ...] at ``config``."""
    vgg, cpm, (s1, s1_wide), hidden = config["vgg"], config["cpm"], config["stage1"], config["stage"]
    outs = {"L1": config["pafs"], "L2": config["heatmaps"]}
    specs: dict[str, list[Any]] = {}
    layers: list[Any] = []
    cin = 3
    for item in _VGG:
        if item == "pool":
            layers.append("pool")
            continue
        name, width = item
        layers.append((name, cin, vgg[width], 3))
        cin = vgg[width]
    layers += [("conv4_3_CPM", cin, cpm[0], 3), ("conv4_4_CPM", cpm[0], cpm[1], 3)]
    specs["model0"] = layers
    feat = cpm[1]
    for b, branch in ((1, "L1"), (2, "L2")):
        specs[f"model1_{b}"] = [
            (f"conv5_1_CPM_{branch}", feat, s1, 3),
            (f"conv5_2_CPM_{branch}", s1, s1, 3),
            (f"conv5_3_CPM_{branch}", s1, s1, 3),
            (f"conv5_4_CPM_{branch}", s1, s1_wide, 1),
            (f"conv5_5_CPM_{branch}", s1_wide, outs[branch], 1),
        ]
    stage_in = outs["L1"] + outs["L2"] + feat
    for t in range(2, STAGES + 1):
        for b, branch in ((1, "L1"), (2, "L2")):
            layers = [(f"Mconv1_stage{t}_{branch}", stage_in, hidden, 7)]
            layers += [(f"Mconv{i}_stage{t}_{branch}", hidden, hidden, 7) for i in range(2, 6)]
            layers += [(f"Mconv6_stage{t}_{branch}", hidden, hidden, 1), (f"Mconv7_stage{t}_{branch}", hidden, outs[branch], 1)]
            specs[f"model{t}_{b}"] = layers
    return specs


def _sequential_of(layer: str) -> str | None:
    """The Sequential that holds Caffe layer ``layer`` (None for a name this network lacks)."""
    if re.fullmatch(r"conv[1-4]_\d(_CPM)?", layer):
        return "model0"
    m = re.fullmatch(r"conv5_\d_CPM_L([12])", layer)
    if m:
        return f"model1_{m.group(1)}"
    m = re.fullmatch(r"Mconv\d_stage(\d)_L([12])", layer)
    if m:
        return f"model{m.group(1)}_{m.group(2)}"
    return None


def released_to_module_keys(state: Mapping[str, Any]) -> dict[str, Any]:
    """``conv1_1.weight`` -> ``model0.conv1_1.weight``; a key this network lacks stays as it is
    (strict loading then reports it as unexpected)."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        layer, _, param = key.rpartition(".")
        seq = _sequential_of(layer)
        out[f"{seq}.{key}" if seq else key] = value
    return out


def config_from_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """Widths read from the module-keyed tensors' shapes."""

    def out_ch(key: str) -> int:
        return int(state[key].shape[0])

    return {
        "vgg": [out_ch(f"model0.conv{i}_1.weight") for i in (1, 2, 3, 4)],
        "cpm": [out_ch("model0.conv4_3_CPM.weight"), out_ch("model0.conv4_4_CPM.weight")],
        "stage1": [out_ch("model1_1.conv5_1_CPM_L1.weight"), out_ch("model1_1.conv5_4_CPM_L1.weight")],
        "stage": out_ch("model2_1.Mconv1_stage2_L1.weight"),
        "pafs": out_ch("model1_1.conv5_5_CPM_L1.weight"),
        "heatmaps": out_ch("model1_2.conv5_5_CPM_L2.weight"),
    }


def build(config: Mapping[str, Any] | None = None) -> Any:
    import torch
    from torch import nn

    specs = _layer_specs({**FULL_CONFIG, **(config or {})})

    def sequential(layers: list[Any]) -> nn.Sequential:
        modules: OrderedDict[str, nn.Module] = OrderedDict()
        pools = 0
        for spec in layers:
            if spec == "pool":
                pools += 1
                modules[f"pool{pools}"] = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
                continue
            name, cin, cout, k = spec
            modules[name] = nn.Conv2d(cin, cout, k, stride=1, padding=k // 2)
            if name not in _NO_RELU:
                modules[f"relu_{name}"] = nn.ReLU(inplace=True)
        return nn.Sequential(modules)

    class BodyPoseNet(nn.Module):
        """forward(x: BGR/256 - 0.5, N x 3 x H x W, H and W multiples of 8) -> (pafs, heatmaps) at 1/8."""

        def __init__(self) -> None:
            super().__init__()
            for name, layers in specs.items():
                self.add_module(name, sequential(layers))

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.model0(x)
            pafs, heatmaps = self.model1_1(features), self.model1_2(features)
            for t in range(2, STAGES + 1):
                joint = torch.cat([pafs, heatmaps, features], dim=1)
                pafs, heatmaps = getattr(self, f"model{t}_1")(joint), getattr(self, f"model{t}_2")(joint)
            return pafs, heatmaps

    return BodyPoseNet()


OPTIONAL_KEYS: tuple[str, ...] = ()  # no BatchNorm: nothing may be absent
