"""Segmentation networks (U^2-Net, cloth U^2-Net, SAM, MobileSAM, DeepLabV3) and their
pre/post-processing.

The networks themselves are proven by tests/test_reference.py (layouts and fixtures); here:
configs read back from the released layouts, DeepLabV3 against torchvision's own
constructor, the originals' pre/post-processing on inputs whose right answer is known, the
SAM prompt from a product photo, and the backends end to end through the model pool.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from reference_support import LAYOUT_DIR, SHARED, load_fixture

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("segment_anything")

from vtryon.errors import NoGarmentFound  # noqa: E402

GARMENT_PHOTO = SHARED / "images" / "garment" / "00055_00.jpg"
PERSON_PHOTO = SHARED / "images" / "person" / "01008_00.jpg"


def _layout_meta(model_id: str) -> dict:
    """The released file's tensors as meta tensors (names and shapes, no memory)."""
    tensors = json.loads((LAYOUT_DIR / f"{model_id}.json").read_text())["tensors"]
    return {k: torch.empty(v, device="meta") for k, v in tensors.items()}


# ------------------------------------------------------------------ configs from shapes

@pytest.mark.parametrize(
    "model_id, embed, depth, heads, global_idx",
    [
        ("sam_vit_b", 768, 12, 12, [2, 5, 8, 11]),
        ("sam_vit_l", 1024, 24, 16, [5, 11, 17, 23]),
        ("sam_vit_h", 1280, 32, 16, [7, 15, 23, 31]),
    ],
)
def test_sam_config_read_from_released_layout(model_id: str, embed: int, depth: int, heads: int, global_idx: list[int]) -> None:
    from vtryon.archs.sam import config_from_state_dict

    cfg = config_from_state_dict(_layout_meta(model_id))
    # segment_anything.build_sam's constants for this model
    assert (cfg["encoder_embed_dim"], cfg["encoder_depth"], cfg["encoder_num_heads"]) == (embed, depth, heads)
    assert cfg["encoder_global_attn_indexes"] == global_idx
    assert (cfg["img_size"], cfg["patch_size"], cfg["window_size"], cfg["mlp_ratio"]) == (1024, 16, 14, 4.0)
    assert (cfg["prompt_embed_dim"], cfg["out_chans"], cfg["mask_in_chans"]) == (256, 256, 16)
    assert (cfg["decoder_depth"], cfg["decoder_mlp_dim"], cfg["iou_head_depth"], cfg["iou_head_hidden_dim"]) == (2, 2048, 3, 256)
    assert (cfg["num_multimask_outputs"], cfg["attention_downsample_rate"]) == (3, 2)


def test_mobile_sam_config_read_from_released_layout() -> None:
    from vtryon.archs.mobile_sam import config_from_state_dict

    cfg = config_from_state_dict(_layout_meta("mobile_sam"))
    # MobileSAM's build_sam_vit_t: TinyViT(embed_dims=[64,128,160,320], depths=[2,2,6,2],
    # num_heads=[2,4,5,10], window_sizes=[7,7,14,7], mlp_ratio=4, mbconv_expand_ratio=4)
    assert cfg["embed_dims"] == [64, 128, 160, 320]
    assert cfg["depths"] == [2, 2, 6, 2]
    assert cfg["num_heads"][1:] == [4, 5, 10]
    assert cfg["window_sizes"][1:] == [7, 14, 7]
    assert cfg["mlp_hidden"][1:] == [512, 640, 1280]
    assert (cfg["mbconv_hidden"], cfg["local_conv_size"], cfg["img_size"], cfg["out_chans"]) == (256, 3, 1024, 256)


def test_mobile_sam_embedding_grid_at_released_strides() -> None:
    """The merge into the last stage keeps stride 1: 1/16 of the input, as SAM's decoder needs."""
    from vtryon.archs.mobile_sam import TinyViT

    cfg = {"img_size": 256, "embed_dims": [8, 16, 20, 40], "depths": [1, 1, 1, 1], "num_heads": [0, 2, 2, 4],
           "window_sizes": [0, 7, 14, 7], "mlp_hidden": [0, 32, 40, 80], "mbconv_hidden": 32,
           "local_conv_size": 3, "num_classes": 10, "out_chans": 16}
    encoder = TinyViT(cfg).eval()
    strides = [layer.downsample.conv2.c.stride for layer in encoder.layers[:-1]]
    assert strides == [(2, 2), (2, 2), (1, 1)]
    with torch.no_grad():
        assert encoder(torch.randn(1, 3, 256, 256)).shape == (1, 16, 16, 16)


@pytest.mark.parametrize("model_id, small", [("u2net", False), ("u2netp", True)])
def test_u2net_released_config_is_the_layouts(model_id: str, small: bool) -> None:
    from vtryon.archs.u2net import config_from_state_dict, released_config

    assert config_from_state_dict(_layout_meta(model_id)) == released_config(small=small)


def test_deeplab_is_torchvisions_network_at_released_width() -> None:
    """Our assembly, filled with a torchvision-constructed model's weights, gives its outputs."""
    from torchvision.models.segmentation import deeplabv3_resnet101

    from vtryon.models.build import build_from_state_dict

    torch.manual_seed(0)
    reference = deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).eval()
    ours = build_from_state_dict("deeplabv3", reference.state_dict())
    x = torch.randn(1, 3, 57, 41)
    with torch.no_grad():
        want, got = reference(x), ours(x)
    for key in ("out", "aux"):
        torch.testing.assert_close(got[key], want[key], atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ U^2-Net pre/post-processing

def test_saliency_input_is_rescaled_divided_by_max_and_normalised() -> None:
    from vtryon.steps.cloth_segmentation.u2net import SALIENCY_MEAN, SALIENCY_STD, saliency_input

    image = np.zeros((100, 60, 3), np.uint8)
    image[:, :, 0], image[:, :, 1], image[:, :, 2] = 100, 50, 200  # max is 200, not 255
    x = saliency_input(image)
    assert x.shape == (1, 3, 320, 320) and x.dtype == np.float32
    unnorm = x[0].transpose(1, 2, 0) * np.array(SALIENCY_STD) + np.array(SALIENCY_MEAN)
    np.testing.assert_allclose(unnorm[160, 160], [0.5, 0.25, 1.0], atol=1e-5)


def test_saliency_mask_is_min_max_normalised_and_cut_at_half() -> None:
    from vtryon.steps.cloth_segmentation.u2net import saliency_mask

    pred = np.full((320, 320), 0.20, np.float32)
    pred[80:240, 100:220] = 0.30  # low absolute values: the min-max normalisation makes it the object
    mask = saliency_mask(pred, (640, 480))
    assert mask.shape == (640, 480) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    assert mask[320, 240] == 255 and mask[10, 10] == 0
    ys, xs = np.nonzero(mask)
    assert abs(ys.min() - 160) <= 2 and abs(ys.max() - 479) <= 2
    assert abs(xs.min() - 150) <= 2 and abs(xs.max() - 329) <= 2
    with pytest.raises(NoGarmentFound):
        saliency_mask(np.full((320, 320), 0.7, np.float32), (64, 48))


def test_cloth_input_scales_to_minus_one_one() -> None:
    from vtryon.steps.cloth_segmentation.u2net import cloth_input

    image = np.zeros((90, 70, 3), np.uint8)
    image[..., 1] = 255
    x = cloth_input(image, size=64)
    assert x.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(x[0, :, 5, 5], [-1.0, 1.0, -1.0])


def test_cloth_labels_argmax_and_garment_class() -> None:
    from vtryon.steps.cloth_segmentation.u2net import cloth_labels, garment_from_labels

    logits = torch.zeros(1, 4, 20, 10)
    logits[:, 0] = 1.0  # background
    logits[0, 3, 2:16, 1:9] = 5.0  # full body: most of the garment
    logits[0, 1, 2:5, 1:9] = 9.0  # upper body on top of it
    labels = cloth_labels(logits, (40, 20))
    assert labels.shape == (40, 20) and labels.dtype == np.uint8
    assert labels[0, 0] == 0 and labels[6, 10] == 1 and labels[20, 10] == 3
    mask, garment_class = garment_from_labels(labels)
    assert garment_class == "dress"
    assert set(np.unique(mask)) == {0, 255}
    assert ((mask == 255) == (labels > 0)).all()
    with pytest.raises(NoGarmentFound):
        garment_from_labels(np.zeros((8, 8), np.uint8))


# ------------------------------------------------------------------ SAM prompt

def test_garment_prompt_boxes_the_garment_on_a_plain_background() -> None:
    import cv2

    from vtryon.steps.cloth_segmentation.sam import garment_prompt

    image = np.full((400, 300, 3), 235, np.uint8)
    cv2.rectangle(image, (90, 60), (210, 330), (180, 30, 40), -1)  # body
    cv2.rectangle(image, (40, 60), (260, 130), (180, 30, 40), -1)  # sleeves
    prompt = garment_prompt(image)
    assert prompt.source == "background model"
    np.testing.assert_allclose(prompt.box, [40, 60, 260, 330], atol=4)
    x, y = prompt.point
    assert 90 <= x <= 210 and 60 <= y <= 330  # inside the body

    flat = garment_prompt(np.full((50, 40, 3), 128, np.uint8))
    assert flat.source == "whole photo"
    np.testing.assert_allclose(flat.box, [0, 0, 39, 49])


# ------------------------------------------------------------------ DeepLabV3 person mask

def test_person_mask_takes_voc_class_15() -> None:
    from vtryon.models.build import build_from_state_dict
    from vtryon.steps.human_parsing.deeplab_person import person_mask

    model = build_from_state_dict("deeplabv3", load_fixture("deeplabv3_resnet101_coco").weights)  # reduced widths
    image = np.random.default_rng(0).integers(0, 255, (90, 60, 3), dtype=np.uint8)
    for cls, expected in ((15, True), (14, False)):
        with torch.no_grad():
            model.classifier[4].bias.copy_(torch.where(torch.arange(21) == cls, 1e4, 0.0))  # this class wins everywhere
        mask = person_mask(model, image)
        assert mask.shape == (90, 60) and mask.dtype == bool
        assert mask.all() == expected and mask.any() == expected


# ------------------------------------------------------------------ end to end through the model pool

def _random_state(arch: str, config: dict, seed: int) -> dict:
    """Random weights for every tensor of ``arch`` at ``config`` (the fixtures' recipe: conv and
    linear weights N(0, 1/fan_in), biases U(-0.1, 0.1), norm scales U(0.5, 1.5), BN running
    variances U(0.5, 1.5), other tensors N(0, 0.5^2))."""
    from vtryon.models.build import build_meta

    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, t in build_meta(arch, config).state_dict().items():
        shape = tuple(t.shape)
        if not t.is_floating_point():
            out[key] = torch.zeros(shape, dtype=t.dtype)
        elif key.endswith("running_var") or (len(shape) == 1 and key.endswith("weight")):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("running_mean") or key.endswith("bias"):
            out[key] = torch.rand(shape, generator=g) * 0.2 - 0.1
        elif len(shape) >= 2 and key.endswith("weight"):
            out[key] = torch.randn(shape, generator=g) / float(np.prod(shape[1:])) ** 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * 0.5
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A models folder with checkpoints in the released layouts and file names, and an extra
    manifest registering them with their sizes and sha256. u2netp and MobileSAM are full size;
    cloth U^2-Net and DeepLabV3 carry the reduced-width fixture weights (read back by shape)."""
    import hashlib

    from vtryon.archs import mobile_sam
    from vtryon.archs.u2net import released_config
    from vtryon.models.manifest import builtin_manifest

    root = tmp_path_factory.mktemp("models")
    released = builtin_manifest()
    mobile_cfg = mobile_sam.config_from_state_dict(_layout_meta("mobile_sam"))
    deeplab = dict(load_fixture("deeplabv3_resnet101_coco").weights)
    deeplab["classifier.4.bias"] = torch.where(torch.arange(21) == 15, 50.0, 0.0)  # "person" wins everywhere
    states = {
        "u2netp": _random_state("u2net", released_config(small=True), seed=1),
        "mobile_sam": _random_state("mobile_sam", mobile_cfg, seed=2),
        "cloth_segm_u2net": dict(load_fixture("cloth_segm_u2net").weights),  # keys carry "module."
        "deeplabv3_resnet101_coco": deeplab,
    }
    lines = []
    for model_id, state in states.items():
        entry = released[model_id]
        path = root / model_id / entry.file
        path.parent.mkdir(parents=True)
        torch.save(state, path)
        data = path.read_bytes()
        config = ", ".join(f"{k} = {json.dumps(v)}" for k, v in entry.config.items())
        wrapper = f'{{ strip_prefix = "{entry.wrapper.strip_prefix}" }}' if entry.wrapper.strip_prefix else "{}"
        lines += [
            f"[models.{model_id}]", f'step = "{entry.step}"', f'arch = "{entry.arch}"', f'file = "{entry.file}"',
            f"wrapper = {wrapper}", f"config = {{ {config} }}", f"size = {len(data)}",
            f'sha256 = "{hashlib.sha256(data).hexdigest()}"', "",
        ]
    manifest = root / "test-manifest.toml"
    manifest.write_text("\n".join(lines))
    return root, manifest


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test: nothing may be downloaded."""
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _photo(path) -> np.ndarray:
    from vtryon.imageio import load_image

    return load_image(path)


def _run_backend(step: str, name: str, pool, person: np.ndarray, garment: np.ndarray):
    from vtryon.state import TryOnState
    from vtryon.steps import load_backend
    from vtryon.steps.base import RunContext

    state = TryOnState(person=person, garment=garment)
    backend = load_backend(step, name)()
    backend.run(state, RunContext(models=pool))
    return state, backend.pictures(state)


@pytest.mark.parametrize("name", ["u2netp", "mobile-sam", "cloth-u2net"])
def test_garment_mask_backends_end_to_end(name: str, installed: tuple, no_network: None) -> None:
    from vtryon.models.pool import ModelPool

    root, manifest = installed
    garment = _photo(GARMENT_PHOTO)
    pool = ModelPool(models_dir=root, manifest=[manifest])
    state, pictures = _run_backend("cloth_segmentation", name, pool, garment, garment)
    mask = state.garment_mask
    assert mask.shape == garment.shape[:2] and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    assert pool.loads == 1
    assert all(p.shape == garment.shape for p in pictures.values()) and pictures
    if name == "cloth-u2net":
        assert state.aux["garment_class"] in ("upper", "lower", "dress")
        assert ((mask > 0) == (state.aux["garment_labels"] > 0)).all()
    if name == "mobile-sam":
        prompt = state.aux["garment_prompt"]
        assert prompt["source"] == "background model"
        x0, y0, x1, y1 = prompt["box"]
        assert 0 <= x0 < x1 < garment.shape[1] and 0 <= y0 < y1 < garment.shape[0]


def test_manifest_from_the_environment(installed: tuple, no_network: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from vtryon.models.pool import ModelPool

    root, manifest = installed
    monkeypatch.setenv("VTRYON_MANIFEST", str(manifest))
    garment = _photo(GARMENT_PHOTO)[::4, ::4].copy()
    state, _ = _run_backend("cloth_segmentation", "u2netp", ModelPool(models_dir=root), garment, garment)
    assert state.garment_mask.shape == garment.shape[:2]


def test_deeplab_person_backend_end_to_end(installed: tuple, no_network: None) -> None:
    from vtryon.models.pool import ModelPool
    from vtryon.state import LIP_LABELS

    root, manifest = installed
    person = _photo(PERSON_PHOTO)
    pool = ModelPool(models_dir=root, manifest=[manifest])
    state, pictures = _run_backend("human_parsing", "deeplab-person", pool, person, person)
    assert state.parsing.shape == person.shape[:2] and state.parsing.dtype == np.uint8
    assert int(state.parsing.max()) < len(LIP_LABELS)
    assert state.aux["person_mask"].all()  # the weights make every pixel "person"
    assert (state.parsing > 0).mean() > 0.9  # so every pixel gets a body region
    assert set(pictures) == {"person_mask", "parsing"}


def test_missing_checkpoint_names_the_file_and_the_fix(tmp_path, no_network: None) -> None:
    from vtryon.errors import CheckpointMissing
    from vtryon.models.pool import ModelPool

    garment = np.full((64, 48, 3), 200, np.uint8)
    with pytest.raises(CheckpointMissing) as err:
        _run_backend("cloth_segmentation", "mobile-sam", ModelPool(models_dir=tmp_path), garment, garment)
    assert "mobile_sam.pt" in str(err.value) and "vtryon download mobile_sam" in str(err.value)
