"""GAN try-on chains (CP-VTON, VITON-HD) and the RAFT refinement: inputs, networks, backends, end to end.

The networks' numerics are proven by tests/test_reference.py (fixtures of the original code).
Here: the inputs are built as the originals build them; the backends turn network outputs
into photo-size results; and the chains run from two real photos through the pipeline, steps
01-03 included (SCHP-LIP, OpenPose, cloth U^2-Net), with full-size random-weight checkpoints in
their released layouts, registered through an extra manifest in a temporary models folder
(nothing is downloaded: sockets are closed). The step 01-03 checkpoints are adjusted so their
backends give the chain something to work with (tests/checkpoint_writers.py: USABLE_OUTPUTS).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from reference_support import SHARED, load_layout

torch = pytest.importorskip("torch")

from checkpoint_writers import (  # noqa: E402
    USABLE_OUTPUTS,
    write_extra_manifest,
    write_random_checkpoints,
    write_released_random_checkpoint,
)
from vtryon.state import Keypoints, OPENPOSE18  # noqa: E402
from vtryon.vision import tryon_inputs as ti  # noqa: E402

PERSON = SHARED / "images" / "person" / "01008_00.jpg"
GARMENT = SHARED / "images" / "garment" / "00055_00.jpg"
PERSON_WIDE = SHARED / "images" / "person" / "model_5.png"
# steps 01-03 of the cp-vton and viton-hd profiles: schp-lip, openpose, cloth-u2net
PERCEPTION_IDS = ("schp_lip", "openpose_body", "cloth_segm_u2net")


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def perception_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The step 01-03 checkpoints both chains read, written once per session: full size, random,
    adjusted so their backends give the chain something (tests/checkpoint_writers.py says how)."""
    root = tmp_path_factory.mktemp("perception-models")
    return root, [write_released_random_checkpoint(mid, root, USABLE_OUTPUTS.get(mid)) for mid in PERCEPTION_IDS]


def chain_models(models: Path, perception: tuple[Path, list[str]], ids: list[str]) -> Path:
    """``models`` with random checkpoints for ``ids``, the session's step 01-03 checkpoints
    linked in, and the extra manifest registering all of them."""
    root, tables = perception
    tables = tables + [write_released_random_checkpoint(mid, models) for mid in ids]
    for mid in PERCEPTION_IDS:
        (models / mid).symlink_to(root / mid, target_is_directory=True)
    return write_extra_manifest(models / "random-weights.toml", tables)


def weight_files(models: Path) -> list[str]:
    """Checkpoint files under ``models`` (through the links), relative to it."""
    found = []
    for folder, _, files in os.walk(models, followlinks=True):
        weights = [f for f in files if Path(f).suffix in (".pth", ".pt", ".bin", ".safetensors")]
        found += [str((Path(folder) / f).relative_to(models)) for f in weights]
    return sorted(found)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt fails the test: the chains must download nothing."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _kp(points: dict[str, tuple[float, float]]) -> Keypoints:
    xy = np.zeros((18, 2), np.float32)
    conf = np.zeros(18, np.float32)
    for name, p in points.items():
        i = OPENPOSE18.index(name)
        xy[i], conf[i] = p, 1.0
    return Keypoints(xy, conf)


# ----------------------------------------------------------------------------------------
# inputs, as the originals build them
# ----------------------------------------------------------------------------------------


def test_frame_maps_points_both_ways_and_takes_a_3x4_photo_whole() -> None:
    parse = np.zeros((1024, 768), np.uint8)
    parse[100:1000, 200:560] = 5
    frame = ti.person_frame(parse, (256, 192))
    assert (frame.x0, frame.y0, frame.w, frame.h) == (0, 0, 768, 1024)
    pts = np.array([[0.0, 0.0], [767.0, 1023.0], [300.5, 17.25]])
    np.testing.assert_allclose(frame.to_image(frame.to_network(pts)), pts, atol=1e-9)
    # a wide photo: the 3:4 box stays inside it and covers the person
    wide = np.zeros((600, 1200), np.uint8)
    wide[50:580, 500:700] = 14
    f2 = ti.person_frame(wide, (256, 192))
    assert f2.w * 4 == pytest.approx(f2.h * 3, abs=4) and 0 <= f2.y0 and f2.y0 + f2.h <= 600
    assert f2.x0 <= 500 and f2.x0 + f2.w >= 700
    crop = f2.crop(np.dstack([wide] * 3), fill=(255, 255, 255))
    assert crop.shape == (256, 192, 3)


def test_cpvton_agnostic_channels() -> None:
    parse = np.zeros((256, 192), np.uint8)
    parse[20:60, 80:112] = 13  # face
    parse[60:200, 60:132] = 5  # upper clothes
    person = np.full((256, 192, 3), 200, np.uint8)
    kp = _kp({"nose": (96, 40), "neck": (96, 64), "r-shoulder": (1, 70)})  # x <= 1: not drawn
    frame = ti.Frame(0, 0, 192, 256, (256, 192))
    xy, present = ti.keypoints_in_frame(kp, frame)
    agn = ti.cpvton_agnostic(person, parse, xy, present)
    stack = agn.stack()
    assert stack.shape == (22, 256, 192) and stack.dtype == np.float32
    assert stack.min() >= -1 and stack.max() <= 1
    # body shape: parse > 0 through 12x16 and back, blurred (not binary), -1 far from the body
    assert agn.shape[0, 0] == -1 and agn.shape[128, 96] > 0.5 and ((agn.shape > -0.99) & (agn.shape < 0.99)).any()
    # head: RGB where face, -1 elsewhere
    assert np.allclose(agn.head[:, 40, 96], 200 / 127.5 - 1) and np.all(agn.head[:, 128, 96] == -1)
    # pose: an 11x11 square of +1 per drawn keypoint, none for missing or x <= 1
    assert (agn.pose[0] == 1).sum() == 121 and agn.pose[0, 40, 96] == 1 and agn.pose[0, 40, 102] == -1
    assert (agn.pose[2] == 1).sum() == 0 and (agn.pose[5] == 1).sum() == 0


def test_vitonhd_label_merges_cover_every_lip_label_once() -> None:
    lip = np.arange(20, dtype=np.uint8)[None].repeat(2, 0)
    onehot = ti.merge_labels(lip, ti.VITONHD_13_FROM_LIP)
    assert onehot.shape == (13, 2, 20) and np.all(onehot.sum(0) == 1)
    assert onehot[0, 0, 10] == 1 and onehot[12, 0, 3] == 1 and onehot[12, 0, 11] == 1 and onehot[3, 0, 6] == 1
    labels13 = np.arange(13, dtype=np.uint8)[None]
    seven = ti.merge_labels(labels13, ti.VITONHD_7_FROM_13)
    assert np.all(seven.sum(0) == 1) and seven[1, 0, 2] == 1 and seven[2, 0, 3] == 1 and seven[6, 0, 12] == 1


def _upper_body(size: tuple[int, int] = (1024, 768)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = size
    parse = np.zeros(size, np.uint8)
    parse[80:250, 300:470] = 13  # face
    parse[250:700, 250:520] = 5  # upper clothes
    parse[260:700, 520:600] = 14  # the person's left arm: on the image right, as LIP labels it
    parse[260:700, 170:250] = 15
    parse[700:1000, 260:510] = 9  # pants
    image = np.full(size + (3,), 230, np.uint8)
    image[parse == 13] = (200, 150, 120)
    image[parse == 5] = (20, 40, 200)
    pose = np.zeros((25, 2))
    for i, p in {1: (385, 260), 2: (280, 270), 3: (210, 450), 4: (210, 620), 5: (490, 270), 6: (560, 450),
                 7: (560, 620), 9: (320, 690), 12: (450, 690), 0: (385, 160)}.items():
        pose[i] = p
    return parse, image, pose


def test_vitonhd_parse_agnostic_removes_garment_arms_and_neck() -> None:
    parse, _, pose = _upper_body()
    parse[250:256, 360:410] = 10  # VITON-HD's parser puts the neck on label 10
    agn = ti.vitonhd_parse_agnostic(parse, pose)
    assert not np.isin(agn, (5, 6, 7, 10)).any()
    assert (agn[80:250, 300:470] == 13).all() and (agn[700:1000, 260:510] == 9).all()
    # upper arms near the pose lines are removed, hands far below the wrist-radius are kept
    assert agn[450, 210] == 0 and agn[450, 560] == 0
    assert agn[690, 560] == 14 and agn[690, 210] == 15  # 70 px below the wrists, beyond their 40 px disks


def test_vitonhd_img_agnostic_greys_torso_keeps_head_and_lower_body() -> None:
    parse, image, pose = _upper_body()
    agn = ti.vitonhd_img_agnostic(image, parse, pose)
    assert tuple(agn[450, 385]) == (128, 128, 128)  # torso
    assert tuple(agn[450, 210]) == (128, 128, 128)  # along the arm
    assert (agn[parse == 13] == image[parse == 13]).all() and (agn[parse == 9] == image[parse == 9]).all()
    assert tuple(agn[20, 20]) == (230, 230, 230)  # background far from the body


def test_openpose_rendering_matches_openpose_colours_and_widths() -> None:
    _, _, pose = _upper_body()
    conf = (np.abs(pose).sum(1) > 0).astype(np.float32)
    img = ti.render_openpose_body25(pose, conf, (1024, 768))
    assert img.shape == (1024, 768, 3) and tuple(img[5, 5]) == (0, 0, 0)
    # limb 3-4 (right elbow-wrist) is drawn in keypoint 4's colour, (255, 255, 0)
    assert tuple(img[535, 210]) == (255, 255, 0)
    # limb 6-7 in keypoint 7's colour (0, 255, 0); the line is round(ratio * 0.75) wide
    assert tuple(img[535, 560]) == (0, 255, 0)
    ratio = min(1.0, max(280 / 768, 530 / 1024))
    thick = max(int(round(np.sqrt(768 * 1024) / 75 * ratio)), 2)
    width = int((img[535, :, 1] == 255).sum() - (img[535, :, 0] == 255).sum())  # green-only pixels of limb 6-7
    assert abs(width - max(1, round(thick * 0.75))) <= 1


def test_binary_noise_is_seeded_and_about_16_percent_ones() -> None:
    a = ti.binary_noise((1, 256, 192), np.random.default_rng(3))
    b = ti.binary_noise((1, 256, 192), np.random.default_rng(3))
    assert set(np.unique(a)) <= {0.0, 1.0} and np.array_equal(a, b)
    assert 0.14 < a.mean() < 0.18


def test_tom_composition_is_evaluated_at_photo_resolution_inside_the_paste_region() -> None:
    person = np.full((400, 300, 3), 10, np.uint8)
    cloth = np.zeros((400, 300, 3), np.uint8)
    cloth[:, ::2] = 250  # detail finer than 256x192 could carry
    frame = ti.Frame(0, 0, 300, 400, (256, 192))
    rendered = np.full((256, 192, 3), 100, np.uint8)
    alpha = np.zeros((256, 192), np.float32)
    alpha[64:192, 48:144] = 1.0
    m_cloth = ti.compose_at_photo_resolution(person, frame, rendered, np.ones((256, 192)), cloth, alpha)
    m_render = ti.compose_at_photo_resolution(person, frame, rendered, np.zeros((256, 192)), cloth, alpha)
    assert (m_cloth[200, 100:110] == cloth[200, 100:110]).all()  # the garment's full-resolution stripes
    assert (m_render[200, 150] == 100).all() and (m_cloth[10, 10] == 10).all()  # outside alpha: the photo


# ----------------------------------------------------------------------------------------
# networks: the parts the fixtures do not exercise
# ----------------------------------------------------------------------------------------


def test_tps_with_zero_theta_is_the_identity_grid() -> None:
    from vtryon.archs.cpvton import tps_grid

    for extent in (1.0, 0.9):
        grid = tps_grid(torch.zeros(1, 50), 16, 12, 5, extent)[0]
        assert torch.allclose(grid[..., 0], torch.linspace(-extent, extent, 12).expand(16, 12), atol=1e-5)
        assert torch.allclose(grid[..., 1], torch.linspace(-extent, extent, 16)[:, None].expand(16, 12), atol=1e-5)


def test_gmm_grid_becomes_a_photo_size_map_into_garment_pixels() -> None:
    from vtryon.archs.cpvton import tps_grid

    grid = tps_grid(torch.zeros(1, 50), 256, 192, 5, 1.0)[0].numpy()
    person = ti.Frame(100, 50, 384, 512, (256, 192))
    garment = ti.Frame(0, 0, 768, 1024, (256, 192))
    map_net = garment.to_image(ti.grid_to_pixels(grid, (256, 192), align_corners=True))
    map_xy = ti.network_map_to_person(map_net, person, (600, 500))
    assert map_xy.shape == (600, 500, 2) and map_xy.dtype == np.float32
    assert (map_xy[:50] == ti.OUTSIDE).all() and (map_xy[:, :100] == ti.OUTSIDE).all()
    # identity TPS: the person box's centre samples the garment box's centre
    np.testing.assert_allclose(map_xy[50 + 256, 100 + 192], (383.5, 511.5), atol=3.0)


def test_alias_noise_is_one_seeded_map_scaled_per_channel_and_switchable() -> None:
    import torch.nn.functional as F

    from vtryon.archs.vitonhd import ALIASNorm, NoiseSource

    torch.manual_seed(0)
    norm = ALIASNorm(4, 8, mask_norm=True).eval()
    norm.noise_scale.data = torch.tensor([0.0, 0.5, 1.0, 2.0])
    x, seg = torch.randn(1, 4, 16, 12), torch.rand(1, 8, 16, 12)
    mask = (torch.rand(1, 1, 16, 12) > 0.5).float()
    with torch.no_grad():
        off = norm(x, seg, mask, NoiseSource(enabled=False))
        a = norm(x, seg, mask, NoiseSource(torch.Generator().manual_seed(1)))
        b = norm(x, seg, mask, NoiseSource(torch.Generator().manual_seed(1)))
        c = norm(x, seg, mask, NoiseSource(torch.Generator().manual_seed(2)))
        # the original: noise = (randn(b, w, h, 1) * noise_scale).transpose(1, 3), added before the norm
        z = torch.randn(1, 12, 16, 1, generator=torch.Generator().manual_seed(1))
        expected = norm(x + (z * norm.noise_scale).transpose(1, 3), seg, mask, NoiseSource(enabled=False))
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.allclose(a, expected, atol=1e-6)
    assert torch.equal(a[:, 0], off[:, 0]) and not torch.equal(a[:, 3], off[:, 3])  # scale 0: no noise
    assert not torch.equal(F.instance_norm(x), off)  # the mask norm is not a plain instance norm


def test_raft_released_names_map_onto_torchvision_and_drop_the_norm3_alias() -> None:
    from vtryon.archs.raft import released_to_module_keys

    keys = load_layout("raft_things")["tensors"]
    mapped = released_to_module_keys({k[len("module."):]: k for k in keys})
    assert "context_encoder.layer2.0.downsample.1.weight" in mapped
    assert not any("norm3" in k for k in mapped)
    assert mapped["update_block.recurrent_block.convgru2.convq.weight"] == "module.update_block.gru.convq2.weight"
    assert mapped["mask_predictor.conv.bias"] == "module.update_block.mask.2.bias"
    assert mapped["feature_encoder.convnormrelu.0.weight"] == "module.fnet.conv1.weight"


def test_layout_blur_equals_torchgeometry_zero_padded_2d_gaussian() -> None:
    import torch.nn.functional as F

    from vtryon.steps.geometric_matching.vitonhd import segmentation_to_labels

    torch.manual_seed(0)
    probs = torch.rand(1, 13, 32, 24)
    labels = segmentation_to_labels(probs, (64, 48))
    up = F.interpolate(probs, size=(64, 48), mode="bilinear", align_corners=False)
    g = torch.from_numpy(ti.gaussian_kernel(15, 3.0))
    kernel = (g[:, None] * g[None, :]).expand(13, 1, 15, 15)
    expected = F.conv2d(up, kernel, padding=7, groups=13).argmax(1)[0].numpy()
    assert (labels == expected).mean() > 0.999


# ----------------------------------------------------------------------------------------
# end to end
# ----------------------------------------------------------------------------------------


PROFILE_BACKENDS = {
    "cp-vton": ["schp-lip", "openpose", "cloth-u2net", "cpvton-gmm", "embedded", "cpvton-tom", "embedded", "embedded"],
    "viton-hd": ["schp-lip", "openpose", "cloth-u2net", "vitonhd-gmm", "embedded", "vitonhd-alias", "embedded", "embedded"],
}


def test_cp_vton_runs_end_to_end_from_two_photos(
    tmp_path: Path, no_network: None, perception_models: tuple[Path, list[str]]
) -> None:
    """`vtryon run --profile cp-vton`: SCHP-LIP, OpenPose, cloth U^2-Net, GMM, TOM, all with
    full-size random-weight checkpoints. Random parsers and segmenters give one label over the
    whole photo, so where the garment lands is not checked here (the fixtures prove the
    numerics); what is checked is that every step's output reaches the next one."""
    from typer.testing import CliRunner

    from vtryon.cli import app
    from vtryon.imageio import load_image

    models = tmp_path / "models"
    extra = chain_models(models, perception_models, ["cpvton_gmm", "cpvton_tom"])
    out = tmp_path / "result.png"
    steps = tmp_path / "steps"
    result = CliRunner().invoke(app, [
        "run", str(PERSON), str(GARMENT), "--profile", "cp-vton", "-o", str(out), "--save-steps", str(steps),
        "--models-dir", str(models), "--manifest", str(extra), "--json",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert [s["status"] for s in summary["steps"]] == ["ran"] * 8
    assert [s["backend"] for s in summary["steps"]] == PROFILE_BACKENDS["cp-vton"]
    person = load_image(PERSON)
    image = load_image(out)
    assert image.shape == person.shape
    names = {p.name for p in steps.glob("*.png")}
    for expected in ("01_parsing.png", "02_pose.png", "03_garment_mask.png", "04_cpvton_pose_maps.png",
                     "04_warp_grid.png", "05_warped_garment.png", "06_tom_try-on_256x192.png"):
        assert expected in names, sorted(names)
    # step 02's 18 keypoints reach the agnostic: one 11x11 square of +1 per keypoint (some overlap)
    pose_maps = load_image(steps / "04_cpvton_pose_maps.png")
    assert 10 * 121 <= (pose_maps.min(-1) > 200).sum() <= 18 * 121
    changed = np.abs(image.astype(int) - person.astype(int)).sum(-1) > 0
    assert changed.mean() > 0.05
    metrics = json.loads((steps / "summary.json").read_text())["quality"]["metrics"]
    assert 0 < metrics["changed_fraction"] <= 1
    # nothing was fetched: the models folder holds what the test wrote
    assert weight_files(models) == [
        "cloth_segm_u2net/cloth_segm_u2net_latest.pth", "cpvton_gmm/gmm_final.pth", "cpvton_tom/tom_final.pth",
        "openpose_body/body_pose_model.pth", "schp_lip/exp-schp-201908261155-lip.pth",
    ]


def test_viton_hd_runs_end_to_end_at_a_reduced_generator_size(
    tmp_path: Path, no_network: None, perception_models: tuple[Path, list[str]]
) -> None:
    """Full-size checkpoints; ALIAS at 512x384 to keep the test short (1024x768 is the benchmark's)."""
    from vtryon.runner import RunRequest, run_tryon

    models = tmp_path / "models"
    extra = chain_models(models, perception_models, ["vitonhd_seg", "vitonhd_gmm", "vitonhd_alias"])
    req = RunRequest(
        person=PERSON_WIDE, garment=GARMENT, output=tmp_path / "result.png", profile="viton-hd",
        save_steps=tmp_path / "steps", models_dir=models, manifests=(extra,), seed=7,
        options={"vitonhd_load_size": (512, 384)},
    )
    outcome = run_tryon(req)
    state = outcome.state
    assert [r.status for r in state.records] == ["ran"] * 8
    assert [r.backend for r in state.records] == PROFILE_BACKENDS["viton-hd"]
    # steps 01-03 from the networks: LIP labels, OpenPose-18 with both shoulders, a cloth mask
    assert state.parsing.dtype == np.uint8 and state.parsing.shape == state.size and 0 < state.parsing.max() < 20
    kp = state.keypoints
    assert kp.conf[OPENPOSE18.index("r-shoulder")] > 0 and kp.conf[OPENPOSE18.index("l-shoulder")] > 0
    assert ((kp.xy >= 0) & (kp.xy < np.array(state.size[::-1]))).all()
    assert set(np.unique(state.garment_mask)) <= {0, 255} and state.garment_mask.any()
    assert state.aux["garment_class"] in ("upper", "lower", "dress")
    v = state.aux["vitonhd"]
    assert v["img_agnostic"].shape == (1024, 768, 3) and v["pose_rgb"].shape == (1024, 768, 3)
    assert (v["pose_rgb"].max(-1) > 0).mean() > 0.005  # the skeleton of step 02, drawn as OpenPose draws it
    assert v["parse7"].shape == (1024, 768) and v["parse7"].max() <= 6
    assert state.warp.map_xy.shape == state.size + (2,)
    alias = state.aux["vitonhd_alias"]
    assert alias["tryon"].shape == (512, 384, 3)
    assert state.tryon.shape == state.person.shape and state.result.shape == state.person.shape
    changed = state.aux["changed_region"]
    assert changed.dtype == bool and changed.any() and (state.tryon[~changed] == state.person[~changed]).all()
    names = {p.name for p in (tmp_path / "steps").glob("*.png")}
    assert {"01_parsing.png", "02_pose.png", "03_garment_mask.png", "04_vitonhd_openpose_rendering.png",
            "04_vitonhd_predicted_layout.png", "06_alias_try-on_512x384.png"} <= names


def test_tps_raft_backend_refines_the_warp_with_a_released_layout_checkpoint(tmp_path: Path, no_network: None) -> None:
    from vtryon.models.pool import ModelPool
    from vtryon.state import TryOnState, Warp
    from vtryon.steps.base import RunContext
    from vtryon.steps.cloth_warping.raft_refine import RaftRefinedWarping

    models = tmp_path / "models"
    extra = write_random_checkpoints(["raft_things"], models)
    h, w = 240, 180
    person = np.full((h, w, 3), 200, np.uint8)
    garment = np.full((h, w, 3), 255, np.uint8)
    garment[60:200, 40:140] = (200, 30, 30)
    gmask = np.zeros((h, w), np.uint8)
    gmask[60:200, 40:140] = 255
    parsing = np.zeros((h, w), np.uint8)
    parsing[50:190, 50:150] = 5  # the body's garment region, 10 px off the warped garment
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    warp = Warp(np.stack([gx, gy], -1), np.zeros((0, 2)), np.zeros((0, 2)), ())
    state = TryOnState(person=person, garment=garment, garment_mask=gmask, parsing=parsing, warp=warp)
    ctx = RunContext(models=ModelPool(models_dir=models, manifest=[extra]), options={"raft_iters": 2, "raft_long_side": 160})
    backend = RaftRefinedWarping()
    backend.run(state, ctx)
    assert state.warped_garment.shape == (h, w, 3) and state.warped_mask.shape == (h, w)
    assert state.aux["raft_flow"].shape == (h, w, 2) and np.isfinite(state.aux["raft_flow"]).all()
    assert set(backend.pictures(state)) == {"warped garment (tps+raft)", "warped garment (tps only)", "raft flow"}
