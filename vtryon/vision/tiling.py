"""Tiled inference for image-to-image networks, so large images fit in memory.

The image is cut into tiles; each tile is run with ``overlap`` pixels of real context on
every side (neighbouring windows overlap by twice that) and only its core is kept, as
Real-ESRGAN's ``RealESRGANer.tile_process`` does. For a network whose receptive field is
within ``overlap`` the tiled result equals the untiled one; for deep networks the context
makes seams invisible in practice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tile:
    """A core region (kept) and its window (what the network sees), in input pixels."""

    core: tuple[int, int, int, int]  # y0, y1, x0, x1
    window: tuple[int, int, int, int]


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Cores of at most ``tile`` x ``tile`` covering the image, windows grown by ``overlap``."""
    if tile <= 0:
        raise ValueError("tile must be positive")
    tiles = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            window = (max(0, y0 - overlap), min(height, y1 + overlap), max(0, x0 - overlap), min(width, x1 + overlap))
            tiles.append(Tile((y0, y1, x0, x1), window))
    return tiles


def tiled_forward(
    fn: Callable[[Any], Any],
    x: Any,
    *,
    scale: int,
    tile: int,
    overlap: int,
    on_tile: Callable[[int, int], None] | None = None,
) -> Any:
    """``fn`` (N,C,H,W) -> (N,C',H*scale,W*scale) applied tile by tile; float32 result on the CPU.

    ``tile <= 0`` or an image within one tile runs ``fn`` once. ``on_tile(i, n)`` reports progress.
    """
    import torch

    _, _, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(x).float().cpu()
    tiles = plan_tiles(h, w, tile, overlap)
    out = None
    for i, t in enumerate(tiles):
        wy0, wy1, wx0, wx1 = t.window
        y0, y1, x0, x1 = t.core
        result = fn(x[:, :, wy0:wy1, wx0:wx1])
        if out is None:
            out = torch.empty((x.shape[0], result.shape[1], h * scale, w * scale), dtype=torch.float32)
        oy, ox = (y0 - wy0) * scale, (x0 - wx0) * scale
        out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = (
            result[:, :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale].float().cpu()
        )
        if on_tile is not None:
            on_tile(i + 1, len(tiles))
    return out


def mirror_pad(x: Any, multiple: int) -> Any:
    """Pad bottom and right by mirroring, as SwinIR's test script: to ``(h // m + 1) * m``,
    so an image already a multiple of ``m`` still gains ``m`` rows and columns."""
    import torch

    _, _, h, w = x.shape
    h_pad = (h // multiple + 1) * multiple - h
    w_pad = (w // multiple + 1) * multiple - w
    x = torch.cat([x, torch.flip(x, [2])], 2)[:, :, : h + h_pad, :]
    return torch.cat([x, torch.flip(x, [3])], 3)[:, :, :, : w + w_pad]
