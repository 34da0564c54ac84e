"""VITON-HD (shadow2496/VITON-HD): SegGenerator, GMM and ALIASGenerator, released tensor names.

- SegGenerator: a U-Net (InstanceNorm without affine, nearest x2 upsampling + 3x3 conv),
  per-class sigmoid output; runs at 256x192.
- GMM: CP-VTON's GMM with ``F.normalize``, 4 stride-2 convs and a TPS over [-0.9, 0.9];
  its sampling grid is at the load size (1024x768) while its inputs are 256x192. Shared
  code in :mod:`vtryon.archs.cpvton`.
- ALIASGenerator: SPADE-style residual blocks with spectral norm (stored ``weight_orig`` /
  ``weight_u`` / ``weight_v``; eval mode uses the stored u, v without power iteration),
  ALIAS mask normalisation in the first five blocks, instance norm in the last three, and a
  noise map shared by all channels scaled by the learned per-channel ``noise_scale``.
  Noise is drawn from a generator the caller passes (seedable), or switched off.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from vtryon.archs.cpvton import GMM, _gmm_config_from_state_dict

OPTIONAL_KEYS = ("num_batches_tracked",)

# ----------------------------------------------------------------------------------------
# SegGenerator
# ----------------------------------------------------------------------------------------


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.InstanceNorm2d(cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.InstanceNorm2d(cout), nn.ReLU(),
    )


def _up_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1),
                         nn.InstanceNorm2d(cout), nn.ReLU())


class SegGenerator(nn.Module):
    def __init__(self, input_nc: int, output_nc: int, widths: list[int]) -> None:
        super().__init__()
        w1, w2, w3, w4, w5 = widths
        self.conv1 = _double_conv(input_nc, w1)
        self.conv2 = _double_conv(w1, w2)
        self.conv3 = _double_conv(w2, w3)
        self.conv4 = _double_conv(w3, w4)
        self.conv5 = _double_conv(w4, w5)
        self.up6, self.conv6 = _up_conv(w5, w4), _double_conv(w4 * 2, w4)
        self.up7, self.conv7 = _up_conv(w4, w3), _double_conv(w3 * 2, w3)
        self.up8, self.conv8 = _up_conv(w3, w2), _double_conv(w2 * 2, w2)
        self.up9 = _up_conv(w2, w1)
        self.conv9 = nn.Sequential(*_double_conv(w1 * 2, w1), nn.Conv2d(w1, output_nc, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-class probabilities (sigmoid, not softmax). Dropout of the original is off in eval."""
        c1 = self.conv1(x)
        c2 = self.conv2(F.max_pool2d(c1, 2))
        c3 = self.conv3(F.max_pool2d(c2, 2))
        c4 = self.conv4(F.max_pool2d(c3, 2))
        c5 = self.conv5(F.max_pool2d(c4, 2))
        c6 = self.conv6(torch.cat((c4, self.up6(c5)), 1))
        c7 = self.conv7(torch.cat((c3, self.up7(c6)), 1))
        c8 = self.conv8(torch.cat((c2, self.up8(c7)), 1))
        c9 = self.conv9(torch.cat((c1, self.up9(c8)), 1))
        return torch.sigmoid(c9)


def _seg_config(state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "input_nc": state["conv1.0.weight"].shape[1],
        "output_nc": state["conv9.6.weight"].shape[0],
        "widths": [state[f"conv{i}.0.weight"].shape[0] for i in range(1, 6)],
    }


SEG_ARCH = SimpleNamespace(
    build=lambda c: SegGenerator(c["input_nc"], c["output_nc"], list(c["widths"])),
    config_from_state_dict=_seg_config,
)

# ----------------------------------------------------------------------------------------
# GMM
# ----------------------------------------------------------------------------------------

_GMM_DEFAULTS: dict[str, Any] = {
    "variant": "vitonhd",
    "extent": 0.9,
    "out_size": [1024, 768],  # the original's load size; any size evaluates the same TPS
    "input_nc_a": 7,
    "input_nc_b": 3,
    "feature_widths": [64, 128, 256, 512],
    "feature_last": 512,
    "correlation_nc": 192,
    "regression_widths": [512, 256, 128, 64],
    "linear_in": 768,
    "grid_size": 5,
}


def _build_gmm(config: Mapping[str, Any]) -> GMM:
    full = dict(_GMM_DEFAULTS)
    full.update(config)
    return GMM(full)


GMM_ARCH = SimpleNamespace(
    build=_build_gmm, config_from_state_dict=_gmm_config_from_state_dict, OPTIONAL_KEYS=OPTIONAL_KEYS,
    DEFAULTS=_GMM_DEFAULTS,
)

# ----------------------------------------------------------------------------------------
# ALIAS generator (and HR-VITON's SPADE generator, the same blocks without mask norm)
# ----------------------------------------------------------------------------------------


class SNConv2d(nn.Module):
    """A conv under ``torch.nn.utils.spectral_norm`` as stored: ``weight_orig``, ``weight_u``,
    ``weight_v`` (+ ``bias``). Inference form: W = weight_orig / (u . (W_mat v)), no iteration."""

    def __init__(self, cin: int, cout: int, kernel: int, *, bias: bool = True) -> None:
        super().__init__()
        self.padding = kernel // 2
        self.weight_orig = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.register_buffer("weight_u", torch.empty(cout))
        self.register_buffer("weight_v", torch.empty(cin * kernel * kernel))
        if not self.weight_orig.is_meta:  # a fresh layer (tests): u, v as training would leave them
            nn.init.kaiming_uniform_(self.weight_orig, a=5**0.5)
            self.power_iteration(15)

    @torch.no_grad()
    def power_iteration(self, steps: int) -> None:
        """Set ``weight_u``/``weight_v`` to the leading singular vectors of ``weight_orig`` (approx.)."""
        w = self.weight_orig.reshape(self.weight_orig.shape[0], -1)
        v = F.normalize(torch.ones(w.shape[1], dtype=w.dtype), dim=0)
        u = F.normalize(w @ v, dim=0)
        for _ in range(steps):
            v = F.normalize(w.T @ u, dim=0)
            u = F.normalize(w @ v, dim=0)
        self.weight_u.copy_(u)
        self.weight_v.copy_(v)

    def weight(self) -> torch.Tensor:
        w = self.weight_orig
        sigma = torch.dot(self.weight_u, torch.mv(w.reshape(w.shape[0], -1), self.weight_v))
        return w / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


class MaskNorm(nn.Module):
    """Instance norm of the misaligned and the aligned region separately, each rescaled by its area."""

    @staticmethod
    def _region(region: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _, _, h, w = region.shape
        num = mask.sum((2, 3), keepdim=True)
        num = torch.where(num == 0, torch.ones_like(num), num)
        mu = region.sum((2, 3), keepdim=True) / num
        return F.instance_norm(region + (1 - mask) * mu) * torch.sqrt(num / (h * w))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._region(x * mask, mask) + self._region(x * (1 - mask), 1 - mask)


class NoiseSource:
    """Where the ALIAS/SPADE noise comes from: a torch.Generator (seeded), or off (zeros)."""

    def __init__(self, generator: torch.Generator | None = None, enabled: bool = True) -> None:
        self.generator = generator
        self.enabled = enabled

    def spatial(self, b: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor | None:
        """One (b, w, h, 1) standard-normal map, as the original's ``torch.randn(b, w, h, 1)``."""
        if not self.enabled:
            return None
        gen = self.generator
        device = gen.device if gen is not None else torch.device("cpu")
        z = torch.randn(b, w, h, 1, generator=gen, device=device, dtype=torch.float32)
        return z.to(like.device, like.dtype)


class ALIASNorm(nn.Module):
    def __init__(self, norm_nc: int, label_nc: int, *, mask_norm: bool, hidden: int = 128) -> None:
        super().__init__()
        self.noise_scale = nn.Parameter(torch.zeros(norm_nc))
        self.mask_norm = MaskNorm() if mask_norm else None
        self.conv_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.conv_gamma = nn.Conv2d(hidden, norm_nc, 3, padding=1)
        self.conv_beta = nn.Conv2d(hidden, norm_nc, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, misalign_mask: torch.Tensor | None, noise: NoiseSource) -> torch.Tensor:
        b, _, h, w = x.shape
        z = noise.spatial(b, h, w, x)
        if z is not None:  # (b, w, h, C) -> (b, C, h, w): one spatial map scaled per channel
            x = x + (z * self.noise_scale).transpose(1, 3)
        if self.mask_norm is not None:
            normalized = self.mask_norm(x, misalign_mask)
        else:
            normalized = F.instance_norm(x)
        actv = self.conv_shared(seg)
        return normalized * (1 + self.conv_gamma(actv)) + self.conv_beta(actv)


class ALIASResBlock(nn.Module):
    def __init__(self, input_nc: int, output_nc: int, label_nc: int, *, mask_norm: bool) -> None:
        super().__init__()
        self.learned_shortcut = input_nc != output_nc
        middle = min(input_nc, output_nc)
        self.conv_0 = SNConv2d(input_nc, middle, 3)
        self.conv_1 = SNConv2d(middle, output_nc, 3)
        if self.learned_shortcut:
            self.conv_s = SNConv2d(input_nc, output_nc, 1, bias=False)
        label = label_nc + 1 if mask_norm else label_nc
        self.norm_0 = ALIASNorm(input_nc, label, mask_norm=mask_norm)
        self.norm_1 = ALIASNorm(middle, label, mask_norm=mask_norm)
        if self.learned_shortcut:
            self.norm_s = ALIASNorm(input_nc, label, mask_norm=mask_norm)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, misalign_mask: torch.Tensor | None, noise: NoiseSource) -> torch.Tensor:
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        if misalign_mask is not None:
            misalign_mask = F.interpolate(misalign_mask, size=x.shape[2:], mode="nearest")
        # the original draws the noise of norm_s, norm_0, norm_1 in this order
        x_s = self.conv_s(self.norm_s(x, seg, misalign_mask, noise)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg, misalign_mask, noise), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg, misalign_mask, noise), 0.2))
        return x_s + dx


_UP_LAYERS = {"normal": 5, "more": 6, "most": 7}


class ALIASGenerator(nn.Module):
    """``forward(x, seg, seg_div=None, misalign_mask=None, noise=None)``.

    ``mask_norm_blocks``: how many blocks (from head_0) use ALIAS mask norm: 5 for VITON-HD
    (head_0..up_1), 0 for HR-VITON's SPADE generator.
    """

    BLOCKS = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3", "up_4")

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.num_upsampling_layers = config.get("num_upsampling_layers", "most")
        self.n_up = _UP_LAYERS[self.num_upsampling_layers]
        nf, cin, label = config["ngf"], config["input_nc"], config["semantic_nc"]
        n_mask = config["mask_norm_blocks"]
        self.conv_0 = nn.Conv2d(cin, nf * 16, 3, padding=1)
        for i in range(1, 8):
            self.add_module(f"conv_{i}", nn.Conv2d(cin, 16, 3, padding=1))
        chans = [(nf * 16, nf * 16), (nf * 16 + 16, nf * 16), (nf * 16 + 16, nf * 16), (nf * 16 + 16, nf * 8),
                 (nf * 8 + 16, nf * 4), (nf * 4 + 16, nf * 2), (nf * 2 + 16, nf)]
        if self.num_upsampling_layers == "most":
            chans.append((nf + 16, nf // 2))
        for i, (a, b) in enumerate(chans):
            self.add_module(self.BLOCKS[i], ALIASResBlock(a, b, label, mask_norm=i < n_mask))
        self.n_mask = n_mask
        self.conv_img = nn.Conv2d(chans[-1][1], 3, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, seg_div: torch.Tensor | None = None,
                misalign_mask: torch.Tensor | None = None, noise: NoiseSource | None = None) -> torch.Tensor:
        noise = noise or NoiseSource(enabled=False)
        # the original fixes (sh, sw) = load size // 2**n_up; taken from the input here, the
        # same at the load size, and any multiple of 128 works (output (H//128)*128 wide)
        sh, sw = x.shape[2] // 2**self.n_up, x.shape[3] // 2**self.n_up
        samples = [F.interpolate(x, size=(sh * 2**i, sw * 2**i), mode="nearest") for i in range(8)]
        feats = [getattr(self, f"conv_{i}")(samples[i]) for i in range(8)]

        def block(i: int, h: torch.Tensor) -> torch.Tensor:
            if i < self.n_mask:
                return getattr(self, self.BLOCKS[i])(h, seg_div, misalign_mask, noise)
            return getattr(self, self.BLOCKS[i])(h, seg, None, noise)

        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
        h = block(0, feats[0])
        h = block(1, torch.cat((up(h), feats[1]), 1))
        if self.num_upsampling_layers in ("more", "most"):
            h = up(h)
        h = block(2, torch.cat((h, feats[2]), 1))
        for i in range(3, 7):
            h = block(i, torch.cat((up(h), feats[i]), 1))
        if self.num_upsampling_layers == "most":
            h = block(7, torch.cat((up(h), feats[7]), 1))
        return torch.tanh(self.conv_img(F.leaky_relu(h, 0.2)))


def alias_config_from_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """ngf, input and label channels and the depth from the shapes."""
    ngf = state["conv_0.weight"].shape[0] // 16
    label = state["up_3.norm_0.conv_shared.0.weight"].shape[1]  # instance-norm blocks see the plain labels
    mask_blocks = sum(
        1 for name in ALIASGenerator.BLOCKS if f"{name}.norm_0.conv_shared.0.weight" in state
        and state[f"{name}.norm_0.conv_shared.0.weight"].shape[1] == label + 1
    )
    return {
        "ngf": ngf,
        "input_nc": state["conv_0.weight"].shape[1],
        "semantic_nc": label,
        "mask_norm_blocks": mask_blocks,
        "num_upsampling_layers": "most" if "up_4.conv_0.weight_orig" in state else "more",
    }


ALIAS_ARCH = SimpleNamespace(build=ALIASGenerator, config_from_state_dict=alias_config_from_state_dict)
