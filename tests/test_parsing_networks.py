"""Human-parsing networks (SCHP, Graphonomy), their pre/post-processing and the step-01 backends.

The numerical proof of the networks is tests/test_reference.py (fixtures from the original
code); here: the pieces around them, the released wrapper applied to the fixtures, the
Graphonomy universal network against numbers recorded from the original code, and the
backends on a real photo.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reference_support import LAYOUT_DIR, SHARED, load_fixture

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

PERSON_DIR = SHARED / "images" / "person"
PHOTO = PERSON_DIR / "01008_00.jpg"


def _layout(model_id: str) -> dict:
    return json.loads((LAYOUT_DIR / f"{model_id}.json").read_text())


def _photo(max_side: int | None = None) -> np.ndarray:
    if not PHOTO.exists():
        pytest.skip(f"{PHOTO} is not available")
    rgb = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    if max_side:
        f = max_side / max(rgb.shape[:2])
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * f), round(rgb.shape[0] * f)), interpolation=cv2.INTER_AREA)
    return rgb


def _entry(model_id: str):
    from vtryon.models.manifest import builtin_manifest

    return builtin_manifest()[model_id]


def _released_container(model_id: str, tensors: dict) -> dict:
    """The fixture's tensors put back in the released file's container (SCHP: {'state_dict': ...})."""
    keys = _entry(model_id).wrapper.keys
    return {keys[0]: tensors, "cycle_n": 0} if keys else dict(tensors)


def _fixture_network(model_id: str):
    """The reduced-width network filled from the fixture through the manifest's unwrapping rules."""
    from vtryon.models.build import build_from_state_dict

    entry = _entry(model_id)
    raw = _released_container(model_id, load_fixture(model_id).weights)
    return build_from_state_dict(entry.arch, raw, wrapper=entry.wrapper, config=entry.config, source=model_id)


# ----------------------------------------------------------------------------- SCHP network


def test_inplace_abn_is_abs_weight_batchnorm_then_leaky_relu() -> None:
    from vtryon.archs.schp import InPlaceABN

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 5, 4, generator=g)
    for activation in ("none", "leaky_relu"):
        abn = InPlaceABN(6, activation=activation).eval()
        with torch.no_grad():
            abn.weight.copy_(torch.tensor([1.2, -0.7, 0.9, -1.4, 0.6, 1.0]))
            abn.bias.copy_(torch.randn(6, generator=g))
            abn.running_mean.copy_(torch.randn(6, generator=g))
            abn.running_var.copy_(torch.rand(6, generator=g) + 0.5)
            got = abn(x.clone())
        c = (slice(None), None, None)
        scale = torch.rsqrt(abn.running_var[c] + 1e-5) * (abn.weight.abs()[c] + 1e-5)
        expected = (x - abn.running_mean[c]) * scale + abn.bias[c]
        if activation == "leaky_relu":
            expected = torch.nn.functional.leaky_relu(expected, 0.01)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_schp_activation_none_exactly_where_the_original_builds_batchnorm2d() -> None:
    from vtryon.archs.schp import RELEASED_CONFIG_LIP, InPlaceABN, build

    with torch.device("meta"):
        model = build(RELEASED_CONFIG_LIP)
    plain, leaky = set(), set()
    for name, module in model.named_modules():
        if isinstance(module, InPlaceABN):
            (plain if module.activation == "none" else leaky).add(name)
    # BatchNorm2d = partial(InPlaceABNSync, activation='none'): stem, bottleneck and downsample BNs
    for name in plain:
        assert name in ("bn1", "bn2", "bn3") or name.startswith("layer"), name
    assert {"bn1", "bn2", "bn3", "layer1.0.downsample.1", "layer3.22.bn2"} <= plain
    assert all(not name.startswith("layer") for name in leaky)
    heads = {"context_encoding.stages.0.2", "context_encoding.bottleneck.1", "edge.conv3.1", "decoder.conv3.3", "fushion.1"}
    assert heads <= leaky
    assert len(plain) == 3 + 3 * (3 + 4 + 23 + 3) + 4


@pytest.mark.parametrize("model_id", ["schp_lip", "schp_atr"])
def test_schp_layout_and_fixture_through_the_released_container(model_id: str) -> None:
    """The released file is {'state_dict': {'module.*': ...}}: the manifest's rules must read it."""
    from vtryon.models.build import build_meta, key_mismatch, module_state_dict, resolve_config

    entry = _entry(model_id)
    layout = _layout(model_id)
    shapes = {k: torch.empty(v, device="meta") for k, v in layout["tensors"].items()}
    state = module_state_dict(entry.arch, _released_container(model_id, shapes), entry.wrapper)
    model = build_meta(entry.arch, resolve_config(entry.arch, state, entry.config))
    assert key_mismatch(model.state_dict(), state, ()) == ([], [], [])
    assert sum(p.numel() for p in model.parameters()) == layout["param_count"]

    fx = load_fixture(model_id)
    with torch.no_grad():
        parsing, fusion, edge = _fixture_network(model_id)(fx.inputs["input"])
    for name, got in (("parsing", parsing), ("fusion", fusion), ("edge", edge)):
        torch.testing.assert_close(got, fx.outputs[name], atol=1e-4, rtol=1e-4)


def test_schp_rejects_a_bare_file_for_the_released_layout() -> None:
    from vtryon.errors import CheckpointMismatch
    from vtryon.models.build import module_state_dict

    entry = _entry("schp_lip")
    with pytest.raises(CheckpointMismatch, match="module."):
        module_state_dict(entry.arch, {"state_dict": {"conv1.weight": torch.zeros(1)}}, entry.wrapper)


# ----------------------------------------------------------------------------- Graphonomy network


def test_graphonomy_adjacency_constants_are_the_released_ones() -> None:
    from vtryon.archs.graphonomy import adjacency_constants

    consts = adjacency_constants()
    layout = _layout("graphonomy_cihp")["graph_constants"]
    fx = load_fixture("graphonomy_cihp")
    for name, layout_key, input_key in (
        ("target", "adj1_target_cihp_20x20", "adj1_target"),
        ("source", "adj2_source_pascal_7x7", "adj2_source"),
        ("source_to_target", "adj3_transfer_20x7", "adj3_transfer"),
    ):
        torch.testing.assert_close(consts[name], torch.tensor(layout[layout_key]), atol=1e-7, rtol=0)
        torch.testing.assert_close(consts[name], fx.inputs[input_key][0, 0], atol=1e-7, rtol=0)
    # the ATR graph and the two ATR similarity matrices (universal model): symmetric, rows as released
    assert torch.allclose(consts["middle"], consts["middle"].T)
    assert consts["middle"].shape == (18, 18) and consts["source_to_middle"].shape == (18, 7)
    assert consts["target_to_middle"].shape == (18, 20) and float(consts["target_to_middle"][0, 0]) == 1.0


def test_graphonomy_default_constants_give_the_fixture_outputs() -> None:
    fx = load_fixture("graphonomy_cihp")
    x = fx.inputs["input"]
    with torch.no_grad():
        logits = _fixture_network("graphonomy_cihp")(torch.cat([x, x.flip(-1)]))
    torch.testing.assert_close(logits, fx.outputs["logits"], atol=1e-4, rtol=1e-4)


# Recorded by running the original deeplab_xception_end2end_3d (Graphonomy @ 09e5dd4) with the
# weights and input of _universal_recipe below, through its target (CIHP) branch with the
# adjacency matrices exp/universal/pascal_atr_cihp_uni.py passes: output channel means and the
# logits at pixel (32, 24).
UNIVERSAL_MEANS = (
    0.272561, -0.044449, 0.014487, 0.143622, -0.114142, -0.354992, -0.391755, 0.220303, 0.145445, -0.190783,
    -0.238192, -0.095128, -0.248044, -0.249750, -0.158665, -0.132939, 0.191978, -0.082021, 0.098808, 0.181839,
)
UNIVERSAL_PIXEL = (
    0.297177, -0.036905, 0.018142, 0.143079, -0.115354, -0.369771, -0.441007, 0.219998, 0.148772, -0.205396,
    -0.240135, -0.112102, -0.243401, -0.275342, -0.147252, -0.124492, 0.192527, -0.068827, 0.098546, 0.190396,
)


def _universal_recipe(shapes: dict) -> tuple[dict, object]:
    g = torch.Generator().manual_seed(0)
    out = {}
    for key in sorted(shapes):
        shape = list(shapes[key])
        if key.endswith("running_var"):
            t = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("running_mean") or key.endswith(".bias"):
            t = torch.randn(shape, generator=g) * 0.1
        elif len(shape) == 1:
            t = torch.rand(shape, generator=g) + 0.5
        elif len(shape) == 4:
            t = torch.randn(shape, generator=g) * (1.0 / float(np.prod(shape[1:]))) ** 0.5
        else:
            t = torch.randn(shape, generator=g) * 0.5 / shape[0] ** 0.5
        out[key] = t
    return out, torch.rand(1, 3, 65, 49, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def universal_recipe() -> tuple[dict, object]:
    return _universal_recipe(_layout("graphonomy_universal")["tensors"])


def _universal_network(weights: dict):
    from vtryon.models.build import build_from_state_dict

    entry = _entry("graphonomy_universal")
    return build_from_state_dict(entry.arch, dict(weights), wrapper=entry.wrapper, config=entry.config)


def test_graphonomy_universal_matches_the_original_code(universal_recipe) -> None:
    weights, x = universal_recipe
    model = _universal_network(weights)
    assert type(model).__name__ == "GraphonomyUniversal"
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 20, 65, 49)
    torch.testing.assert_close(out.mean((2, 3))[0], torch.tensor(UNIVERSAL_MEANS), atol=2e-5, rtol=0)
    torch.testing.assert_close(out[0, :, 32, 24], torch.tensor(UNIVERSAL_PIXEL), atol=2e-5, rtol=0)


# ----------------------------------------------------------------------------- labels


def test_atr_and_cihp_labels_map_into_lip() -> None:
    from vtryon.state import LIP, LIP_LABELS
    from vtryon.vision.parsing_labels import ATR_LABELS, ATR_TO_LIP, CIHP_TO_LIP, to_lip

    def norm(names):
        return [n.lower() for n in names]

    assert norm(_layout("schp_atr")["labels"]) == list(ATR_LABELS)
    assert norm(_layout("graphonomy_cihp")["labels"]) == list(LIP_LABELS) == norm(_layout("schp_lip")["labels"])
    assert CIHP_TO_LIP.tolist() == list(range(20))
    for i, name in enumerate(ATR_LABELS):
        expected = {"belt": LIP["pants"], "bag": LIP["background"]}.get(name, LIP.get(name))
        assert ATR_TO_LIP[i] == expected, name
    assert not set(ATR_TO_LIP.tolist()) & {LIP["glove"], LIP["coat"], LIP["socks"], LIP["jumpsuits"]}
    labels = np.array([[0, 4, 14], [12, 16, 8]])
    assert to_lip(labels, ATR_TO_LIP).tolist() == [[0, 5, 14], [16, 0, 9]]
    with pytest.raises(ValueError):
        to_lip(np.array([18]), ATR_TO_LIP)


def test_flip_permutation_swaps_left_and_right_parts() -> None:
    from vtryon.vision.parsing_labels import flip_permutation

    assert flip_permutation() == list(range(14)) + [15, 14, 17, 16, 19, 18]


# ----------------------------------------------------------------------------- geometry


def _three_point_affine(center, scale_w, out_hw, inverse=False):
    """The original's construction (rotation 0): centre, a point above it, and a third at 90 degrees."""
    out_h, out_w = out_hw
    src = np.float32([center, center + [0, -scale_w * 0.5], center + [-scale_w * 0.5, -scale_w * 0.5]])
    dc = np.float32([(out_w - 1) * 0.5, (out_h - 1) * 0.5])
    half = (out_w - 1) * 0.5
    dst = np.float32([dc, dc + [0, -half], dc + [-half, -half]])
    return cv2.getAffineTransform(dst, src) if inverse else cv2.getAffineTransform(src, dst)


@pytest.mark.parametrize("wh", [(768, 1024), (1024, 600), (473, 473)])
def test_letterbox_affine_is_the_original_transform(wh) -> None:
    from vtryon.vision.parsing_transform import letterbox_affine

    w, h = wh
    for out_hw in ((473, 473), (512, 512)):
        fwd, inv = letterbox_affine(w, h, out_hw)
        center = np.array([(w - 1) / 2, (h - 1) / 2])
        scale_w = max(w - 1, h - 1)
        np.testing.assert_allclose(fwd, _three_point_affine(center, scale_w, out_hw), atol=2e-4)
        np.testing.assert_allclose(inv, _three_point_affine(center, scale_w, out_hw, inverse=True), atol=2e-4)
        # the longer side spans the input exactly; the shorter one is centred (letterbox)
        corners = fwd @ np.array([[0, 0, 1], [w - 1, h - 1, 1]], dtype=np.float64).T
        assert np.isclose(corners.min(), 0) or np.isclose(corners.max(), out_hw[0] - 1)
        np.testing.assert_allclose(corners.mean(axis=1), [(out_hw[1] - 1) / 2, (out_hw[0] - 1) / 2], atol=1e-9)
        roundtrip = np.vstack([inv, [0, 0, 1]]) @ np.vstack([fwd, [0, 0, 1]])
        np.testing.assert_allclose(roundtrip[:2], np.eye(3)[:2], atol=1e-12)


def test_argmax_warped_back_equals_warping_every_channel() -> None:
    from vtryon.vision.parsing_transform import argmax_warped_back, letterbox_affine, warp_into

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 47, 47)).astype(np.float32)
    _, inv = letterbox_affine(60, 90, (47, 47))
    full = warp_into(np.ascontiguousarray(logits.transpose(1, 2, 0)), inv, (90, 60))
    expected = np.argmax(full, axis=2)
    got = argmax_warped_back(logits, inv, (90, 60), chunk=3)
    assert got.shape == (90, 60)
    np.testing.assert_array_equal(got, expected)


def test_argmax_resized_equals_full_upsampling() -> None:
    from vtryon.vision.parsing_transform import argmax_resized

    logits = torch.randn(1, 20, 13, 9, generator=torch.Generator().manual_seed(0))
    up = torch.nn.functional.interpolate(logits, size=(40, 31), mode="bilinear", align_corners=True)
    np.testing.assert_array_equal(argmax_resized(logits, (40, 31), chunk=6), up[0].argmax(0).numpy())


# ----------------------------------------------------------------------------- backends


class _FixturePool:
    """Stands in for ctx.models with the reduced-width fixture networks (same unwrapping rules)."""

    def __init__(self) -> None:
        self.loaded: list[str] = []

    def load(self, model_id: str):
        self.loaded.append(model_id)
        return _fixture_network(model_id)


class _RecordingNet(torch.nn.Module):
    """Records its inputs; its logits favour one class in the top-left quarter of the input."""

    def __init__(self, n_classes: int, schp: bool) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.n, self.schp, self.inputs = n_classes, schp, []

    def forward(self, x):
        self.inputs.append(x.clone())
        b, _, h, w = x.shape
        size = (h // 4, w // 4) if self.schp else (h, w)
        out = torch.zeros(b, self.n, *size)
        out[:, 1, : size[0] // 2, : size[1] // 2] = 5.0
        out[:, 0] = 1.0
        return (out, out, out[:, :2]) if self.schp else out


def _state(rgb: np.ndarray):
    from vtryon.state import TryOnState

    return TryOnState(person=rgb, garment=rgb, person_path=PHOTO)


def _ctx(pool, **options):
    from vtryon.steps.base import RunContext

    return RunContext(models=pool, options=options)


def test_schp_preprocessing_is_the_extractors() -> None:
    from vtryon.steps.human_parsing.schp import MEAN_BGR, STD_BGR, schp_label_map

    rgb = np.zeros((100, 60, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    net = _RecordingNet(20, schp=True)
    labels = schp_label_map(net, rgb, (473, 473))
    (x,) = net.inputs
    assert x.shape == (1, 3, 473, 473)
    mid = x[0, :, 236, 236]  # inside the photo: BGR order, (v/255 - mean)/std
    expected = (torch.tensor([0.0, 0.0, 1.0]) - torch.tensor(MEAN_BGR)) / torch.tensor(STD_BGR)
    torch.testing.assert_close(mid, expected)
    corner = x[0, :, 236, 2]  # letterbox (black) at the left of a portrait photo
    torch.testing.assert_close(corner, -torch.tensor(MEAN_BGR) / torch.tensor(STD_BGR))
    # class 1 in the network's top-left quarter -> the photo's top-left region (letterboxed in x)
    assert labels.shape == (100, 60)
    assert labels[5, 5] == 1 and labels[20, 22] == 1 and labels[20, 40] == 0 and labels[80, 10] == 0


def test_graphonomy_preprocessing_is_inference_py() -> None:
    from vtryon.steps.human_parsing.graphonomy import graphonomy_logits

    rgb = np.zeros((40, 30, 3), np.uint8)
    rgb[:, :15, 0] = 255  # red left half
    net = _RecordingNet(20, schp=False)
    logits = graphonomy_logits(net, rgb, scales=(1.0, 0.5))
    assert [tuple(x.shape) for x in net.inputs] == [(2, 3, 40, 30), (2, 3, 20, 15)]
    x = net.inputs[0]
    torch.testing.assert_close(x[1], x[0].flip(-1))  # the batch is [image, mirrored image]
    torch.testing.assert_close(x[0, :, 5, 5], torch.tensor([-1.0, -1.0, 1.0]))  # BGR, x*2/255-1
    torch.testing.assert_close(x[0, :, 5, 25], torch.tensor([-1.0, -1.0, -1.0]))
    assert logits.shape == (1, 20, 40, 30)
    # class 1 sits top-left directly and top-right in the mirror: fused, both scales summed
    assert float(logits[0, 1, 2, 2]) > 0 and float(logits[0, 1, 2, 27]) > 0 and float(logits[0, 1, 38, 2]) == 0


@pytest.mark.parametrize("backend", ["schp-lip", "schp-atr", "graphonomy"])
def test_backend_on_a_real_photo_with_the_fixture_networks(backend: str) -> None:
    from vtryon.state import LIP
    from vtryon.steps import load_backend

    rgb = _photo(max_side=256)
    cls = load_backend("human_parsing", backend)
    pool = _FixturePool()
    state = _state(rgb)
    cls().run(state, _ctx(pool, graphonomy_scales=[1.0, 0.5]))
    assert pool.loaded == list(cls.models)
    assert state.parsing.dtype == np.uint8 and state.parsing.shape == rgb.shape[:2]
    assert int(state.parsing.max()) < 20 and state.parsing.any()
    if backend == "schp-atr":
        assert not set(np.unique(state.parsing)) & {LIP["glove"], LIP["coat"], LIP["socks"], LIP["jumpsuits"]}
    pictures = cls().pictures(state)
    assert set(pictures) == {"parsing", "parsing_labels"}
    for image in pictures.values():
        assert image.shape == rgb.shape and image.dtype == np.uint8


def test_graphonomy_scales_option_is_checked() -> None:
    from vtryon.errors import UsageError
    from vtryon.steps.human_parsing.graphonomy import GraphonomyParsing

    with pytest.raises(UsageError, match="graphonomy_scales"):
        GraphonomyParsing().run(_state(np.zeros((8, 8, 3), np.uint8)), _ctx(_FixturePool(), graphonomy_scales="big"))


def test_graphonomy_universal_backend_runs_its_cihp_branch_on_a_photo(universal_recipe) -> None:
    from vtryon.steps.human_parsing.graphonomy import GraphonomyUniversalParsing

    weights = dict(universal_recipe[0])
    weights["semantic.bias"] = weights["semantic.bias"].clone()
    weights["semantic.bias"][0] = -10.0  # random weights would call everything background
    network = _universal_network(weights)

    class Pool:
        def load(self, model_id: str):
            assert model_id == "graphonomy_universal"
            return network

    rgb = _photo(max_side=96)
    state = _state(rgb)
    GraphonomyUniversalParsing().run(state, _ctx(Pool(), graphonomy_scales=[1.0]))
    assert state.parsing.shape == rgb.shape[:2] and state.parsing.dtype == np.uint8 and int(state.parsing.max()) < 20


# ----------------------------------------------------------------------------- end to end through the pool


def _released_random_checkpoint(model_id: str, path: Path) -> None:
    """A full-size checkpoint in the released layout (names, shapes, container) with random weights."""
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for key, shape in _layout(model_id)["tensors"].items():
        if key.endswith("running_var") or (len(shape) == 1 and key.endswith("weight")):
            tensors[key] = torch.ones(shape)
        elif len(shape) == 1:
            tensors[key] = torch.zeros(shape)
        else:
            tensors[key] = torch.randn(shape, generator=g) * (1.0 / float(np.prod(shape[1:]))) ** 0.5
    tensors["module.fushion.3.bias"][0] = -5.0  # random weights would call everything background
    path.parent.mkdir(parents=True)
    torch.save(_released_container(model_id, tensors), path)


def _no_network(monkeypatch) -> None:
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("the parsing backend tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_schp_lip_end_to_end_through_the_pool(tmp_path, monkeypatch) -> None:
    from vtryon.errors import CheckpointMissing
    from vtryon.models.pool import ModelPool
    from vtryon.models.store import sha256_file
    from vtryon.steps.human_parsing.schp import SCHPLip

    _no_network(monkeypatch)
    entry = _entry("schp_lip")
    models = tmp_path / "models"
    ckpt = models / "schp_lip" / entry.file
    _released_random_checkpoint("schp_lip", ckpt)
    extra = tmp_path / "extra.toml"
    extra.write_text(
        f'[models.schp_lip]\nstep = "human_parsing"\narch = "schp"\nfile = "{entry.file}"\n'
        f'wrapper = {{ keys = ["state_dict"], strip_prefix = "module." }}\n'
        f"size = {ckpt.stat().st_size}\nsha256 = \"{sha256_file(ckpt)}\"\n"
    )
    rgb = _photo()
    pool = ModelPool(models_dir=models, manifest=[extra])
    state = _state(rgb)
    SCHPLip().run(state, _ctx(pool))
    assert pool.loads == 1 and pool.held_ids() == ["schp_lip"]
    assert state.parsing.shape == rgb.shape[:2] and state.parsing.dtype == np.uint8
    assert int(state.parsing.max()) <= 19 and state.parsing.any()

    monkeypatch.delenv("VTRYON_MANIFEST", raising=False)
    empty = ModelPool(models_dir=tmp_path / "empty")  # the built-in entry, nothing installed
    with pytest.raises(CheckpointMissing) as missing:
        SCHPLip().run(_state(rgb), _ctx(empty))
    assert entry.file in str(missing.value) and "vtryon download schp_lip" in str(missing.value)
