"""Pose networks (OpenPose body, HRNet) and their pre/post-processing.

The networks themselves are proven by tests/test_reference.py (layouts and fixtures); here:
the OpenPose key mapping against the layout's table, widths read back from shapes, the PAF
grouping and heatmap decoding on synthetic maps whose right answer is known, the flip test,
the affine crop round trip, COCO-17 -> OpenPose-18, and the backends end to end through the
model pool with full-size random-weight checkpoints.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from reference_support import LAYOUT_DIR

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from vtryon.state import KP, OPENPOSE18, Keypoints  # noqa: E402
from vtryon.vision import keypoints as kpt  # noqa: E402

SMALL_OPENPOSE = {"vgg": [8, 16, 32, 64], "cpm": [32, 16], "stage1": [16, 64], "stage": 16}


# ------------------------------------------------------------------ architectures

def test_openpose_key_mapping_is_the_layouts() -> None:
    from vtryon.archs.openpose import build, released_to_module_keys

    table = json.loads((LAYOUT_DIR / "openpose_body.json").read_text())["wrapper"]["module_key_to_file_key"]
    file_keys = {v: None for v in table.values()}
    assert released_to_module_keys(file_keys).keys() == table.keys()
    with torch.device("meta"):
        assert set(build().state_dict()) == set(table)
    # a name the network lacks is passed through, so strict loading reports it
    assert "extra.weight" in released_to_module_keys({"extra.weight": None})


def test_openpose_keeps_the_final_heatmap_relu() -> None:
    from vtryon.archs.openpose import build

    torch.manual_seed(0)
    model = build(SMALL_OPENPOSE).eval()
    assert isinstance(model.model6_2[-1], torch.nn.ReLU)  # the original's no_relu_layers typo
    assert isinstance(model.model6_1[-1], torch.nn.Conv2d)
    assert isinstance(model.model5_2[-1], torch.nn.Conv2d)
    with torch.no_grad():
        pafs, heat = model(torch.rand(1, 3, 64, 48) - 0.5)
    assert pafs.shape == (1, 38, 8, 6) and heat.shape == (1, 19, 8, 6)


@pytest.mark.parametrize(
    "arch, config",
    [
        ("openpose", {**SMALL_OPENPOSE, "pafs": 38, "heatmaps": 19}),
        ("hrnet", {"widths": [4, 8, 16, 32], "modules": [1, 4, 3], "blocks": 4, "stem": 64, "layer1_blocks": 4, "joints": 17, "final_kernel": 1}),
        ("hrnet", {"widths": [6, 12, 24, 48], "modules": [1, 2, 1], "blocks": 2, "stem": 64, "layer1_blocks": 4, "joints": 17, "final_kernel": 3}),
    ],
)
def test_config_read_back_from_shapes(arch: str, config: dict) -> None:
    import importlib

    mod = importlib.import_module(f"vtryon.archs.{arch}")
    with torch.device("meta"):
        state = mod.build(config).state_dict()
    assert mod.config_from_state_dict(state) == config


# ------------------------------------------------------------------ OpenPose decoding

H, W = 200, 240
# one standing person (x, y) in OpenPose-18 order
BODY = np.array([
    (60, 30), (60, 50), (45, 50), (40, 75), (38, 100), (75, 50), (80, 75), (82, 100), (50, 100),
    (50, 135), (50, 170), (70, 100), (70, 135), (70, 170), (55, 25), (65, 25), (50, 28), (70, 28),
], dtype=float)


def _synthetic_maps(people: list[np.ndarray], skip_limb: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian heatmaps at each part and unit PAFs along each limb (3 px wide)."""
    from vtryon.steps.pose.openpose import LIMBS, PAF_CHANNELS

    yy, xx = np.mgrid[0:H, 0:W].astype(float)
    heat = np.zeros((H, W, 19), np.float32)
    pafs = np.zeros((H, W, 38), np.float32)
    for body in people:
        for part, (x, y) in enumerate(body):
            heat[:, :, part] = np.maximum(heat[:, :, part], np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 4.0**2)))
        for k, ((a, b), (cx, cy)) in enumerate(zip(LIMBS, PAF_CHANNELS)):
            if k == skip_limb:
                continue
            pa, pb = body[a], body[b]
            d = pb - pa
            length = np.hypot(*d)
            u = d / length
            t = ((xx - pa[0]) * u[0] + (yy - pa[1]) * u[1])
            dist = np.abs((xx - pa[0]) * u[1] - (yy - pa[1]) * u[0])
            band = (t >= -2) & (t <= length + 2) & (dist <= 3)
            pafs[band, cx], pafs[band, cy] = u[0], u[1]
    return heat, pafs


def _decode(heat: np.ndarray, pafs: np.ndarray):
    from vtryon.steps.pose.openpose import assemble_people, connect_limbs, find_peaks

    peaks = find_peaks(heat)
    return peaks, assemble_people(peaks, connect_limbs(peaks, pafs, H))


def test_smoothing_is_scipys_gaussian_filter() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    from vtryon.steps.pose.openpose import smooth

    rng = np.random.default_rng(0)
    a = rng.random((37, 53)).astype(np.float32)
    np.testing.assert_allclose(smooth(a), ndimage.gaussian_filter(a.astype(np.float64), sigma=3), atol=1e-7)


def test_peaks_are_at_the_blobs_with_running_ids() -> None:
    heat, _ = _synthetic_maps([BODY, BODY + [120, 0]])
    peaks, _ = _decode(heat, np.zeros((H, W, 38), np.float32))
    assert len(peaks) == 18
    ids = np.concatenate([p[:, 3] for p in peaks])
    np.testing.assert_array_equal(ids, np.arange(36))
    for part, p in enumerate(peaks):
        assert sorted(map(tuple, p[:, :2])) == sorted([tuple(BODY[part]), tuple(BODY[part] + [120, 0])])
        np.testing.assert_allclose(p[:, 2], 1.0, atol=1e-6)


def test_paf_grouping_separates_two_people() -> None:
    from vtryon.steps.pose.openpose import main_person

    second = BODY + [120, 5]
    heat, pafs = _synthetic_maps([BODY, second])
    _, (cand, people) = _decode(heat, pafs)
    assert people.shape == (2, 20)
    assert (people[:, -1] == 18).all()  # every part joined to its own person
    got = sorted(tuple(cand[people[r, :18].astype(int), :2].ravel()) for r in range(2))
    want = sorted(tuple(b.ravel()) for b in (BODY, second))
    np.testing.assert_allclose(np.array(got), np.array(want))
    kp = main_person(cand, people)
    assert kp.conf.min() == pytest.approx(1.0)


def test_paf_grouping_follows_the_fields_not_the_distance() -> None:
    """Without the neck-r-shoulder field, the right arm is not joined through that limb, and
    the main person is the most complete one."""
    from vtryon.steps.pose.openpose import main_person

    heat, pafs = _synthetic_maps([BODY], skip_limb=0)  # limb 0: neck -> r-shoulder
    _, (cand, people) = _decode(heat, pafs)
    kp = main_person(cand, people)
    # the r-shoulder is still reached through the r-ear -> r-shoulder limb (17)
    np.testing.assert_allclose(kp.xy[KP["r-shoulder"]], BODY[KP["r-shoulder"]])
    heat, pafs = _synthetic_maps([BODY], skip_limb=2)  # limb 2: r-shoulder -> r-elbow
    _, (cand, people) = _decode(heat, pafs)
    kp = main_person(cand, people)
    assert kp.conf[KP["r-elbow"]] == 0 and kp.conf[KP["r-wrist"]] == 0  # their own 2-part person is dropped
    assert kp.conf[KP["l-wrist"]] == pytest.approx(1.0)


def test_limb_score_needs_the_field_to_point_along_the_limb() -> None:
    from vtryon.steps.pose.openpose import score_limb

    field = np.zeros((H, W, 2), np.float32)
    field[:, :, 0] = 1.0  # pointing +x everywhere
    a, b = np.array([20.0, 50.0]), np.array([80.0, 50.0])
    assert score_limb(field, a, b, H) == pytest.approx(1.0)
    assert score_limb(field, b, a, H) is None
    # a long limb pays the distance prior: 0.5 * H / norm - 1 < 0
    far = np.array([219.0, 50.0])
    assert score_limb(field, a, far, H) == pytest.approx(1.0 + 0.5 * H / 199.0 - 1)


def test_no_person_gives_all_missing() -> None:
    from vtryon.steps.pose.openpose import main_person

    _, (cand, people) = _decode(np.zeros((H, W, 19), np.float32), np.zeros((H, W, 38), np.float32))
    kp = main_person(cand, people)
    assert (kp.conf == 0).all() and (kp.xy == 0).all()


class _BrightnessNet(torch.nn.Module):
    """A stand-in network whose heatmaps are the input brightness at stride 8 (PAFs zero)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        self.inputs: list[tuple[int, ...]] = []

    def forward(self, x):
        self.inputs.append(tuple(x.shape))
        heat = torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), 8).repeat(1, 19, 1, 1)
        return torch.zeros(x.shape[0], 38, *heat.shape[2:]), heat


@pytest.mark.parametrize("scales", [(0.5,), (0.5, 1.0)])
def test_openpose_maps_are_aligned_with_the_photo(scales) -> None:
    from vtryon.steps.pose.openpose import openpose_maps

    img = np.zeros((300, 230, 3), np.uint8)
    img[180:220, 60:100] = 255
    net = _BrightnessNet()
    heat, pafs = openpose_maps(net, img, scales)
    assert heat.shape == (300, 230, 19) and pafs.shape == (300, 230, 38)
    for shape, s in zip(net.inputs, scales):
        side = s * 368 / 300
        assert shape[2] % 8 == 0 and shape[3] % 8 == 0
        assert shape[2] - 8 < round(300 * side) <= shape[2]
    y, x = np.unravel_index(heat[:, :, 0].argmax(), heat.shape[:2])
    assert 180 - 8 <= y < 220 + 8 and 60 - 8 <= x < 100 + 8
    # the padding (128 -> 0.0 after /256 - 0.5) does not leak as a bright border
    assert heat[:, :, 0][:, -5:].max() < heat[:, :, 0].max() / 2


# ------------------------------------------------------------------ HRNet decoding

def test_heatmap_peaks_quarter_pixel_shift() -> None:
    hm = np.zeros((3, 16, 12), np.float32)
    hm[0, 7, 5], hm[0, 7, 6], hm[0, 7, 4] = 1.0, 0.6, 0.2  # right neighbour higher: +0.25 x
    hm[0, 8, 5], hm[0, 6, 5] = 0.1, 0.3  # upper neighbour higher: -0.25 y
    hm[1, 1, 5] = 0.5  # on the original's strict border (py == 1): no shift
    hm[2] = -1.0  # nothing above 0: (0, 0)
    hm[2, 4, 4] = -0.5
    coords, maxvals = kpt.heatmap_peaks(hm)
    np.testing.assert_allclose(coords, [[5.25, 6.75], [5, 1], [0, 0]])
    np.testing.assert_allclose(maxvals, [1.0, 0.5, -0.5])


def test_flip_back_swaps_pairs_mirrors_and_shifts() -> None:
    flipped = np.zeros((1, 17, 8, 10), np.float32)
    flipped[0, KP_COCO["l-shoulder"], 3, 2] = 1.0  # the mirrored image's left shoulder ...
    flipped[0, 0, 5, 9] = 1.0
    back = kpt.flip_back(flipped, kpt.COCO17_FLIP_PAIRS, shift=True)
    # ... is the original's right shoulder, mirrored (10 - 1 - 2 = 7) and shifted one pixel right
    assert back[0, KP_COCO["r-shoulder"], 3, 8] == 1.0 and back[0, KP_COCO["r-shoulder"]].sum() == 1.0
    assert back[0, KP_COCO["l-shoulder"]].sum() == 0
    assert back[0, 0, 5, 1] == 1.0  # column 0 came from column 9, then shifted
    unshifted = kpt.flip_back(flipped, kpt.COCO17_FLIP_PAIRS, shift=False)
    np.testing.assert_array_equal(kpt.flip_back(unshifted, kpt.COCO17_FLIP_PAIRS, shift=False), flipped)


KP_COCO = {name: i for i, name in enumerate(kpt.COCO17)}


def test_box_to_center_scale_pads_to_the_aspect_ratio() -> None:
    c, s = kpt.box_to_center_scale((100, 50, 100, 300), 0.75)  # too narrow: widened
    np.testing.assert_allclose(c, [150, 200])
    np.testing.assert_allclose(s, [225 / 200 * 1.25, 300 / 200 * 1.25])
    c, s = kpt.box_to_center_scale((0, 0, 300, 100), 0.75)  # too wide: heightened
    np.testing.assert_allclose(s, [300 / 200 * 1.25, 400 / 200 * 1.25])


def test_crop_matrix_is_the_originals_three_point_affine_and_round_trips() -> None:
    center, scale = np.array([310.0, 420.0]), np.array([2.4, 3.2])
    size = (192, 256)
    src_w = scale[0] * 200
    # the original's construction: centre, a point half a box width above, and a third at right angles
    src = np.float32([center, center + [0, -src_w / 2], center + [-src_w / 2, -src_w / 2]])
    dst = np.float32([[96, 128], [96, 128 - 96], [96 - 96, 128 - 96]])
    np.testing.assert_allclose(kpt.crop_matrix(center, scale, size), cv2.getAffineTransform(src, dst), atol=1e-4)
    fwd, inv = kpt.crop_matrix(center, scale, size), kpt.crop_matrix(center, scale, size, inverse=True)
    pts = np.array([[0.0, 0.0], [310, 420], [123.4, 567.8]])
    np.testing.assert_allclose(kpt.transform_points(kpt.transform_points(pts, fwd), inv), pts, atol=1e-9)
    # a marker in the photo lands where the matrix says in the crop
    img = np.zeros((900, 700, 3), np.uint8)
    img[395:405, 245:255] = 255
    patch = kpt.crop(img, center, scale, size)
    ys, xs = np.nonzero(patch[:, :, 0] > 127)
    np.testing.assert_allclose([xs.mean(), ys.mean()], kpt.transform_points([[249.5, 399.5]], fwd)[0], atol=0.6)


def test_heatmaps_to_image_maps_a_peak_back_through_the_box() -> None:
    center, scale = np.array([300.0, 500.0]), np.array([3.0, 4.0])
    hm = np.zeros((17, 64, 48), np.float32)
    hm[:, 16, 36] = 1.0  # a quarter of the way down, three quarters across
    xy, maxvals = kpt.heatmaps_to_image(hm, center, scale)
    # the heatmap spans the box: 600 x 800 px, 12.5 px per cell, centre (24, 32) -> (300, 500)
    np.testing.assert_allclose(xy, np.tile([[300 + 12 * 12.5, 500 - 16 * 12.5]], (17, 1)))
    np.testing.assert_allclose(maxvals, 1.0)


def test_coco17_to_openpose18() -> None:
    xy = np.array([[i * 10.0, i * 10.0 + 1] for i in range(17)])
    conf = np.linspace(0.1, 0.9, 17)
    kp = kpt.coco17_to_openpose18(xy, conf)
    assert kp.xy.shape == (18, 2)
    for name in OPENPOSE18:
        if name != "neck":
            np.testing.assert_allclose(kp.xy[KP[name]], xy[KP_COCO[name]])
            assert kp.conf[KP[name]] == pytest.approx(conf[KP_COCO[name]])
    np.testing.assert_allclose(kp.xy[KP["neck"]], (xy[5] + xy[6]) / 2)
    assert kp.conf[KP["neck"]] == pytest.approx(min(conf[5], conf[6]))
    conf[KP_COCO["r-shoulder"]] = 0
    kp = kpt.coco17_to_openpose18(xy, conf)
    assert kp.conf[KP["neck"]] == 0 and (kp.xy[KP["neck"]] == 0).all()


def test_points_outside_the_photo_become_missing() -> None:
    kp = Keypoints(np.tile([[5.0, 5.0]], (18, 1)), np.ones(18))
    kp.xy[3] = (-1, 5)
    kp.xy[4] = (5, 100)
    out = kpt.drop_outside(kp, (100, 50))
    assert out.conf[3] == 0 and out.conf[4] == 0 and (out.xy[3] == 0).all()
    assert out.conf[0] == 1


class _DotNet(torch.nn.Module):
    """A stand-in HRNet whose 17 heatmaps are the crop's brightness at stride 4."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), 4).repeat(1, 17, 1, 1)


def test_hrnet_estimate_finds_the_dot_through_crop_flip_and_back() -> None:
    from vtryon.steps.pose.hrnet import estimate

    img = np.zeros((1024, 768, 3), np.uint8)
    img[600:612, 300:312] = 255  # the "joint", centre (305.5, 605.5)
    box = (200.0, 300.0, 300.0, 500.0)
    kp = estimate(_DotNet(), img, box, (192, 256))
    _, scale = kpt.box_to_center_scale(box, 0.75)
    cell = scale[0] * 200 / 48  # image pixels per heatmap cell
    for name in ("nose", "r-wrist", "l-ankle", "neck"):
        assert np.abs(kp.xy[KP[name]] - [305.5, 605.5]).max() <= 1.5 * cell
        assert 0 < kp.conf[KP[name]] <= 1


def test_person_box_prefers_parsing_then_mask_then_photo() -> None:
    from vtryon.state import TryOnState
    from vtryon.steps.pose.hrnet import person_box

    state = TryOnState(person=np.zeros((100, 80, 3), np.uint8), garment=np.zeros((10, 10, 3), np.uint8))
    assert person_box(state) == (0, 0, 80, 100)
    mask = np.zeros((100, 80), np.uint8)
    mask[10:20, 30:35] = 255
    state.aux["person_mask"] = mask
    assert person_box(state) == (30, 10, 5, 10)
    parsing = np.zeros((100, 80), np.uint8)
    parsing[40:90, 5:60] = 13
    state.parsing = parsing
    assert person_box(state) == (5, 40, 55, 50)


# ------------------------------------------------------------------ backends through the model pool

PERSON_DIR = LAYOUT_DIR.parent.parent / "images" / "person"


def _no_network(monkeypatch) -> None:
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("the pose backend tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_hrnet_w32_end_to_end_on_a_photo_through_the_pool(tmp_path, monkeypatch) -> None:
    """A full-size random-weight pose_hrnet_w32_256x192.pth in the released layout (bare state
    dict, num_batches_tracked included), registered through an extra manifest with its size
    and sha256, run on a real photo by the hrnet-w32 backend."""
    import hashlib

    pytest.importorskip("vtryon.models.pool")
    from vtryon.archs.hrnet import build
    from vtryon.imageio import load_image
    from vtryon.models.pool import ModelPool
    from vtryon.state import TryOnState
    from vtryon.steps import load_backend
    from vtryon.steps.base import RunContext

    _no_network(monkeypatch)
    torch.manual_seed(0)
    net = build({"widths": [32, 64, 128, 256]})
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
    state_dict = net.state_dict()
    assert sum(p.numel() for p in net.parameters()) == 28_536_113  # the released parameter count
    del net
    models = tmp_path / "models"
    (models / "hrnet_w32_256x192").mkdir(parents=True)
    ckpt = models / "hrnet_w32_256x192" / "pose_hrnet_w32_256x192.pth"
    torch.save(state_dict, ckpt)
    del state_dict
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    manifest = tmp_path / "extra.toml"
    manifest.write_text(
        "[models.hrnet_w32_256x192]\nstep = \"pose\"\narch = \"hrnet_pose\"\n"
        f"file = \"{ckpt.name}\"\nwrapper = {{}}\nsize = {ckpt.stat().st_size}\nsha256 = \"{sha}\"\n"
    )
    before = {p.name for p in models.rglob("*") if p.suffix in (".pth", ".safetensors", ".bin", ".pt")}

    photo = sorted(PERSON_DIR.glob("*.jpg"))[0]
    person = load_image(photo, role="person image")
    state = TryOnState(person=person, garment=np.zeros((8, 8, 3), np.uint8))
    pool = ModelPool(device="cpu", models_dir=models, manifest=[manifest])
    backend = load_backend("pose", "hrnet-w32")()
    backend.run(state, RunContext(models=pool))

    kp = state.keypoints
    assert kp is not None and kp.xy.shape == (18, 2) and kp.conf.shape == (18,)
    h, w = person.shape[:2]
    assert ((kp.conf >= 0) & (kp.conf <= 1)).all()
    present = kp.conf > 0
    assert present.any()
    inside = (kp.xy[:, 0] >= 0) & (kp.xy[:, 0] <= w - 1) & (kp.xy[:, 1] >= 0) & (kp.xy[:, 1] <= h - 1)
    assert (inside | ~present).all()
    assert pool.loads == 1 and pool.held_ids() == ["hrnet_w32_256x192"]
    pictures = backend.pictures(state)
    assert pictures and all(p.shape == person.shape and p.dtype == np.uint8 for p in pictures.values())
    after = {p.name for p in models.rglob("*") if p.suffix in (".pth", ".safetensors", ".bin", ".pt")}
    assert after == before  # nothing was downloaded


@pytest.mark.parametrize("backend_name, file_name", [("openpose", "body_pose_model.pth"), ("hrnet-w48", "pose_hrnet_w48_384x288.pth")])
def test_missing_checkpoint_is_a_clear_error(tmp_path, monkeypatch, backend_name: str, file_name: str) -> None:
    pytest.importorskip("vtryon.models.pool")
    from vtryon.errors import CheckpointMissing
    from vtryon.models.pool import ModelPool
    from vtryon.state import TryOnState
    from vtryon.steps import load_backend
    from vtryon.steps.base import RunContext

    _no_network(monkeypatch)
    state = TryOnState(person=np.zeros((64, 48, 3), np.uint8), garment=np.zeros((8, 8, 3), np.uint8))
    ctx = RunContext(models=ModelPool(device="cpu", models_dir=tmp_path / "empty"))
    with pytest.raises(CheckpointMissing, match=file_name.replace(".", r"\.")):
        load_backend("pose", backend_name)().run(state, ctx)
    assert state.keypoints is None


def test_openpose_backend_loads_caffe_names_through_the_pool(tmp_path, monkeypatch) -> None:
    """A reduced-width body_pose_model.pth with the released (Caffe) key names loads strictly
    through the pool's renaming and runs on a real photo (cheap; widths are read from shapes)."""
    import hashlib

    pytest.importorskip("vtryon.models.pool")
    from vtryon.archs.openpose import build
    from vtryon.imageio import load_image
    from vtryon.models.pool import ModelPool
    from vtryon.state import TryOnState
    from vtryon.steps import load_backend
    from vtryon.steps.base import RunContext

    _no_network(monkeypatch)
    torch.manual_seed(0)
    released = {k.split(".", 1)[1]: v for k, v in build(SMALL_OPENPOSE).state_dict().items()}
    assert "conv1_1.weight" in released and "Mconv7_stage6_L2.bias" in released
    folder = tmp_path / "models" / "openpose_body"
    folder.mkdir(parents=True)
    ckpt = folder / "body_pose_model.pth"
    torch.save(released, ckpt)
    manifest = tmp_path / "extra.toml"
    manifest.write_text(
        "[models.openpose_body]\nstep = \"pose\"\narch = \"openpose_body\"\nfile = \"body_pose_model.pth\"\nwrapper = {}\n"
        f"size = {ckpt.stat().st_size}\nsha256 = \"{hashlib.sha256(ckpt.read_bytes()).hexdigest()}\"\n"
    )
    person = load_image(sorted(PERSON_DIR.glob("*.jpg"))[1], role="person image")
    state = TryOnState(person=person, garment=np.zeros((8, 8, 3), np.uint8))
    ctx = RunContext(models=ModelPool(device="cpu", models_dir=tmp_path / "models", manifest=[manifest]))
    backend = load_backend("pose", "openpose")()
    backend.run(state, ctx)
    kp = state.keypoints
    assert kp is not None and kp.xy.shape == (18, 2)
    assert ((kp.conf >= 0) & (kp.conf <= 1)).all()
    h, w = person.shape[:2]
    ok = (kp.xy[:, 0] >= 0) & (kp.xy[:, 0] <= w - 1) & (kp.xy[:, 1] >= 0) & (kp.xy[:, 1] <= h - 1)
    assert (ok | (kp.conf == 0)).all()
    assert state.aux["pose_people_found"] >= 0
    assert ctx.models.load("openpose_body").model6_2[-1].__class__ is torch.nn.ReLU


def test_hrnet_crop_size_comes_from_the_manifest(tmp_path) -> None:
    pytest.importorskip("vtryon.models.pool")
    from vtryon.errors import UsageError
    from vtryon.models.pool import ModelPool
    from vtryon.steps.base import RunContext
    from vtryon.steps.pose.hrnet import HRNetW32, HRNetW48

    builtin = RunContext(models=ModelPool(models_dir=tmp_path))
    assert HRNetW32().input_size(builtin) == (192, 256) and HRNetW48().input_size(builtin) == (288, 384)
    for size, expected in (("[384, 288]", (288, 384)), ("[100, 50]", None)):
        extra = tmp_path / f"m{size[1:4]}.toml"
        extra.write_text(
            f"[models.hrnet_w32_256x192]\nstep = \"pose\"\narch = \"hrnet_pose\"\nfile = \"x.pth\"\ncapabilities = {{ input_size = {size} }}\n"
        )
        ctx = RunContext(models=ModelPool(models_dir=tmp_path, manifest=[extra]))
        if expected:
            assert HRNetW32().input_size(ctx) == expected
        else:
            with pytest.raises(UsageError, match="multiples of 32"):
                HRNetW32().input_size(ctx)
