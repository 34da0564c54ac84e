"""DPT-Hybrid MiDaS through transformers: the MiDaS names map onto it, and the step-05 depth aid runs.

The renaming is checked against an inverse written here independently (transformers name ->
original MiDaS name, fused qkv included): a reduced-width network saved under the MiDaS names
loads back strictly and computes the same depth, and at full size every module tensor has
exactly one original name. The backend runs through the model pool on a real photo with a
random-weight checkpoint registered by an extra manifest (size and sha256).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pytest

from reference_support import SHARED

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from checkpoint_writers import manifest_table, write_extra_manifest  # noqa: E402
from vtryon.archs import dpt_hybrid  # noqa: E402

PERSON = SHARED / "images" / "person" / "01008_00.jpg"
GARMENT = SHARED / "images" / "garment" / "00055_00.jpg"
FILE = "dpt_hybrid-midas-501f0c75.pt"
# reduced widths at the released depths (12 ViT blocks, ResNet stages 3-4-9) and input size (the
# hybrid takes only its configured size); GroupNorm's 32 groups need bottleneck widths in multiples of 32
SMALL = dict(
    dpt_hybrid.FULL_CONFIG, hidden_size=64, num_attention_heads=1, intermediate_size=128, image_size=384,
    embedding_size=32, stage_widths=[128, 256, 512], backbone_channels=512, neck_hidden_sizes=[128, 256, 64, 64],
    fusion_hidden_size=32,
)

_BLOCK = {"layernorm_before": "norm1", "layernorm_after": "norm2", "attention.output.dense": "attn.proj",
          "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"}
_FUSION = {"projection": "out_conv", "residual_layer1.convolution1": "resConfUnit1.conv1",
           "residual_layer1.convolution2": "resConfUnit1.conv2", "residual_layer2.convolution1": "resConfUnit2.conv1",
           "residual_layer2.convolution2": "resConfUnit2.conv2"}


def original_name(key: str) -> str:
    """The MiDaS (intel-isl) name of a transformers DPT-hybrid tensor; q, k, v share ``attn.qkv``."""
    body, leaf = key.rsplit(".", 1)
    fixed = {"dpt.embeddings.cls_token": "pretrained.model.cls_token",
             "dpt.embeddings.position_embeddings": "pretrained.model.pos_embed"}
    if key in fixed:
        return fixed[key]
    rules = [
        (r"dpt\.embeddings\.projection", lambda m: "pretrained.model.patch_embed.proj"),
        (r"dpt\.embeddings\.backbone\.bit\.embedder\.convolution", lambda m: "pretrained.model.patch_embed.backbone.stem.conv"),
        (r"dpt\.embeddings\.backbone\.bit\.embedder\.norm", lambda m: "pretrained.model.patch_embed.backbone.stem.norm"),
        (r"dpt\.embeddings\.backbone\.bit\.encoder\.stages\.(\d+)\.layers\.(\d+)\.(.+)",
         lambda m: f"pretrained.model.patch_embed.backbone.stages.{m[1]}.blocks.{m[2]}.{m[3]}"),
        (r"dpt\.layernorm", lambda m: "pretrained.model.norm"),
        (r"dpt\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)", lambda m: f"pretrained.model.blocks.{m[1]}.attn.qkv"),
        (r"dpt\.encoder\.layer\.(\d+)\.(.+)", lambda m: f"pretrained.model.blocks.{m[1]}.{_BLOCK[m[2]]}"),
        (r"neck\.reassemble_stage\.readout_projects\.(\d)\.0", lambda m: f"pretrained.act_postprocess{int(m[1]) + 1}.0.project.0"),
        (r"neck\.reassemble_stage\.layers\.(\d)\.projection", lambda m: f"pretrained.act_postprocess{int(m[1]) + 1}.3"),
        (r"neck\.reassemble_stage\.layers\.(\d)\.resize", lambda m: f"pretrained.act_postprocess{int(m[1]) + 1}.4"),
        (r"neck\.convs\.(\d)", lambda m: f"scratch.layer{int(m[1]) + 1}_rn"),
        (r"neck\.fusion_stage\.layers\.(\d)\.(.+)", lambda m: f"scratch.refinenet{4 - int(m[1])}.{_FUSION[m[2]]}"),
        (r"head\.head\.(\d)", lambda m: f"scratch.output_conv.{m[1]}"),
    ]
    for pattern, make in rules:
        m = re.fullmatch(pattern, body)
        if m:
            return f"{make(m)}.{leaf}"
    raise KeyError(key)


def to_midas(module_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers state dict under the MiDaS names (q, k, v fused), plus the dropped classifier."""
    out: dict[str, torch.Tensor] = {}
    for key, value in module_sd.items():
        if ".attention.attention.query." in key:
            parts = [module_sd[key.replace(".query.", f".{r}.")] for r in ("query", "key", "value")]
            out[original_name(key)] = torch.cat(parts, 0).clone()
        elif not re.search(r"\.attention\.attention\.(key|value)\.", key):
            out[original_name(key)] = value.clone()
    hidden = module_sd["dpt.embeddings.cls_token"].shape[-1]
    out["pretrained.model.head.weight"] = torch.randn(10, hidden)  # timm's classifier: unused, dropped
    out["pretrained.model.head.bias"] = torch.randn(10)
    return out


def small_midas_file(path: Path, seed: int = 0) -> torch.nn.Module:
    """Write a reduced random DPT-hybrid under the MiDaS names to ``path``; return the transformers model."""
    torch.manual_seed(seed)
    model = dpt_hybrid.build(SMALL).eval()
    with torch.no_grad():  # non-trivial norms so a swapped name would show
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", "norm1.weight", "norm2.weight", "norm3.weight")):
                p.uniform_(0.5, 1.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(to_midas(model.state_dict()), path)
    return model


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_midas_named_file_loads_strictly_and_computes_the_same_depth(tmp_path: Path) -> None:
    from vtryon.models.build import build_from_state_dict

    path = tmp_path / FILE
    reference = small_midas_file(path)
    raw = torch.load(path, weights_only=True, mmap=True)
    assert "pretrained.model.blocks.3.attn.qkv.weight" in raw and "scratch.refinenet4.out_conv.weight" in raw
    loaded = build_from_state_dict("dpt_hybrid", raw, source=str(path))
    assert dpt_hybrid.config_from_state_dict(loaded.state_dict()) == SMALL
    x = torch.randn(1, 3, 384, 384, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = reference(pixel_values=x).predicted_depth
        got = loaded(pixel_values=x).predicted_depth
    assert got.shape == (1, 384, 384) and want.abs().max() > 0
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    # a swapped fusion order would load (same shapes) but compute something else
    swapped = dict(raw)
    swapped["scratch.refinenet1.out_conv.weight"], swapped["scratch.refinenet2.out_conv.weight"] = (
        raw["scratch.refinenet2.out_conv.weight"], raw["scratch.refinenet1.out_conv.weight"])
    with torch.no_grad():
        other = build_from_state_dict("dpt_hybrid", swapped)(pixel_values=x).predicted_depth
    assert not torch.allclose(other, want)


def test_every_full_size_tensor_has_exactly_one_midas_name() -> None:
    from vtryon.models.build import build_meta

    module_sd = build_meta("dpt_hybrid", dpt_hybrid.FULL_CONFIG).state_dict()
    assert len(module_sd) == 414
    assert dpt_hybrid.config_from_state_dict(module_sd) == dpt_hybrid.FULL_CONFIG
    originals = {k: original_name(k) for k in module_sd}
    released = sorted(set(originals.values()))
    # the fused qkv is one original tensor for three module tensors: 12 blocks x (weight, bias) x 2 fewer
    assert len(released) == len(module_sd) - 12 * 2 * 2
    renamed = dpt_hybrid.released_to_module_keys({name: name for name in released + ["pretrained.model.head.weight"]})
    assert set(renamed) == set(module_sd)
    assert all(renamed[k] == originals[k] for k in module_sd)
    # shapes: the fused qkv is three hidden-size blocks
    qkv = dpt_hybrid.released_to_module_keys({"pretrained.model.blocks.0.attn.qkv.weight": torch.empty(3 * 768, 768, device="meta")})
    assert {tuple(v.shape) for v in qkv.values()} == {(768, 768)} and len(qkv) == 3


def test_depth_backend_runs_through_the_pool_on_a_photo(tmp_path: Path, no_network: None) -> None:
    from vtryon.imageio import load_image
    from vtryon.models.pool import ModelPool
    from vtryon.state import TryOnState, Warp
    from vtryon.steps.base import RunContext
    from vtryon.steps.cloth_warping import BACKENDS
    from vtryon.steps.cloth_warping.depth_aid import DepthAidedWarping
    from vtryon.steps.cloth_warping.embedded import apply_warp

    assert BACKENDS["embedded+depth"].endswith(":DepthAidedWarping")
    models = tmp_path / "models"
    path = models / "dpt_hybrid_midas" / FILE
    small_midas_file(path, seed=3)
    extra = write_extra_manifest(models / "random-weights.toml", [manifest_table("dpt_hybrid_midas", path)])

    person = load_image(PERSON, role="person")
    garment = load_image(GARMENT, role="garment")
    h, w = person.shape[:2]
    gh, gw = garment.shape[:2]
    gmask = np.zeros((gh, gw), np.uint8)
    gmask[gh // 5 : gh * 4 // 5, gw // 5 : gw * 4 // 5] = 255
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    map_xy = np.stack([gx * (gw / w), gy * (gh / h)], -1).astype(np.float32)
    warp = Warp(map_xy, np.zeros((0, 2)), np.zeros((0, 2)), ())
    state = TryOnState(person=person, garment=garment, garment_mask=gmask, warp=warp)
    ctx = RunContext(models=ModelPool(models_dir=models, manifest=[extra]))
    backend = DepthAidedWarping()
    backend.run(state, ctx)

    depth = state.aux["person_depth"]
    assert depth.shape == (h, w) and depth.dtype == np.float32 and np.isfinite(depth).all()
    assert depth.min() == 0.0 and depth.max() == 1.0 and depth.std() > 0.01
    shade = state.aux["depth_shading"]
    assert shade.shape == (h, w) and shade.min() >= 0.9 - 1e-6 and shade.max() <= 1.05 + 1e-6 and shade.std() > 0
    plain, soft = apply_warp(garment, gmask, map_xy)
    assert state.warped_garment.shape == (h, w, 3) and state.warped_garment.dtype == np.uint8
    np.testing.assert_array_equal(state.warped_mask, soft)
    expected = np.clip(plain * shade[..., None], 0, 255)
    assert np.abs(state.warped_garment.astype(np.float32) - expected).max() <= 1.0
    assert set(backend.pictures(state)) == {"warped garment (depth-shaded)", "person depth"}
    assert backend.pictures(state)["person depth"].shape == (h, w, 3)


def test_missing_checkpoint_names_the_file(tmp_path: Path, no_network: None) -> None:
    from vtryon.errors import CheckpointMissing
    from vtryon.models.pool import ModelPool
    from vtryon.state import TryOnState, Warp
    from vtryon.steps.base import RunContext
    from vtryon.steps.cloth_warping.depth_aid import DepthAidedWarping

    h, w = 32, 24
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    state = TryOnState(person=np.zeros((h, w, 3), np.uint8), garment=np.zeros((h, w, 3), np.uint8),
                       garment_mask=np.zeros((h, w), np.uint8),
                       warp=Warp(np.stack([gx, gy], -1), np.zeros((0, 2)), np.zeros((0, 2)), ()))
    ctx = RunContext(models=ModelPool(models_dir=tmp_path / "models"))
    with pytest.raises(CheckpointMissing) as err:
        DepthAidedWarping().run(state, ctx)
    assert FILE in str(err.value) and "vtryon download dpt_hybrid_midas" in str(err.value)


def test_shading_darkens_the_flanks_of_a_rounded_surface_gently() -> None:
    from vtryon.steps.cloth_warping.depth_aid import depth_shading

    h, w = 200, 150
    xx = np.mgrid[0:h, 0:w][1]
    ridge = np.clip(1 - ((xx - 75) / 40.0) ** 2, 0, 1).astype(np.float32)  # a body-like bulge along x
    shade = depth_shading(ridge)
    assert shade.shape == (h, w) and 0.9 <= shade.min() and shade.max() <= 1.05
    assert shade[100, 75] > shade[100, 50] + 0.03 and shade[100, 75] > shade[100, 100] + 0.03
    assert shade[100, 5] == pytest.approx(shade[100, 75], abs=1e-4)  # flat facing the viewer: no change between them
    np.testing.assert_allclose(depth_shading(np.zeros((h, w), np.float32)), shade[100, 75], atol=1e-5)
