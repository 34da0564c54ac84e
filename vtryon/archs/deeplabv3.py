"""DeepLabV3-ResNet101 (torchvision, COCO subset with the 21 VOC labels) as a person-mask network.

Built from torchvision's own parts (``Bottleneck`` and ``ResNet._make_layer``, ``ASPP``,
``FCNHead``, ``IntermediateLayerGetter``, ``DeepLabV3``) so the forward pass is torchvision's.
torchvision's ``deeplabv3_resnet101`` constructor fixes the widths (64 ... 2048, head 256);
here the stem width, block counts and head width are read from the checkpoint, so the released
``deeplabv3_resnet101_coco-586e9e4e.pth`` and the reduced-width fixture build through one
path. At the released widths the module is key-for-key and shape-for-shape torchvision's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

OPTIONAL_KEYS = ("num_batches_tracked",)
VOC_PERSON = 15  # index of "person" in the VOC labels (torchvision's weights meta)


def _backbone(base: int, layers: list[int]) -> Any:
    """ResNet with a ``base``-wide stem, output stride 8 (layer3/4 dilated 2/4), no classifier."""
    from torch import nn
    from torchvision.models.resnet import Bottleneck, ResNet

    class DilatedResNet(ResNet):
        def __init__(self) -> None:
            nn.Module.__init__(self)
            self._norm_layer = nn.BatchNorm2d
            self.inplanes, self.dilation, self.groups, self.base_width = base, 1, 1, 64
            self.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(base)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(Bottleneck, base, layers[0])
            self.layer2 = self._make_layer(Bottleneck, base * 2, layers[1], stride=2)
            self.layer3 = self._make_layer(Bottleneck, base * 4, layers[2], stride=2, dilate=True)
            self.layer4 = self._make_layer(Bottleneck, base * 8, layers[3], stride=2, dilate=True)

    return DilatedResNet()


def build(config: Mapping[str, Any]) -> Any:
    from torch import nn
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3
    from torchvision.models.segmentation.fcn import FCNHead

    base = int(config["base_width"])
    head = int(config["head_channels"])
    classes = int(config["num_classes"])
    features = base * 8 * 4  # Bottleneck expansion 4
    returns = {"layer4": "out", "layer3": "aux"} if config.get("aux", True) else {"layer4": "out"}
    backbone = IntermediateLayerGetter(_backbone(base, list(config["layers"])), return_layers=returns)
    classifier = nn.Sequential(  # torchvision's DeepLabHead with the head width as a parameter
        ASPP(features, list(config.get("atrous_rates", (12, 24, 36))), out_channels=head),
        nn.Conv2d(head, head, 3, padding=1, bias=False),
        nn.BatchNorm2d(head),
        nn.ReLU(),
        nn.Conv2d(head, classes, 1),
    )
    aux = FCNHead(features // 2, classes) if config.get("aux", True) else None
    return DeepLabV3(backbone, classifier, aux)


def config_from_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    def blocks(layer: int) -> int:
        pat = re.compile(rf"backbone\.layer{layer}\.(\d+)\.")
        found = {int(m.group(1)) for k in state_dict if (m := pat.match(k))}
        return max(found) + 1 if found else 0

    try:
        return {
            "base_width": int(state_dict["backbone.conv1.weight"].shape[0]),
            "layers": [blocks(i) for i in range(1, 5)],
            "head_channels": int(state_dict["classifier.0.convs.0.0.weight"].shape[0]),
            "num_classes": int(state_dict["classifier.4.weight"].shape[0]),
            "aux": "aux_classifier.0.weight" in state_dict,
            "atrous_rates": [12, 24, 36],
        }
    except KeyError as exc:
        raise KeyError(f"not a DeepLabV3-ResNet state dict: no tensor {exc.args[0]!r}") from None
