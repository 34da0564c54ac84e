"""RAFT (princeton-vl/RAFT, ``raft-things.pth``) on torchvision's RAFT-large modules.

torchvision's ``raft_large`` computes the original function (its weights were ported from
princeton-vl): the same encoders (instance norm for features, batch norm for context), the
4-level correlation pyramid with the ``meshgrid(dy, dx)`` window order and
``grid_sample(align_corners=True)`` lookups, SepConvGRU, and convex x8 upsampling with the
0.25 mask scale. Only the tensor names differ; :func:`released_to_module_keys` maps them.

Two facts of the released file: every key carries DataParallel's ``module.`` prefix (the
manifest strips it), and the context encoder's strided blocks store their downsample norm
twice (``norm3`` and ``downsample.1`` are one module in the original). The original's
loader writes ``norm3`` first and ``downsample.1`` second, so ``downsample.1`` is what the
network holds; ``norm3`` is dropped here.

:func:`estimate_flow` runs the original's forward loop (torchvision's forward does not
return the 1/8-resolution flow, which the original's ``test_mode`` does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

OPTIONAL_KEYS = ("num_batches_tracked",)
MIN_SIDE = 128  # the coarsest correlation level needs >= 2 pixels per side

_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^fnet\.", "feature_encoder."),
    (r"^cnet\.", "context_encoder."),
    (r"^(\w+_encoder)\.conv1\.", r"\1.convnormrelu.0."),
    (r"^(\w+_encoder)\.norm1\.", r"\1.convnormrelu.1."),
    (r"^(\w+_encoder)\.conv2\.", r"\1.conv."),
    (r"^(\w+_encoder\.layer\d\.\d)\.conv(\d)\.", r"\1.convnormrelu\2.0."),
    (r"^(\w+_encoder\.layer\d\.\d)\.norm([12])\.", r"\1.convnormrelu\2.1."),
    (r"^update_block\.encoder\.convc(\d)\.", r"update_block.motion_encoder.convcorr\1.0."),
    (r"^update_block\.encoder\.convf(\d)\.", r"update_block.motion_encoder.convflow\1.0."),
    (r"^update_block\.encoder\.conv\.", "update_block.motion_encoder.conv.0."),
    (r"^update_block\.gru\.conv([zrq])(\d)\.", r"update_block.recurrent_block.convgru\2.conv\1."),
    (r"^update_block\.mask\.0\.", "mask_predictor.convrelu.0."),
    (r"^update_block\.mask\.2\.", "mask_predictor.conv."),
)
_ALIAS_OF_DOWNSAMPLE = re.compile(r"^cnet\.layer\d\.\d\.norm3\.")


def released_to_module_keys(state: Mapping[str, Any]) -> dict[str, Any]:
    """raft-things names (``module.`` already stripped) -> torchvision RAFT names."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if _ALIAS_OF_DOWNSAMPLE.match(key):
            continue  # the same module as downsample.1, which the original loads last
        new = key
        for pattern, repl in _RENAMES:
            new = re.sub(pattern, repl, new)
        out[new] = value
    return out


def config_from_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """RAFT-large has no width options; the shapes are checked by strict loading."""
    return {}


def build(config: Mapping[str, Any]) -> Any:
    from torchvision.models.optical_flow import raft_large

    return raft_large(weights=None, progress=False)


def estimate_flow(model: Any, image1: Any, image2: Any, iters: int = 20) -> tuple[Any, list[Any]]:
    """(flow at 1/8 resolution, [upsampled flow after each iteration]) from image1 to image2.

    Images: (N, 3, H, W) RGB float in [0, 255], H and W multiples of 8 and >= 128.
    Flow (N, 2, H, W): x then y displacement in pixels, from image1's pixel to image2's.
    """
    import torch
    import torch.nn.functional as F
    from torchvision.models.optical_flow._utils import make_coords_grid, upsample_flow

    n, _, h, w = image1.shape
    if h % 8 or w % 8 or min(h, w) < MIN_SIDE:
        raise ValueError(f"RAFT needs sides that are multiples of 8 and >= {MIN_SIDE}; got {h}x{w}")
    dtype = next(model.parameters()).dtype
    im1 = (2 * (image1 / 255.0) - 1.0).to(dtype).contiguous()
    im2 = (2 * (image2 / 255.0) - 1.0).to(dtype).contiguous()
    fmaps = model.feature_encoder(torch.cat([im1, im2], dim=0)).float()
    fmap1, fmap2 = torch.chunk(fmaps, 2, dim=0)
    model.corr_block.build_pyramid(fmap1, fmap2)
    ctx = model.context_encoder(im1)
    hidden = model.update_block.hidden_state_size
    net, inp = torch.split(ctx, [hidden, ctx.shape[1] - hidden], dim=1)
    net, inp = torch.tanh(net), F.relu(inp)
    coords0 = make_coords_grid(n, h // 8, w // 8).to(im1.device)
    coords1 = coords0.clone()
    predictions = []
    for _ in range(iters):
        corr = model.corr_block.index_pyramid(centroids_coords=coords1)
        flow = coords1 - coords0
        net, delta = model.update_block(net, inp, corr.to(dtype), flow.to(dtype))
        coords1 = coords1 + delta.float()
        mask = model.mask_predictor(net).float()
        predictions.append(upsample_flow(coords1 - coords0, up_mask=mask))
    return coords1 - coords0, predictions
