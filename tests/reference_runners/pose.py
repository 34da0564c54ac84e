"""Fixture runners for the pose networks: OpenPose body and HRNet (with the flip test)."""

from __future__ import annotations

from typing import Any


def _openpose(model: Any, fixture: Any) -> dict[str, Any]:
    pafs, heatmaps = model(fixture.inputs["input"])
    return {"paf": pafs, "heatmap": heatmaps}


def _hrnet(model: Any, fixture: Any) -> dict[str, Any]:
    from vtryon.vision.keypoints import COCO17_FLIP_PAIRS, flip_back

    x = fixture.inputs["input"]
    heatmaps = model(x)
    flipped = flip_back(model(x.flip(3)).numpy(), COCO17_FLIP_PAIRS, shift=True)
    import torch

    return {"heatmaps": heatmaps, "heatmaps_flip_test": (heatmaps + torch.from_numpy(flipped)) * 0.5}


RUNNERS = {
    "openpose_body": _openpose,
    "hrnet_w32_256x192": _hrnet,
    "hrnet_w48_384x288": _hrnet,
}
