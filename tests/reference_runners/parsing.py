"""Fixture runners for the human-parsing networks (SCHP LIP/ATR, Graphonomy CIHP)."""

from __future__ import annotations

from typing import Any


def _schp(model: Any, fx: Any) -> dict[str, Any]:
    import torch.nn.functional as F

    x = fx.inputs["input"]
    parsing, fusion, edge = model(x)
    upsampled = F.interpolate(fusion, size=x.shape[2:], mode="bilinear", align_corners=True)  # simple_extractor
    return {"parsing": parsing, "fusion": fusion, "edge": edge, "fusion_upsampled": upsampled}


def _graphonomy_cihp(model: Any, fx: Any) -> dict[str, Any]:
    import torch

    from vtryon.vision.parsing_labels import flip_permutation

    x = fx.inputs["input"]
    logits = model(
        torch.cat([x, x.flip(-1)]), fx.inputs["adj1_target"], fx.inputs["adj2_source"], fx.inputs["adj3_transfer"]
    )
    fused = (logits[0] + logits[1][flip_permutation()].flip(-1)) / 2  # inference.py's single-scale step
    return {"logits": logits, "flip_fused": fused[None]}


RUNNERS = {"schp_atr": _schp, "schp_lip": _schp, "graphonomy_cihp": _graphonomy_cihp}
