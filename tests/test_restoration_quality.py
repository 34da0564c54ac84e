"""Steps 07-08: super-resolution and face restoration (spandrel), the quality report (CLIP,
LPIPS, BRISQUE), and the helpers around them (tiling, face alignment).

End-to-end tests write checkpoints in the released layouts (wrapper keys, TorchScript for
CLIP) into a temporary models folder, register them through an extra manifest with their
size and sha256, and load them through the model pool; nothing is downloaded. realesr-general
-x4v3 is written at its full release size (its fixture is the exact release config); the
other networks use the reference fixtures' reduced widths at the released depth, whose full
sizes the layout tests in test_reference.py prove on the meta device.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("spandrel")

from reference_support import SHARED, load_fixture  # noqa: E402

IMAGES = SHARED / "images"
HOPPER = IMAGES / "person_grace_hopper.jpg"  # public domain (see ../shared/images/LICENSES.md)
TSHIRT = IMAGES / "garment_tshirt_openclipart.png"


def _rgb(path: Path, scale: float = 1.0) -> np.ndarray:
    import cv2
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB"))
    if scale != 1.0:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


# --- a models folder with checkpoints in the released layouts ----------------------------


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def _register(root: Path, lines: list[str], model_id: str, file: str, arch: str, wrapper: dict, config: dict | None = None) -> None:
    path = root / model_id / file
    table = {
        "step": "post_processing" if arch == "spandrel" else "quality_assessment",
        "arch": arch,
        "file": file,
        "wrapper": wrapper,
        "size": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    if config:
        table["config"] = config
    lines.append(f"[models.{model_id}]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    lines.append("")


def _save(root: Path, model_id: str, file: str, obj) -> None:
    (root / model_id).mkdir(parents=True, exist_ok=True)
    torch.save(obj, root / model_id / file)


def _clip_torchscript(path: Path) -> None:
    """A TorchScript archive like OpenAI's: fp16, with the three scalar metadata buffers."""
    from vtryon.archs import clip

    fx = load_fixture("clip_vit_b32")
    cfg = clip.config_from_state_dict(fx.weights)
    model = clip.build(cfg)
    model.load_state_dict(fx.weights)
    for name, value in (("input_resolution", cfg["image_resolution"]), ("context_length", cfg["context_length"]), ("vocab_size", cfg["vocab_size"])):
        model.register_buffer(name, torch.tensor(value))
    model = model.eval().half()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (fx.inputs["image"].half(), fx.inputs["text"]), check_trace=False)
        torch.jit.save(traced, str(path))


def _lpips_heads(target: Path) -> None:
    """The released alex.pth itself (it ships in the lpips package) when installed, else
    seeded non-negative heads in its layout."""
    import importlib.util
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    spec = importlib.util.find_spec("lpips")
    if spec is not None and spec.origin:
        real = Path(spec.origin).parent / "weights" / "v0.1" / "alex.pth"
        if real.exists():
            shutil.copyfile(real, target)
            return
    g = torch.Generator().manual_seed(1)
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) * 0.1 for k, c in enumerate((64, 192, 384, 256, 256))}, target)


def write_models_folder(root: Path) -> SimpleNamespace:
    """Checkpoints of every restoration and quality model in their released layouts under
    ``root``, and an extra manifest registering them with size and sha256."""
    from torchvision.models import alexnet

    lines: list[str] = []
    released = {"keys": ["params_ema", "params"]}
    # full release size: realesr-general-x4v3's fixture is its exact release config
    _save(root, "realesr_general_x4v3", "realesr-general-x4v3.pth", {"params": load_fixture("realesr_general_x4v3").weights})
    _register(root, lines, "realesr_general_x4v3", "realesr-general-x4v3.pth", "spandrel", released, {"architecture": "Compact", "scale": 4})
    _save(root, "realesrgan_x2plus", "RealESRGAN_x2plus.pth", {"params_ema": load_fixture("realesrgan_x2plus").weights})
    _register(root, lines, "realesrgan_x2plus", "RealESRGAN_x2plus.pth", "spandrel", released, {"architecture": "ESRGAN", "scale": 2})
    _save(root, "swinir_l_realsr_x4_gan", "swinir.pth", {"params_ema": load_fixture("swinir_l_realsr_x4_gan").weights})
    _register(root, lines, "swinir_l_realsr_x4_gan", "swinir.pth", "spandrel", released, {"architecture": "SwinIR", "scale": 4})
    _save(root, "gfpgan_v1_4", "GFPGANv1.4.pth", {"params_ema": load_fixture("gfpgan_v1_4").weights})
    _register(root, lines, "gfpgan_v1_4", "GFPGANv1.4.pth", "spandrel", {"keys": ["params_ema"]}, {"architecture": "GFPGAN", "scale": 1})
    _clip_torchscript(root / "clip_vit_b32" / "ViT-B-32.pt")
    _register(root, lines, "clip_vit_b32", "ViT-B-32.pt", "clip", {"drop": ["input_resolution", "context_length", "vocab_size"]})
    _lpips_heads(root / "lpips_alex_v0_1" / "alex.pth")
    _register(root, lines, "lpips_alex_v0_1", "alex.pth", "lpips_alex", {})
    torch.manual_seed(0)
    with torch.device("meta"):
        names = alexnet(weights=None).state_dict()
    trunk = {k: torch.randn(v.shape) * (2.0 / max(1, v[0].numel())) ** 0.5 if k.endswith("weight") else torch.zeros(v.shape)
             for k, v in names.items() if k.startswith("features.")}
    _save(root, "alexnet_imagenet", "alexnet-owt-7be5be79.pth", trunk)
    _register(root, lines, "alexnet_imagenet", "alexnet-owt-7be5be79.pth", "lpips_alex",
              {"drop": ["classifier.1.weight", "classifier.1.bias", "classifier.4.weight", "classifier.4.bias", "classifier.6.weight", "classifier.6.bias"]},
              {"heads": False, "trunk": True})
    manifest = root / "extra-models.toml"
    manifest.write_text("\n".join(lines), encoding="utf-8")
    return SimpleNamespace(dir=root, manifest=manifest)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_models_folder(tmp_path_factory.mktemp("models"))


def _pool(models, empty: bool = False):
    from vtryon.models.pool import ModelPool

    if empty:  # the built-in manifest: its entries say where each file comes from
        return ModelPool(device="cpu", models_dir=models.dir / "nothing-here")
    return ModelPool(device="cpu", models_dir=models.dir, manifest=[models.manifest])


def _ctx(pool, **options):
    from vtryon.steps.base import RunContext

    return RunContext(device="cpu", models=pool, options=options, seed=7)


def _state(tryon: np.ndarray):
    from vtryon.state import TryOnState

    s = TryOnState(person=tryon, garment=np.full((64, 64, 3), 255, np.uint8))
    s.tryon = tryon
    return s


# --- tiling ------------------------------------------------------------------------------


def test_tiles_cover_every_pixel_once_with_context() -> None:
    from vtryon.vision.tiling import plan_tiles

    cover = np.zeros((70, 53), int)
    for t in plan_tiles(70, 53, tile=16, overlap=5):
        y0, y1, x0, x1 = t.core
        cover[y0:y1, x0:x1] += 1
        wy0, wy1, wx0, wx1 = t.window
        assert wy0 == max(0, y0 - 5) and wy1 == min(70, y1 + 5) and wx0 == max(0, x0 - 5) and wx1 == min(53, x1 + 5)
    assert (cover == 1).all()


def test_tiled_forward_equals_one_pass_when_overlap_covers_the_receptive_field() -> None:
    from vtryon.vision.tiling import tiled_forward

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 12, 3, padding=1), torch.nn.PixelShuffle(2))
    x = torch.rand(1, 3, 45, 38)  # receptive field radius 2 (input pixels)
    with torch.no_grad():
        whole = net(x)
        tiled = tiled_forward(net, x, scale=2, tile=16, overlap=2)
        seamy = tiled_forward(net, x, scale=2, tile=16, overlap=0)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=1e-6)
    assert (seamy - whole).abs().max() > 1e-3  # without context the tile borders differ: the test can fail


def test_mirror_pad_pads_by_a_whole_window_when_already_aligned() -> None:
    from vtryon.vision.tiling import mirror_pad

    x = torch.arange(16 * 12, dtype=torch.float32).view(1, 1, 16, 12)
    y = mirror_pad(x, 8)
    assert y.shape == (1, 1, 24, 16)
    torch.testing.assert_close(y[:, :, 16:, :12], x.flip(2)[:, :, :8])
    torch.testing.assert_close(y[:, :, :16, 12:], x.flip(3)[:, :, :, :4])


# --- spandrel loading --------------------------------------------------------------------


def test_spandrel_pins_refuse_a_file_of_another_scale_or_architecture() -> None:
    from vtryon.errors import CheckpointMismatch
    from vtryon.models.build import build_from_state_dict

    x4 = load_fixture("realesrgan_x4plus").weights
    with pytest.raises(CheckpointMismatch, match="scale of 2"):
        build_from_state_dict("spandrel", x4, config={"architecture": "ESRGAN", "scale": 2})
    compact = load_fixture("realesr_general_x4v3").weights
    with pytest.raises(CheckpointMismatch, match="'ESRGAN'"):
        build_from_state_dict("spandrel", compact, config={"architecture": "ESRGAN"})
    with pytest.raises(CheckpointMismatch, match="spandrel knows no architecture"):
        build_from_state_dict("spandrel", {"foo.weight": torch.zeros(3, 3)})


def test_spandrel_mis_shaped_tensor_is_named() -> None:
    from vtryon.archs.spandrel_models import config_from_state_dict, from_state_dict
    from vtryon.errors import CheckpointMismatch

    state = dict(load_fixture("realesr_general_x4v3").weights)
    config = config_from_state_dict(state)
    state["body.2.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(CheckpointMismatch, match="body.2.weight"):
        from_state_dict(state, config)


def test_spandrel_info_says_what_is_half_safe() -> None:
    from vtryon.archs.spandrel_models import config_from_state_dict, info
    from vtryon.models.build import build_from_state_dict

    swinir = config_from_state_dict(load_fixture("swinir_l_realsr_x4_gan").weights)["info"]
    assert swinir["supports_half"] is False and swinir["scale"] == 4
    model = build_from_state_dict("spandrel", load_fixture("realesrgan_x2plus").weights)
    assert info(model).supports_half and info(model).scale == 2 and info(model).architecture == "ESRGAN"


def test_cpu_runs_in_fp32_whatever_precision_the_pool_gave() -> None:
    from vtryon.models.build import build_from_state_dict
    from vtryon.steps.post_processing.upscale import compute_dtype

    model = build_from_state_dict("spandrel", load_fixture("realesr_general_x4v3").weights).half()
    assert compute_dtype(model, "cpu") == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_one_clip_definition_serves_vit_l14() -> None:
    """OpenAI's ViT-L/14 config, built on the meta device: the shapes give the config back and
    the parameter count is the published 427,616,513 (ViT-B/32 is proven by its layout)."""
    from vtryon.archs import clip

    config = dict(embed_dim=768, image_resolution=224, vision_layers=24, vision_width=1024, vision_patch_size=14,
                  context_length=77, vocab_size=49408, transformer_width=768, transformer_heads=12, transformer_layers=12)
    with torch.device("meta"):
        model = clip.build(config)
    assert clip.config_from_state_dict(model.state_dict()) == config
    assert sum(p.numel() for p in model.parameters()) == 427_616_513


def test_alexnet_trunk_file_fits_with_the_manifest_wrapper() -> None:
    """torchvision's AlexNet file (classifier included) loads strictly into the trunk module."""
    from torchvision.models import alexnet

    from vtryon.models.build import build_meta, key_mismatch, module_state_dict, resolve_config
    from vtryon.models.manifest import builtin_manifest

    entry = builtin_manifest()["alexnet_imagenet"]
    with torch.device("meta"):
        released = alexnet(weights=None).state_dict()
    state = module_state_dict(entry.arch, released, entry.wrapper)
    model = build_meta(entry.arch, resolve_config(entry.arch, state, entry.config))
    assert key_mismatch(model.state_dict(), state) == ([], [], [])


# --- faces -------------------------------------------------------------------------------


def test_face_landmarks_align_to_the_ffhq_template() -> None:
    from vtryon.vision import face_align

    image = _rgb(HOPPER)
    faces = face_align.detect_faces(image)
    assert len(faces) == 1
    f = faces[0]
    assert f.points[0, 0] < f.points[1, 0] and f.points[3, 0] < f.points[4, 0]  # image-left first
    assert f.points[0, 1] < f.points[2, 1] < f.points[3, 1]  # eyes above nose above mouth
    matrix = face_align.alignment_matrix(f.points)
    mapped = np.c_[f.points, np.ones(5)] @ matrix.T
    assert np.abs(mapped - face_align.FFHQ_TEMPLATE_512).max() < 20  # a similarity cannot fit exactly
    crop = face_align.warp_face(image, matrix)
    assert crop.shape == (512, 512, 3)


def test_paste_back_changes_only_the_face() -> None:
    from vtryon.vision import face_align

    image = _rgb(HOPPER)
    face = face_align.detect_faces(image)[0]
    matrix = face_align.alignment_matrix(face.points)
    black = np.zeros((512, 512, 3), np.uint8)
    out = face_align.paste_face(image, black, matrix, scale=1.0)
    changed = np.abs(out.astype(int) - image).sum(-1) > 0
    x0, y0, x1, y1 = face.box
    cy, cx = int(face.points[:, 1].mean()), int(face.points[:, 0].mean())
    assert out[cy, cx].max() < 10  # the face centre is replaced
    ys, xs = np.nonzero(changed)
    side = max(x1 - x0, y1 - y0)
    assert ys.min() > y0 - side and ys.max() < y1 + side and xs.min() > x0 - side and xs.max() < x1 + side
    assert changed.mean() < 0.5


# --- step 07 end to end ------------------------------------------------------------------


def test_compact_x4_end_to_end_full_size_checkpoint(models) -> None:
    from vtryon.steps.post_processing.upscale import RealESRGeneralx4, lanczos_resize

    tryon = _rgb(HOPPER, 0.08)  # 48x41
    pool = _pool(models)
    state = _state(tryon)
    RealESRGeneralx4().run(state, _ctx(pool))
    assert state.result.shape == (192, 164, 3) and state.result.dtype == np.uint8
    rec = state.aux["post_processing"]
    assert rec["network_scale"] == 4 and rec["tile"] == 0 and not rec["lanczos_resize"]
    assert rec["dtype"] == "float32" and rec["faces_restored"] is None
    tiled = _state(tryon)
    RealESRGeneralx4().run(tiled, _ctx(pool, tile=24, outscale=2.5))
    rec = tiled.aux["post_processing"]
    assert tiled.result.shape == (120, 102, 3) and rec["lanczos_resize"] and rec["tile"] == 24
    diff = np.abs(tiled.result.astype(int) - lanczos_resize(state.result, 120, 102))
    assert diff.mean() < 2.0  # context around each tile keeps seams small
    assert pool.loads == 1  # one file read, the model shared by both runs


def test_x2plus_pixel_unshuffle_on_odd_sizes(models) -> None:
    from vtryon.steps.post_processing.upscale import RealESRGANx2

    state = _state(_rgb(HOPPER, 0.07)[:41, :33])
    RealESRGANx2().run(state, _ctx(_pool(models)))
    assert state.result.shape == (82, 66, 3)


def test_swinir_mirror_padding_and_tiles(models) -> None:
    from vtryon.steps.post_processing.upscale import SwinIRx4

    tryon = _rgb(HOPPER, 0.07)[:36, :28]
    pool = _pool(models)
    whole, tiled = _state(tryon), _state(tryon)
    SwinIRx4().run(whole, _ctx(pool, tile=0))
    SwinIRx4().run(tiled, _ctx(pool, tile=24))
    assert whole.result.shape == tiled.result.shape == (144, 112, 3)
    assert np.abs(whole.result.astype(int) - tiled.result).mean() < 3.0


def test_face_restoration_is_seeded_and_local(models) -> None:
    from vtryon.steps.post_processing.upscale import RealESRGANx2, restore_faces

    tryon = _rgb(HOPPER, 0.3)  # 180x154, one face
    pool = _pool(models)
    plain, faces = _state(tryon), _state(tryon)
    RealESRGANx2().run(plain, _ctx(pool))
    RealESRGANx2().run(faces, _ctx(pool, restore_faces=True))
    assert faces.aux["post_processing"]["faces_restored"] == 1
    assert plain.aux["post_processing"]["faces_restored"] is None  # off unless asked
    changed = np.abs(faces.result.astype(int) - plain.result).sum(-1) > 0
    assert 0.005 < changed.mean() < 0.4  # the face region, not the picture
    gfpgan = pool.load("gfpgan_v1_4")
    same, n = restore_faces(tryon, plain.result, gfpgan, seed=7, device="cpu")
    other, _ = restore_faces(tryon, plain.result, gfpgan, seed=8, device="cpu")
    assert n == 1 and np.array_equal(same, faces.result)  # same seed, same noise
    assert not np.array_equal(same, other)


def test_missing_checkpoint_names_the_file_and_the_fix(models) -> None:
    from vtryon.errors import CheckpointMissing
    from vtryon.steps.post_processing.upscale import RealESRGeneralx4

    with pytest.raises(CheckpointMissing, match="vtryon download realesr_general_x4v3"):
        RealESRGeneralx4().run(_state(_rgb(HOPPER, 0.1)), _ctx(_pool(models, empty=True)))


def test_bad_outscale_is_a_usage_error(models) -> None:
    from vtryon.errors import UsageError
    from vtryon.steps.post_processing.upscale import RealESRGeneralx4

    with pytest.raises(UsageError, match="outscale"):
        RealESRGeneralx4().run(_state(_rgb(HOPPER, 0.1)), _ctx(_pool(models), outscale=-1))


# --- step 08 -----------------------------------------------------------------------------


def _tryon_scene():
    """A person photo, a garment photo, and a synthetic try-on: the garment pasted on the torso."""
    import cv2

    from vtryon.state import TryOnState

    person = _rgb(HOPPER, 0.5)  # 300x256
    garment = _rgb(TSHIRT, 0.25)  # 216x216, white background
    gmask = (garment.min(-1) < 235).astype(np.uint8) * 255
    h, w = person.shape[:2]
    box = (150, 300, 40, 216)  # y0, y1, x0, x1: the torso
    warped = np.full_like(person, 255)
    warped_mask = np.zeros((h, w), np.uint8)
    warped[box[0] : box[1], box[2] : box[3]] = cv2.resize(garment, (box[3] - box[2], box[1] - box[0]))
    warped_mask[box[0] : box[1], box[2] : box[3]] = cv2.resize(gmask, (box[3] - box[2], box[1] - box[0]), interpolation=cv2.INTER_NEAREST)
    changed = cv2.dilate(warped_mask, np.ones((9, 9), np.uint8))
    result = np.where(warped_mask[..., None] > 127, warped, person).astype(np.uint8)
    state = TryOnState(person=person, garment=garment, garment_mask=gmask)
    state.warped_garment, state.warped_mask, state.tryon = warped, warped_mask, result
    state.aux["changed_region"] = changed
    return state


def test_quality_report_names_every_number(models) -> None:
    from vtryon.steps.quality_assessment.learned import CLIPLPIPSQuality

    state = _tryon_scene()
    CLIPLPIPSQuality().run(state, _ctx(_pool(models)))
    q = state.quality
    m = q["metrics"]
    for name in ("clip_vit_b32_garment_similarity", "lpips_alex_person_outside_changed_region",
                 "lpips_alex_warped_garment_vs_result_garment_region", "preservation_ssim_outside_change"):
        assert name in m, (name, q["unavailable"])
    assert -1.0 <= m["clip_vit_b32_garment_similarity"] <= 1.0
    assert m["lpips_alex_person_outside_changed_region"] == pytest.approx(0.0, abs=1e-6)  # nothing changed outside
    assert m["lpips_alex_warped_garment_vs_result_garment_region"] == pytest.approx(0.0, abs=1e-6)  # garment pasted as warped
    assert m["preservation_ssim_outside_change"] > 0.97  # SSIM windows reaching into the region lower it a little
    assert set(q["measures"]) == set(m) == set(q["metric_resolution"])  # every number: what it measures, at what size
    assert q["analysed_size"] == {"height": 300, "width": 256}
    assert q["metric_resolution"]["clip_vit_b32_garment_similarity"] == [64, 64]  # the fixture CLIP's input size
    assert q["models"]["clip_vit_b32_garment_similarity"]["sha256"]
    assert {"vtryon", "torch", "clip", "lpips", "scikit-image"} <= set(q["metric_code"])
    assert q["regions"]["garment"].startswith("warped garment mask")
    if "brisque" in q["metric_code"]:  # the brisque package is installed
        assert 0 <= m["brisque_person"] <= 150 and 0 <= m["brisque_result"] <= 150
    else:
        assert "brisque" in q["unavailable"]["brisque_result"]
    json.dumps(q)  # one JSON document


def test_quality_changes_outside_the_region_are_seen(models) -> None:
    from vtryon.steps.quality_assessment.learned import CLIPLPIPSQuality

    state = _tryon_scene()
    noisy = state.tryon.astype(int) + np.random.default_rng(0).integers(-40, 41, state.tryon.shape)
    state.tryon = np.clip(noisy, 0, 255).astype(np.uint8)
    CLIPLPIPSQuality().run(state, _ctx(_pool(models)))
    assert state.quality["metrics"]["lpips_alex_person_outside_changed_region"] > 0.01
    assert state.quality["metrics"]["preservation_ssim_outside_change"] < 0.9


def test_quality_without_checkpoints_reports_absence_not_numbers(models) -> None:
    from vtryon.steps.quality_assessment.learned import CLIPLPIPSQuality

    state = _tryon_scene()
    CLIPLPIPSQuality().run(state, _ctx(_pool(models, empty=True)))
    q = state.quality
    for name, model_id in (("clip_vit_b32_garment_similarity", "clip_vit_b32"), ("lpips_alex_person_outside_changed_region", "lpips_alex_v0_1")):
        assert name not in q["metrics"]
        assert f"vtryon download {model_id}" in q["unavailable"][name]
    assert "preservation_ssim_outside_change" in q["metrics"]  # model-free metrics still measured


def test_cli_quality_writes_one_json_report(models, tmp_path) -> None:
    import typer
    from typer.testing import CliRunner

    from vtryon.cli_quality import register
    from vtryon.imageio import save_image

    scene = _tryon_scene()
    person, garment, result = tmp_path / "person.png", tmp_path / "garment.png", tmp_path / "result.png"
    save_image(scene.person, person)
    save_image(scene.garment, garment)
    save_image(scene.tryon, result)
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep `quality` a subcommand, as in the real CLI
        pass

    out = tmp_path / "report.json"
    args = ["quality", str(result), "--person", str(person), "--garment", str(garment), "--device", "cpu",
            "--models-dir", str(models.dir), "--manifest", str(models.manifest), "-o", str(out), "--json"]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    report = json.loads(out.read_text())
    assert report == json.loads(run.stdout)
    assert report["inputs"]["result"] == str(result)
    assert set(report["measures"]) == set(report["metrics"])
    assert all(isinstance(v, float) for v in report["metrics"].values())
    bad = CliRunner().invoke(app, ["quality", str(tmp_path / "nope.png"), "--person", str(person), "--garment", str(garment)])
    assert bad.exit_code == 2 and "no such file" in bad.output
