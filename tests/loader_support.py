"""Helpers for the loader tests: tiny architectures, checkpoint writers, manifests in tmp folders.

The architectures here are registered into ``vtryon.archs.ARCHITECTURES`` by the tests
(monkeypatch) so the loader is tested independently of the real networks, on the released
layout of LPIPS's linear heads (5 tensors, names and shapes from ../shared/reference/layouts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reference_support import LAYOUT_DIR

HEADS_KEYS = ("lin0.model.1.weight", "lin1.model.1.weight", "lin2.model.1.weight", "lin3.model.1.weight", "lin4.model.1.weight")


def lpips_layout() -> dict[str, list[int]]:
    return dict(json.loads((LAYOUT_DIR / "lpips_alex_v0_1.json").read_text())["tensors"])


class _Lin(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


class Heads(nn.Module):
    """LPIPS's five linear heads under their released names (lin<k>.model.1.weight)."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        for k, c in enumerate(channels):
            setattr(self, f"lin{k}", _Lin(c))
        self.n = len(channels)

    def forward(self, *feats: torch.Tensor) -> torch.Tensor:
        return sum(getattr(self, f"lin{k}").model(f).mean() for k, f in enumerate(feats))


class HEADS:
    """Architecture namespace (registry value "loader_support:HEADS")."""

    @staticmethod
    def build(config: Mapping[str, Any]) -> nn.Module:
        return Heads(tuple(config["channels"]))

    @staticmethod
    def config_from_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
        return {"channels": [int(state[k].shape[1]) for k in HEADS_KEYS]}

    @staticmethod
    def example_input(config: Mapping[str, Any]) -> tuple[torch.Tensor, ...]:
        return tuple(torch.rand(1, c, 4, 4) for c in config["channels"])


class TinyBN(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class TINY_BN:
    OPTIONAL_KEYS = ("num_batches_tracked",)

    @staticmethod
    def build(config: Mapping[str, Any]) -> nn.Module:
        return TinyBN(int(config["width"]))

    @staticmethod
    def config_from_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
        return {"width": int(state["conv.weight"].shape[0])}

    @staticmethod
    def example_input(config: Mapping[str, Any]) -> torch.Tensor:
        return torch.rand(1, 3, 8, 8)


def register_test_archs(monkeypatch: Any) -> None:
    from vtryon.archs import ARCHITECTURES

    monkeypatch.setitem(ARCHITECTURES, "test_heads", "loader_support:HEADS")
    monkeypatch.setitem(ARCHITECTURES, "test_tiny_bn", "loader_support:TINY_BN")


def heads_state(seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(v, generator=g).to(dtype) for k, v in lpips_layout().items()}


def tiny_bn_state(width: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "conv.weight": torch.randn(width, 3, 3, 3, generator=g),
        "conv.bias": torch.randn(width, generator=g),
        "bn.weight": torch.rand(width, generator=g) + 0.5,
        "bn.bias": torch.randn(width, generator=g),
        "bn.running_mean": torch.randn(width, generator=g),
        "bn.running_var": torch.rand(width, generator=g) + 0.5,
    }


def write_checkpoint(path: Path, obj: Mapping[str, Any], fmt: str = "pth") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(dict(obj), str(path))
    elif fmt == "legacy":
        torch.save(dict(obj), path, _use_new_zipfile_serialization=False)
    else:
        torch.save(dict(obj), path)
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def toml_entry(model_id: str, **fields: Any) -> str:
    """A [models.<id>] table (values through json, which TOML accepts for strings/numbers/lists)."""
    lines = [f"[models.{model_id}]"]
    for key, value in fields.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, dict):
            inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            items = ", ".join("{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in item.items()) + " }" for item in value)
            lines.append(f"{key} = [{items}]")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def write_manifest(path: Path, *tables: str) -> Path:
    path.write_text("\n".join(tables), encoding="utf-8")
    return path


def heads_entry(model_id: str = "heads", file: str = "alex.pth", **extra: Any) -> str:
    fields = {"step": "quality_assessment", "arch": "test_heads", "file": file, "license": "BSD-2-Clause", **extra}
    return toml_entry(model_id, **fields)
