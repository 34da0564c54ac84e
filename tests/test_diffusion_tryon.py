"""Diffusion try-on (step 06: ootd-hd, ootd-dc, catvton) without the real weights.

The engines are diffusers/transformers classes: here they are written at reduced width in
the released folder layouts with seeded random weights (vtryon.bench.diffusion), loaded
through the model pool from a models folder, and run end to end: agnostic mask, encoders,
garment UNet, scheduler loop, decode, paste-back. Around that: the mask recipe on a drawn
person, the framing, the attention glue against the originals' formulas, CatVTON's
attention-file indices against the ModuleList the original builds, strict loading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from vtryon.errors import CheckpointMismatch, CheckpointMissing, UsageError  # noqa: E402
from vtryon.state import KP, LIP, Keypoints, TryOnState  # noqa: E402
from vtryon.steps.base import RunContext  # noqa: E402
from vtryon.vision.agnostic_mask import agnostic_mask  # noqa: E402

ENGINE_HW = (64, 48)  # the tests' engine size (H, W) instead of 1024x768
STEPS = 2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two cores shared by several workers: one thread is several times faster here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------- a drawn person

H, W = 200, 120


def drawn_person(category_garment: str = "upper") -> tuple[np.ndarray, np.ndarray, Keypoints]:
    """A person image, its LIP parsing and OpenPose keypoints (image 200x120, facing us:
    the person's right side is on the image's left)."""
    lab = np.zeros((H, W), np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    lab[((xx - 60) / 15) ** 2 + ((yy - 22) / 12) ** 2 <= 1] = LIP["hair"]
    lab[((xx - 60) / 13) ** 2 + ((yy - 33) / 14) ** 2 <= 1] = LIP["face"]
    lab[55:112, 35:86] = LIP["dress"] if category_garment == "dress" else LIP["upper-clothes"]
    lab[58:136, 22:35] = LIP["right-arm"]
    lab[58:136, 86:99] = LIP["left-arm"]
    lab[112:176, 38:83] = LIP["dress"] if category_garment == "dress" else LIP["pants"]
    lab[176:188, 40:58] = LIP["right-leg"]
    lab[176:188, 63:81] = LIP["left-leg"]
    lab[188:196, 40:58] = LIP["right-shoe"]
    lab[188:196, 63:81] = LIP["left-shoe"]
    palette = np.random.default_rng(7).integers(0, 255, (20, 3))
    noise = np.random.default_rng(8).integers(-12, 12, (H, W, 3))
    image = np.clip(palette[lab] + noise, 0, 255).astype(np.uint8)
    pts = {
        "nose": (60, 36), "neck": (60, 55), "r-shoulder": (38, 59), "r-elbow": (28, 86), "r-wrist": (28, 112),
        "l-shoulder": (82, 59), "l-elbow": (92, 86), "l-wrist": (92, 112), "r-hip": (48, 112), "r-knee": (48, 145),
        "r-ankle": (48, 185), "l-hip": (72, 112), "l-knee": (72, 145), "l-ankle": (72, 185), "r-eye": (55, 30),
        "l-eye": (65, 30), "r-ear": (47, 33), "l-ear": (73, 33),
    }
    xy = np.zeros((18, 2), np.float32)
    for name, p in pts.items():
        xy[KP[name]] = p
    return image, lab, Keypoints(xy, np.ones(18, np.float32))


def drawn_state(category: str = "upper") -> TryOnState:
    image, lab, kp = drawn_person("dress" if category == "dress" else "upper")
    garment = np.full((150, 110, 3), 240, np.uint8)
    garment[30:120, 20:90] = (200, 40, 40)
    return TryOnState(person=image, garment=garment, category=category, parsing=lab, keypoints=kp)


# ---------------------------------------------------------------------- the mask recipe


def test_upper_mask_covers_clothes_arms_and_neck_keeps_head_hands_and_pants() -> None:
    _, lab, kp = drawn_person()
    m = agnostic_mask(lab, kp, "upper") > 0
    assert m.shape == lab.shape
    assert m[lab == LIP["upper-clothes"]].mean() > 0.99
    arms = np.isin(lab, (LIP["left-arm"], LIP["right-arm"]))
    assert m[arms & (np.mgrid[0:H, 0:W][0] < 110)].mean() > 0.95  # upper arms redrawn and regenerated (arm pixels off the line count as hand)
    assert not m[arms & (np.mgrid[0:H, 0:W][0] >= 128)].any()  # hands beyond the extended wrist kept
    rows = np.mgrid[0:H, 0:W][0]
    assert not m[(lab == LIP["face"]) & (rows < 42)].any()  # the face above the chin line is kept
    assert not m[lab == LIP["pants"]].any()
    assert m[49:55, 57:63].all()  # the neck between the chin line and the collar
    assert not m[150:, :].any() and not m[:10, :].any()


def test_lower_mask_covers_pants_and_legs_keeps_upper_body() -> None:
    _, lab, kp = drawn_person()
    m = agnostic_mask(lab, kp, "lower") > 0
    assert m[lab == LIP["pants"]].mean() > 0.97  # (one boundary row may round to the kept top)
    assert m[np.isin(lab, (LIP["left-leg"], LIP["right-leg"]))].mean() > 0.99
    for kept in ("upper-clothes", "left-arm", "right-arm", "face", "left-shoe", "right-shoe"):
        assert not m[lab == LIP[kept]].any(), kept


def test_dress_mask_spans_top_and_skirt_and_missing_wrists_keep_the_parsed_arms() -> None:
    _, lab, kp = drawn_person("dress")
    m = agnostic_mask(lab, kp, "dress", arm_width=45) > 0
    assert m[lab == LIP["dress"]].mean() > 0.99
    kp.conf[[KP["r-wrist"], KP["l-wrist"]]] = 0.0  # no wrists: the parsed arms (hands included) go in
    m2 = agnostic_mask(lab, kp, "dress", arm_width=45) > 0
    arms = np.isin(lab, (LIP["left-arm"], LIP["right-arm"]))
    assert m2[arms].mean() > 0.99
    assert not m2[(lab == LIP["face"]) & (np.mgrid[0:H, 0:W][0] < 42)].any()


def test_mask_needs_a_known_category() -> None:
    _, lab, kp = drawn_person()
    with pytest.raises(ValueError):
        agnostic_mask(lab, kp, "shoes")


def test_mask_on_a_real_photo_is_close_to_ootdiffusions_own() -> None:
    """model_1.png with our embedded parsing and pose, against the agnostic image OOTDiffusion
    itself made for that photo (its 127-grey area is its mask)."""
    import cv2
    from PIL import Image
    from reference_support import SHARED

    from vtryon.steps import load_backend

    person = SHARED / "images" / "person" / "model_1.png"
    reference = SHARED / "images" / "reference" / "ootd_model_1_agnostic_mask.jpg"
    if not person.exists() or not reference.exists():
        pytest.skip("the shared try-on photos are not here")
    state = TryOnState(person=np.asarray(Image.open(person).convert("RGB")), garment=np.zeros((8, 8, 3), np.uint8))
    for step in ("human_parsing", "pose"):
        load_backend(step, "embedded")().run(state, RunContext())
    ours = agnostic_mask(state.parsing, state.keypoints, "upper", arm_width=60) > 0
    grey = np.abs(np.asarray(Image.open(reference).convert("RGB")).astype(int) - 127).max(axis=2) < 12
    theirs = cv2.morphologyEx(grey.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)) > 0
    iou = (ours & theirs).sum() / (ours | theirs).sum()
    assert iou > 0.8, iou  # 0.88 with the embedded parser of this writing


# ---------------------------------------------------------------------- framing and paste-back


@pytest.mark.parametrize("hw, region, expect_box", [
    ((200, 120), (slice(120, 180), slice(10, 110)), (0, 40, 120, 200)),  # tall photo: full width, slid down
    ((100, 300), (slice(10, 90), slice(0, 40)), (0, 0, 75, 100)),  # wide photo: full height, slid left
    ((100, 300), (slice(10, 90), slice(20, 280)), (20, -124, 281, 224)),  # region wider than the window: padded
])
def test_frame_keeps_the_engine_aspect_and_covers_the_region(hw, region, expect_box) -> None:
    from vtryon.diffusion.framing import crop, frame_for, uncrop

    mask = np.zeros(hw, np.uint8)
    mask[region] = 255
    frame = frame_for(mask > 0, (48, 64))
    assert frame.box == expect_box
    x0, y0, x1, y1 = frame.box
    assert (x1 - x0) * 64 == (y1 - y0) * 48
    image = np.random.default_rng(0).integers(0, 255, hw + (3,), dtype=np.uint8)
    seen = crop(image, frame)
    assert seen.shape == (64, 48, 3)
    back = uncrop(crop(mask, frame, nearest=True), frame, hw, nearest=True)
    assert back.shape == hw
    assert (back[mask > 0] > 0).mean() > 0.9


def test_paste_back_keeps_every_person_pixel_outside_the_mask() -> None:
    from vtryon.diffusion.framing import crop, frame_for, paste_back

    person = np.random.default_rng(1).integers(0, 255, (200, 120, 3), dtype=np.uint8)
    region = np.zeros((200, 120), np.uint8)
    region[60:140, 30:90] = 255
    frame = frame_for(region > 0, (48, 64))
    mask = crop(region, frame, nearest=True)
    generated = np.zeros((64, 48, 3), np.uint8)
    out = paste_back(person, generated, mask, frame)
    from vtryon.diffusion.framing import uncrop

    inside = uncrop(mask, frame, (200, 120), nearest=True) > 0
    assert np.array_equal(out[~inside], person[~inside])
    assert (out[inside] == 0).all()
    import cv2

    soft = paste_back(person, generated, mask, frame, feather=2.0)
    far = cv2.dilate(inside.astype(np.uint8), np.ones((51, 51), np.uint8)) == 0
    assert np.array_equal(soft[far], person[far])
    near = (cv2.dilate(inside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & ~inside
    assert (soft[near] != person[near]).any()  # the feathered band reaches past the edge


# ---------------------------------------------------------------------- attention glue


def _block(cross_dim: int = 16):
    from diffusers.models.attention import BasicTransformerBlock

    torch.manual_seed(0)
    block = BasicTransformerBlock(dim=32, num_attention_heads=4, attention_head_dim=8, cross_attention_dim=cross_dim).eval()
    with torch.no_grad():
        for name, p in block.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return block


def test_skipped_cross_attention_adds_norm2_of_the_hidden_states() -> None:
    """CatVTON's SkipAttnProcessor returns its input, so the block computes h + norm2(h)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from vtryon.diffusion.attention import SkipCrossAttention

    block = _block()
    block.attn2.set_processor(SkipCrossAttention())
    h = torch.randn(2, 20, 32)
    with torch.no_grad():
        got = block(h, encoder_hidden_states=None)
        h1 = h + AttnProcessor2_0()(block.attn1, block.norm1(h))
        h2 = h1 + block.norm2(h1)
        want = h2 + block.ff(block.norm3(h2))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, h1 + block.ff(block.norm3(h1)), atol=1e-3)  # not a pass-through


def test_outfitting_fusion_is_attention_over_the_concatenated_tokens() -> None:
    """The original try-on block: cat([h, g]) on tokens, norm1, attn1 over all, + residual,
    first half kept; then cross-attention and feed-forward as usual."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from vtryon.diffusion.attention import OutfittingFusion

    block = _block()
    h, g, text = torch.randn(2, 20, 32), torch.randn(2, 20, 32), torch.randn(2, 3, 16)
    features = {"b": g}
    block.attn1.set_processor(OutfittingFusion("b", block.norm1, features))
    with torch.no_grad():
        got = block(h, encoder_hidden_states=text)
        hc = torch.cat([h, g], dim=1)
        h1 = (AttnProcessor2_0()(block.attn1, block.norm1(hc)) + hc).chunk(2, dim=1)[0]
        h2 = h1 + AttnProcessor2_0()(block.attn2, block.norm2(h1), encoder_hidden_states=text)
        want = h2 + block.ff(block.norm3(h2))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def _tiny_unet(in_channels: int = 9):
    from diffusers import UNet2DConditionModel

    from vtryon.bench.diffusion import UNET

    torch.manual_seed(0)
    return UNet2DConditionModel(in_channels=in_channels, out_channels=4, **UNET["tiny"]).eval()


def test_catvton_file_keys_are_the_indices_of_the_originals_module_list() -> None:
    """CatVTON builds ModuleList([m for name, m in unet.named_modules() if "attn1" in name])
    after giving every attn1 an nn.Module processor; its state_dict keys are the file's."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from vtryon.bench.diffusion import catvton_attention_tensors
    from vtryon.diffusion.attention import catvton_attention_keys

    class ModuleProcessor(torch.nn.Module):  # CatVTON's processors are nn.Modules
        def __init__(self) -> None:
            super().__init__()
            self.inner = AttnProcessor2_0()

        def __call__(self, *args, **kwargs):
            return self.inner(*args, **kwargs)

    unet = _tiny_unet()
    for name, module in unet.named_modules():
        if name.endswith(".attn1") or name.endswith(".attn2"):
            module.set_processor(ModuleProcessor())
    listed = torch.nn.ModuleList([m for name, m in unet.named_modules() if "attn1" in name])
    theirs = listed.state_dict(keep_vars=True)
    ours = catvton_attention_keys(unet)
    params = dict(unet.named_parameters())
    assert set(ours) == set(theirs)
    for key, target in ours.items():
        assert theirs[key] is params[target], key
    written = catvton_attention_tensors(unet, 0)
    n_attn1 = sum(1 for n, _ in unet.named_modules() if n.endswith(".attn1"))
    assert len(written) == 5 * n_attn1 and set(written) <= set(theirs)
    assert all(int(k.split(".")[0]) % 8 == 0 for k in written)  # the first alias, as issue #109 shows


def test_catvton_attention_file_is_checked_strictly() -> None:
    from vtryon.bench.diffusion import catvton_attention_tensors
    from vtryon.diffusion.attention import catvton_attention_state, load_catvton_attention

    unet = _tiny_unet()
    good = catvton_attention_tensors(unet, 1)
    load_catvton_attention(unet, good, "test")
    name = catvton_attention_keys_first(unet)
    torch.testing.assert_close(dict(unet.named_parameters())[name[1]], good[name[0]])
    for broken in (
        {**good, "999.to_q.weight": torch.zeros(1)},
        {k: v for k, v in good.items() if k != name[0]},
        {**good, name[0]: torch.zeros(3, 3)},
        {**good, name[0].replace("0.to_q.weight", "1.weight"): torch.ones_like(good[name[0]])},  # aliases disagree
    ):
        with pytest.raises(CheckpointMismatch):
            catvton_attention_state(unet, broken, "test")


def catvton_attention_keys_first(unet) -> tuple[str, str]:
    from vtryon.diffusion.attention import catvton_attention_keys

    key, target = next(iter(catvton_attention_keys(unet).items()))
    return key, target


# ---------------------------------------------------------------------- loading


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A models folder with every diffusion id at reduced width, and a manifest that sets
    the engines' size to 48x64."""
    from vtryon.bench.diffusion import write_models_dir

    root = tmp_path_factory.mktemp("models")
    write_models_dir(root, "tiny")
    manifest = root / "tiny.toml"
    lines = []
    for mid, file in (("ootd_hd", "ootd_hd"), ("ootd_dc", "ootd_dc"), ("catvton_attention", "catvton")):
        lines += [f"[models.{mid}]", 'step = "virtual_fitting"', 'kind = "folder"', f'file = "{file}"',
                  f"capabilities = {{ input_size = [{ENGINE_HW[0]}, {ENGINE_HW[1]}] }}", ""]
    lines += _preprocessor_checkpoints(root)
    manifest.write_text("\n".join(lines), encoding="utf-8")
    return root, manifest


def _preprocessor_checkpoints(root: Path) -> list[str]:
    """The profiles' step 01-02 networks (SCHP-LIP, OpenPose) at the reference fixtures'
    reduced widths, in their released containers; manifest entries without the published
    hash (these are not the released files)."""
    from reference_support import load_fixture

    schp = {"module." + k if not k.startswith("module.") else k: v for k, v in load_fixture("schp_lip").weights.items()}
    (root / "schp_lip").mkdir()
    torch.save({"state_dict": schp}, root / "schp_lip" / "exp-schp-201908261155-lip.pth")
    (root / "openpose_body").mkdir()
    torch.save(dict(load_fixture("openpose_body").weights), root / "openpose_body" / "body_pose_model.pth")
    return [
        "[models.schp_lip]", 'step = "human_parsing"', 'arch = "schp"', 'file = "exp-schp-201908261155-lip.pth"',
        'wrapper = { keys = ["state_dict"], strip_prefix = "module." }', "",
        "[models.openpose_body]", 'step = "pose"', 'arch = "openpose_body"', 'file = "body_pose_model.pth"', "",
    ]


def _pool(models, offload: str = "none"):
    from vtryon.models.pool import ModelPool

    root, manifest = models
    return ModelPool(device="cpu", precision="fp32", offload=offload, models_dir=root, manifest=[manifest])


def test_component_loader_rejects_missing_unexpected_and_absent_tensors(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    from vtryon.bench.diffusion import write_unet
    from vtryon.diffusion.components import load_unet

    write_unet(tmp_path / "unet", "tiny", 4, seed=0)
    unet = load_unet(tmp_path, "some_id", "unet", torch.float32, in_channels=4)
    assert unet.config.in_channels == 4
    with pytest.raises(CheckpointMismatch, match="input channels"):
        load_unet(tmp_path, "some_id", "unet", torch.float32, in_channels=8)
    file = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(file))
    save_file({**state, "extra.weight": torch.zeros(2)}, str(file))
    with pytest.raises(CheckpointMismatch, match="unexpected"):
        load_unet(tmp_path, "some_id", "unet", torch.float32)
    state.pop("conv_out.weight")
    save_file(state, str(file))
    with pytest.raises(CheckpointMismatch, match="missing"):
        load_unet(tmp_path, "some_id", "unet", torch.float32)
    with pytest.raises(CheckpointMissing, match="vtryon download some_id"):
        load_unet(tmp_path, "some_id", "no_such_unet", torch.float32)


def test_missing_checkpoint_names_the_folder_and_the_download(tmp_path) -> None:
    from vtryon.models.pool import ModelPool
    from vtryon.steps.virtual_fitting.ootd import OOTDiffusionHD

    ctx = RunContext(seed=0, options={"steps": 1}, models=ModelPool(device="cpu", models_dir=tmp_path))
    with pytest.raises(CheckpointMissing, match="vtryon download ootd_hd"):
        OOTDiffusionHD().run(drawn_state(), ctx)


def test_the_stored_pndm_config_becomes_unipc_and_ddim(models) -> None:
    from vtryon.diffusion.components import load_scheduler

    root, _ = models
    unipc = load_scheduler(root / "ootd_hd" / "ootd_hd", "ootd_hd", "scheduler", "UniPCMultistepScheduler")
    ddim = load_scheduler(root / "sd15_inpainting" / "stable-diffusion-inpainting", "sd15_inpainting", "scheduler", "DDIMScheduler")
    assert type(unipc).__name__ == "UniPCMultistepScheduler" and type(ddim).__name__ == "DDIMScheduler"
    for s in (unipc, ddim):
        assert s.config.beta_schedule == "scaled_linear" and s.config.beta_start == 0.00085 and s.config.num_train_timesteps == 1000


# ---------------------------------------------------------------------- the backends end to end


def _run(models, name: str, *, category: str = "upper", offload: str = "none", seed: int = 1, precision: str = "fp32", **options):
    from vtryon.steps import load_backend

    backend = load_backend("virtual_fitting", name)()
    ctx = RunContext(device="cpu", precision=precision, offload=offload, seed=seed, options={"steps": STEPS, **options}, models=_pool(models, offload))
    state = drawn_state(category)
    backend.run(state, ctx)
    return state, backend


@pytest.mark.parametrize("name, category", [("ootd-hd", "upper"), ("ootd-dc", "lower"), ("catvton", "dress")])
def test_backend_regenerates_inside_the_mask_only_and_repeats_under_a_seed(models, name, category) -> None:
    state, backend = _run(models, name, category=category)
    assert backend.implicit == ("geometric_matching", "cloth_warping")
    out, region = state.tryon, state.aux["changed_region"] > 0
    assert out.shape == state.person.shape and out.dtype == np.uint8
    assert region.shape == state.person.shape[:2] and 0.05 < region.mean() < 0.9
    assert np.array_equal(out[~region], state.person[~region])
    assert np.abs(out[region].astype(int) - state.person[region]).mean() > 5  # something was generated there
    assert state.aux["agnostic_person"].shape == (*ENGINE_HW, 3)
    again, _ = _run(models, name, category=category)
    assert np.array_equal(again.tryon, out)
    other, _ = _run(models, name, category=category, seed=2)
    assert not np.array_equal(other.tryon, out)


@pytest.mark.parametrize("name", ["ootd-hd", "catvton"])
def test_offload_model_and_sequential_give_the_same_result(models, name) -> None:
    base, _ = _run(models, name)
    for offload in ("model", "sequential"):
        state, backend = _run(models, name, offload=offload)
        diff = np.abs(state.tryon.astype(np.float64) - base.tryon) / 255.0
        assert diff.max() < 1e-4, offload
    assert backend._engine is None  # sequential: freed after the step


def test_precision_choices_and_the_vae_upcast() -> None:
    from types import SimpleNamespace

    from vtryon.diffusion.precision import compute_dtype, vae_dtype

    assert compute_dtype("cpu", "auto", "bf16") == torch.float32
    assert compute_dtype("cuda", "fp16") == torch.float16 and compute_dtype("cpu", "bf16") == torch.bfloat16
    assert compute_dtype("mps", "auto", "bf16") == torch.float16
    assert vae_dtype(SimpleNamespace(), torch.float16) == torch.float32  # configs without the flag: upcast
    assert vae_dtype(SimpleNamespace(force_upcast=False), torch.float16) == torch.float16
    assert vae_dtype(SimpleNamespace(force_upcast=True), torch.bfloat16) == torch.bfloat16
    with pytest.raises(UsageError):
        compute_dtype("cpu", "int8")


def test_bf16_run_keeps_the_encoders_in_float32(models) -> None:
    state, backend = _run(models, "ootd-hd", precision="bf16")
    engine = backend._engine
    assert engine.vton.dtype == engine.garm.dtype == engine.vae.dtype == torch.bfloat16
    assert engine.text_encoder.dtype == engine.image_encoder.dtype == torch.float32
    region = state.aux["changed_region"] > 0
    assert np.array_equal(state.tryon[~region], state.person[~region])


def test_samples_options_and_repaint(models) -> None:
    state, backend = _run(models, "catvton", samples=2, guidance=1.0, repaint=True)
    samples = state.aux["tryon_samples"]
    assert len(samples) == 2 and np.array_equal(samples[0], state.tryon)
    assert not np.array_equal(samples[0], samples[1])  # each sample its own noise
    assert set(backend.pictures(state)) == {"agnostic", "try-on", "sample 2"}


def test_bad_options_and_categories_are_usage_errors(models) -> None:
    with pytest.raises(UsageError, match="steps"):
        _run(models, "ootd-hd", steps=0)
    with pytest.raises(UsageError, match="samples"):
        _run(models, "catvton", samples=100)
    with pytest.raises(UsageError, match="upper"):
        _run(models, "ootd-hd", category="lower")
    with pytest.raises(UsageError, match="catvton_version"):
        _run(models, "catvton", catvton_version="v9")


# ---------------------------------------------------------------------- through the command line


@pytest.mark.parametrize("profile", ["ootd", "catvton"])
def test_vtryon_run_with_a_diffusion_profile(models, tmp_path, profile) -> None:
    import json

    from PIL import Image
    from reference_support import SHARED
    from typer.testing import CliRunner

    from vtryon.cli import app

    person = SHARED / "images" / "person" / "model_1.png"
    garment = SHARED / "images" / "garment" / "00055_00.jpg"
    if not person.exists() or not garment.exists():
        pytest.skip("the shared try-on photos are not here")
    root, manifest = models
    out = tmp_path / "result.png"
    args = ["run", str(person), str(garment), "--profile", profile, "--models-dir", str(root), "--manifest", str(manifest),
            "--steps", "1", "--seed", "5", "-o", str(out), "--json"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output[r.output.index("{"):])
    status = {s["step"]: s["status"] for s in summary["steps"]}
    backend = {"ootd": "ootd-hd", "catvton": "catvton"}[profile]
    assert status["geometric_matching"] == status["cloth_warping"] == f"implicit in virtual_fitting:{backend}"
    assert status["virtual_fitting"] == "ran"
    assert Image.open(out).size == Image.open(person).size
