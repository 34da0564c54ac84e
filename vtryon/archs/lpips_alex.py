"""LPIPS v0.1 with the AlexNet trunk (richzhang/PerceptualSimilarity, the ``lpips`` package).

Two released files fill it, each loaded strictly on its own:

- the linear heads ``alex.pth`` (5 tensors ``lin<k>.model.1.weight``, shipped in the lpips
  package): config ``heads = true``;
- the trunk, torchvision's ImageNet AlexNet (``alexnet-owt-7be5be79.pth``; its classifier
  tensors are dropped by the manifest's wrapper): config ``trunk = true``, the module
  ``features`` is torchvision's ``alexnet().features`` so the keys are the file's.

:func:`assemble` joins the two loaded modules (shared, not copied) into the metric. The
reference fixture holds both sets of tensors and loads as one module.

As the original: inputs in [-1, 1] scaled by the v0.1 constants, the ReLU outputs after
torchvision's feature indices 1, 4, 7, 9, 11, unit-normalised over channels with the eps
outside the square root, squared differences, a 1x1 conv without bias per layer (dropout is
inactive in eval), spatial mean (or a bilinear upsampled map), summed over the 5 layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from vtryon.errors import CheckpointMismatch

CHANNELS = (64, 192, 384, 256, 256)
TAPS = (1, 4, 7, 9, 11)  # torchvision alexnet.features indices whose (ReLU) outputs are compared
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
LIN_KEYS = tuple(f"lin{k}.model.1.weight" for k in range(len(CHANNELS)))


class NetLinLayer(nn.Module):
    """Dropout (index 0, inactive in eval) then a 1x1 conv to one channel, as the original's names."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPSAlex(nn.Module):
    def __init__(self, heads: bool = True, trunk: bool = True) -> None:
        super().__init__()
        self.has_heads, self.has_trunk = heads, trunk
        if trunk:
            from torchvision.models import alexnet

            self.features = alexnet(weights=None).features
        if heads:
            for k, c in enumerate(CHANNELS):
                setattr(self, f"lin{k}", NetLinLayer(c))
        self.register_buffer("shift", torch.empty(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.empty(1, 3, 1, 1), persistent=False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features[: TAPS[-1] + 1]):
            x = layer(x)
            if i in TAPS:
                out.append(x)
        return out

    def forward(
        self, in0: torch.Tensor, in1: torch.Tensor, *, normalize: bool = False, spatial: bool = False, per_layer: bool = False
    ) -> Any:
        """Distance (N,1,1,1), or with ``spatial`` a map (N,1,H,W); inputs in [-1, 1] (``normalize``: [0, 1])."""
        if not (self.has_heads and self.has_trunk):
            raise RuntimeError("LPIPS needs both the linear heads and the AlexNet trunk: use assemble(heads, trunk)")
        if normalize:
            in0, in1 = 2 * in0 - 1, 2 * in1 - 1
        f0 = self._taps((in0 - self.shift) / self.scale)
        f1 = self._taps((in1 - self.shift) / self.scale)
        layers = []
        for k, (a, b) in enumerate(zip(f0, f1)):
            a = a / (torch.sqrt(torch.sum(a**2, dim=1, keepdim=True)) + 1e-10)
            b = b / (torch.sqrt(torch.sum(b**2, dim=1, keepdim=True)) + 1e-10)
            d = getattr(self, f"lin{k}")((a - b) ** 2)
            if spatial:
                layers.append(nn.functional.interpolate(d, size=in0.shape[2:], mode="bilinear", align_corners=False))
            else:
                layers.append(d.mean(dim=(2, 3), keepdim=True))
        value = sum(layers[1:], layers[0])
        return (value, layers) if per_layer else value


def config_from_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    heads = all(k in state_dict for k in LIN_KEYS)
    trunk = "features.0.weight" in state_dict
    if not heads and not trunk:
        raise CheckpointMismatch("neither LPIPS linear heads (lin0..lin4) nor an AlexNet trunk (features.*) in this file")
    return {"heads": heads, "trunk": trunk}


def build(config: Mapping[str, Any]) -> LPIPSAlex:
    return LPIPSAlex(heads=bool(config.get("heads", True)), trunk=bool(config.get("trunk", True)))


def materialize(model: LPIPSAlex) -> None:
    """The v0.1 scaling constants (buffers the files do not hold)."""
    device = next(model.parameters()).device
    model.shift = torch.tensor(SHIFT, device=device).view(1, 3, 1, 1)
    model.scale = torch.tensor(SCALE, device=device).view(1, 3, 1, 1)


def assemble(heads: LPIPSAlex, trunk: LPIPSAlex) -> LPIPSAlex:
    """The metric from a heads-only and a trunk-only module (their layers shared, not copied)."""
    if not heads.has_heads or not trunk.has_trunk:
        raise ValueError("assemble(heads, trunk) needs the alex.pth heads and the AlexNet trunk")
    with torch.device("meta"):
        model = LPIPSAlex(heads=False, trunk=False)
    model.has_heads = model.has_trunk = True
    model.features = trunk.features
    for k in range(len(CHANNELS)):
        setattr(model, f"lin{k}", getattr(heads, f"lin{k}"))
    materialize(model)
    return model.eval()
