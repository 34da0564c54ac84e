"""CP-VTON (sergeywong/cp-vton): the geometric matching module (GMM) and the try-on module (TOM).

Both load ``gmm_final.pth`` / ``tom_final.pth`` strictly, with the released tensor names.
Facts kept from the original (PyTorch 0.4 era):

- GMM feature extraction is Conv -> ReLU -> BatchNorm (the norm after the activation);
  L2 normalisation puts its epsilon inside the square root; the correlation flattens
  feature A w-major (``A.transpose(2, 3)``) and the regression flattens NCHW.
- The TPS control points are a 5x5 grid over [-1, 1] built as ``P_Y, P_X = meshgrid(c, c)``
  (P_X varies slowest); theta is 25 X offsets then 25 Y offsets. The TPS itself lives in
  :func:`tps_grid` (shared with VITON-HD, whose grid spans [-0.9, 0.9]).
- The warp was trained with PyTorch 0.4's ``grid_sample``, i.e. ``align_corners=True``.
- TOM is a U-Net with InstanceNorm (no affine, so every conv has a bias), bilinear x2
  upsampling + 3x3 conv, and an InstanceNorm over the 4 output channels;
  ``p_tryon = c * sigmoid(m) + tanh(p) * (1 - sigmoid(m))`` (:func:`tom_composite`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

OPTIONAL_KEYS = ("num_batches_tracked",)

# ----------------------------------------------------------------------------------------
# Thin-plate spline grid (CP-VTON and VITON-HD)
# ----------------------------------------------------------------------------------------


def tps_control_points(grid_size: int, extent: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(P_X, P_Y), each (N,), float64: the regular control grid, P_X varying slowest."""
    coords = torch.linspace(-extent, extent, grid_size, dtype=torch.float64)
    p_x = coords.repeat_interleave(grid_size)
    p_y = coords.repeat(grid_size)
    return p_x, p_y


def control_point_pairs(theta: Any, grid_size: int, extent: float) -> tuple[Any, Any]:
    """(P, Q = P + theta) as numpy (N, 2) (x, y): where each control point sits in the output
    grid's normalised space, and where it samples the input."""
    import numpy as np

    c = np.linspace(-extent, extent, grid_size)
    p = np.stack([np.repeat(c, grid_size), np.tile(c, grid_size)], 1)
    n = grid_size * grid_size
    theta = np.asarray(theta, np.float64)
    return p, p + np.stack([theta[:n], theta[n:]], 1)


def _tps_kernel(d2: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r^2, with r^2 = 0 mapped to 1 (so U = 0) as the original does."""
    d2 = torch.where(d2 == 0, torch.ones_like(d2), d2)
    return d2 * torch.log(d2)


def tps_inverse_system(grid_size: int, extent: float) -> torch.Tensor:
    """Li: the inverse of the TPS system matrix L = [[K, P], [P^T, 0]], float64 (N+3, N+3)."""
    p_x, p_y = tps_control_points(grid_size, extent)
    n = p_x.numel()
    d2 = (p_x[:, None] - p_x[None, :]) ** 2 + (p_y[:, None] - p_y[None, :]) ** 2
    k = _tps_kernel(d2)
    p = torch.stack([torch.ones(n, dtype=torch.float64), p_x, p_y], dim=1)
    top = torch.cat([k, p], dim=1)
    bottom = torch.cat([p.T, torch.zeros(3, 3, dtype=torch.float64)], dim=1)
    return torch.linalg.inv(torch.cat([top, bottom], dim=0))


def _tps_weights(theta: torch.Tensor, grid_size: int, extent: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(control points P (N, 2), non-linear weights W (B, N, 2), affine part A (B, 3, 2)), float32.

    ``theta`` (B, 2N): X offsets then Y offsets; the control points move to Q = P + theta.
    The small system inverse is computed in float64, the rest in float32 like the original.
    """
    n = grid_size * grid_size
    theta = theta.float()
    dev = theta.device
    p_x, p_y = (t.to(dev, torch.float32) for t in tps_control_points(grid_size, extent))
    li = tps_inverse_system(grid_size, extent).to(dev, torch.float32)
    q = torch.stack([theta[:, :n] + p_x, theta[:, n:] + p_y], dim=2)  # (B, N, 2)
    return torch.stack([p_x, p_y], 1), li[:n, :n] @ q, li[n:, :n] @ q


def tps_grid(theta: torch.Tensor, out_h: int, out_w: int, grid_size: int, extent: float) -> torch.Tensor:
    """The (B, out_h, out_w, 2) sampling grid: the TPS of ``theta`` on ``linspace(-extent, extent)``.

    out(x, y) = A0 + A1 x + A2 y + sum_i W_i U(|(x, y) - P_i|^2), U(r2) = r2 log r2 (0 at r2 = 0,
    which is what the original's "r2 == 0 -> 1" does). The grid is separable, so the squared
    distances are a row term plus a column term.
    """
    pts, w, a = _tps_weights(theta, grid_size, extent)
    dev = theta.device
    ys = torch.linspace(-extent, extent, out_h, dtype=torch.float64).float().to(dev)
    xs = torch.linspace(-extent, extent, out_w, dtype=torch.float64).float().to(dev)
    dx2 = (xs[:, None] - pts[:, 0]) ** 2  # (W, N)
    dy2 = (ys[:, None] - pts[:, 1]) ** 2  # (H, N)
    b = theta.shape[0]
    out = torch.empty(b, out_h, out_w, 2, device=dev)
    step = max(1, 262144 // max(out_w, 1))  # rows per block: bounds the (rows, W, N) kernel
    for r0 in range(0, out_h, step):
        d2 = dy2[r0 : r0 + step, None, :] + dx2[None, :, :]  # (rows, W, N)
        u = torch.xlogy(d2, d2)
        rows = d2.shape[0]
        nonlinear = (u.reshape(-1, u.shape[-1]) @ w).reshape(b, rows, out_w, 2) if b == 1 else \
            torch.einsum("rcn,bnk->brck", u, w)
        gx = xs[None, None, :, None]
        gy = ys[r0 : r0 + rows][None, :, None, None]
        out[:, r0 : r0 + rows] = a[:, None, None, 0] + a[:, None, None, 1] * gx + a[:, None, None, 2] * gy + nonlinear
    return out


# ----------------------------------------------------------------------------------------
# GMM
# ----------------------------------------------------------------------------------------


def feature_extraction(input_nc: int, widths: list[int], last: int) -> nn.Sequential:
    """Conv4x4s2 -> ReLU -> BN per width, then Conv3x3 -> ReLU -> BN, Conv3x3 -> ReLU."""
    layers: list[nn.Module] = []
    cin = input_nc
    for w in widths:
        layers += [nn.Conv2d(cin, w, 4, 2, 1), nn.ReLU(), nn.BatchNorm2d(w)]
        cin = w
    layers += [nn.Conv2d(cin, last, 3, 1, 1), nn.ReLU(), nn.BatchNorm2d(last)]
    layers += [nn.Conv2d(last, last, 3, 1, 1), nn.ReLU()]
    return nn.Sequential(*layers)


class _Extraction(nn.Module):
    def __init__(self, input_nc: int, widths: list[int], last: int) -> None:
        super().__init__()
        self.model = feature_extraction(input_nc, widths, last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class FeatureRegression(nn.Module):
    """Two stride-2 convs and two 3x3 convs (Conv -> BN -> ReLU), flatten (NCHW), Linear, tanh."""

    def __init__(self, input_nc: int, widths: list[int], linear_in: int, output_dim: int) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.conv = nn.Sequential(
            nn.Conv2d(input_nc, w0, 4, 2, 1), nn.BatchNorm2d(w0), nn.ReLU(),
            nn.Conv2d(w0, w1, 4, 2, 1), nn.BatchNorm2d(w1), nn.ReLU(),
            nn.Conv2d(w1, w2, 3, padding=1), nn.BatchNorm2d(w2), nn.ReLU(),
            nn.Conv2d(w2, w3, 3, padding=1), nn.BatchNorm2d(w3), nn.ReLU(),
        )
        self.linear = nn.Linear(linear_in, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return torch.tanh(self.linear(x.reshape(x.shape[0], -1)))


class GMM(nn.Module):
    """Geometric matching: person representation A and cloth B -> TPS theta and sampling grid.

    ``variant`` "cpvton": L2 norm with eps inside the sqrt, w-major correlation of A, grid on
    [-1, 1]. "vitonhd": ``F.normalize``, correlation ``A.permute(0, 3, 2, 1)``, grid on
    [-0.9, 0.9]. The two correlations give the same values in the same layout; they are kept
    literally anyway.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.variant = config["variant"]
        self.grid_size = int(config["grid_size"])
        self.extent = float(config["extent"])
        self.out_size = tuple(config["out_size"])
        widths, last = list(config["feature_widths"]), int(config["feature_last"])
        self.extractionA = _Extraction(config["input_nc_a"], widths, last)
        self.extractionB = _Extraction(config["input_nc_b"], widths, last)
        self.regression = FeatureRegression(
            config["correlation_nc"], list(config["regression_widths"]), config["linear_in"], 2 * self.grid_size**2
        )

    def _normalize(self, f: torch.Tensor) -> torch.Tensor:
        if self.variant == "cpvton":
            return f / torch.sqrt(torch.sum(f * f, dim=1, keepdim=True) + 1e-6)
        return F.normalize(f, dim=1)

    def _correlation(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n, c, h, w = a.shape
        if self.variant == "cpvton":
            fa = a.transpose(2, 3).reshape(n, c, h * w)
            fb = b.reshape(n, c, h * w).transpose(1, 2)
            corr = torch.bmm(fb, fa).reshape(n, h, w, h * w).transpose(2, 3).transpose(1, 2)
            return corr.contiguous()  # PyTorch 0.4 gave a contiguous tensor here
        fa = a.permute(0, 3, 2, 1).reshape(n, w * h, c)
        return torch.bmm(fa, b.reshape(n, c, h * w)).reshape(n, w * h, h, w)

    def theta(self, input_a: torch.Tensor, input_b: torch.Tensor) -> torch.Tensor:
        fa = self._normalize(self.extractionA(input_a))
        fb = self._normalize(self.extractionB(input_b))
        return self.regression(self._correlation(fa, fb))

    def grid(self, theta: torch.Tensor, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        h, w = out_size or self.out_size
        return tps_grid(theta, h, w, self.grid_size, self.extent).to(theta.dtype)

    def forward(self, input_a: torch.Tensor, input_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(grid, theta) for CP-VTON's order; VITON-HD's original returns (theta, grid)."""
        theta = self.theta(input_a, input_b)
        return self.grid(theta), theta


def _gmm_config_from_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    def shape(key: str) -> tuple[int, ...]:
        return tuple(state[key].shape)

    convs = sorted(
        {int(k.split(".")[2]) for k in state if k.startswith("extractionA.model.") and k.endswith(".weight") and len(shape(k)) == 4}
    )
    kernels = [shape(f"extractionA.model.{i}.weight") for i in convs]
    widths = [k[0] for k in kernels if k[2] == 4]
    last = kernels[-1][0]
    reg = [shape(f"regression.conv.{i}.weight")[0] for i in (0, 3, 6, 9)]
    out_dim, linear_in = shape("regression.linear.weight")
    return {
        "input_nc_a": shape("extractionA.model.0.weight")[1],
        "input_nc_b": shape("extractionB.model.0.weight")[1],
        "feature_widths": widths,
        "feature_last": last,
        "correlation_nc": shape("regression.conv.0.weight")[1],
        "regression_widths": reg,
        "linear_in": linear_in,
        "grid_size": int(round(math.sqrt(out_dim // 2))),
    }


def _build_gmm(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> GMM:
    full = dict(defaults)
    full.update(config)
    return GMM(full)


_CPVTON_GMM_DEFAULTS: dict[str, Any] = {
    "variant": "cpvton",
    "extent": 1.0,
    "out_size": [256, 192],
    "input_nc_a": 22,
    "input_nc_b": 3,
    "feature_widths": [64, 128, 256, 512],
    "feature_last": 512,
    "correlation_nc": 192,
    "regression_widths": [512, 256, 128, 64],
    "linear_in": 768,
    "grid_size": 5,
}

GMM_ARCH = SimpleNamespace(
    build=lambda config: _build_gmm(config, _CPVTON_GMM_DEFAULTS),
    config_from_state_dict=_gmm_config_from_state_dict,
    OPTIONAL_KEYS=OPTIONAL_KEYS,
    DEFAULTS=_CPVTON_GMM_DEFAULTS,
)


def warp_with_grid(image: torch.Tensor, grid: torch.Tensor, *, padding_mode: str, align_corners: bool) -> torch.Tensor:
    """``F.grid_sample`` in float32 whatever the network's dtype (the grid needs the precision)."""
    out = F.grid_sample(image.float(), grid.float(), mode="bilinear", padding_mode=padding_mode, align_corners=align_corners)
    return out.to(image.dtype)


# ----------------------------------------------------------------------------------------
# TOM
# ----------------------------------------------------------------------------------------


class UnetBlock(nn.Module):
    """pix2pix UnetSkipConnectionBlock with InstanceNorm (no affine), bilinear-upsample decoder.

    outermost: [down, sub, ReLU, up x2, conv3x3, IN]; middle: [LReLU, down, IN, sub, ReLU, up,
    conv3x3, IN]; innermost: [LReLU, down, ReLU, up, conv3x3, IN]. Non-outermost blocks return
    ``cat([x, model(x)])``.
    """

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None, submodule: nn.Module | None = None,
                 *, outermost: bool = False, innermost: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        down = nn.Conv2d(input_nc, inner_nc, 4, 2, 1, bias=True)
        # align_corners=False: the fixture's (modern PyTorch) behaviour of nn.Upsample(bilinear)
        up = [nn.ReLU(), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)]
        if outermost:
            layers = [down, submodule, *up, nn.Conv2d(inner_nc * 2, outer_nc, 3, 1, 1), nn.InstanceNorm2d(outer_nc)]
        elif innermost:
            layers = [nn.LeakyReLU(0.2), down, *up, nn.Conv2d(inner_nc, outer_nc, 3, 1, 1), nn.InstanceNorm2d(outer_nc)]
        else:
            layers = [nn.LeakyReLU(0.2), down, nn.InstanceNorm2d(inner_nc), submodule, *up,
                      nn.Conv2d(inner_nc * 2, outer_nc, 3, 1, 1), nn.InstanceNorm2d(outer_nc)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    def __init__(self, input_nc: int, output_nc: int, num_downs: int, ngf: int) -> None:
        super().__init__()
        block = UnetBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetBlock(ngf * 8, ngf * 8, submodule=block)
        block = UnetBlock(ngf * 4, ngf * 8, submodule=block)
        block = UnetBlock(ngf * 2, ngf * 4, submodule=block)
        block = UnetBlock(ngf, ngf * 2, submodule=block)
        self.model = UnetBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def tom_composite(raw: torch.Tensor, warped_cloth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(p_tryon, p_rendered, m_composite) from TOM's 4-channel output, as test.py composes them."""
    p_rendered = torch.tanh(raw[:, :3])
    m = torch.sigmoid(raw[:, 3:4])
    return warped_cloth * m + p_rendered * (1 - m), p_rendered, m


def _tom_config_from_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    first = state["model.model.0.weight"]
    last = state["model.model.4.weight"]
    depth = 1 + max(k.count("model.3.") for k in state)  # nesting of intermediate blocks
    return {"input_nc": first.shape[1], "output_nc": last.shape[0], "ngf": first.shape[0], "num_downs": depth + 1}


TOM_ARCH = SimpleNamespace(
    build=lambda config: UnetGenerator(config["input_nc"], config["output_nc"], config["num_downs"], config["ngf"]),
    config_from_state_dict=_tom_config_from_state_dict,
)
