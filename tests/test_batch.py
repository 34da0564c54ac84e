"""`vtryon batch`: pairs and names, the work-folder codec, step-major runs that resume after a
SIGKILL without redoing finished steps, shards, bad pairs, and the Ray path.

The photos come from ../shared/images (never copied into the repository); they are shrunk
to 384x512 in a temporary folder so the embedded profile takes about a second per pair.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vtryon.batch import BatchSettings, load_pairs, run_batch, select_shard
from vtryon.batch.codec import StateNotSerializable, dumps, load
from vtryon.batch.pairs import Pair, name_pairs, parse_shard, shard_of
from vtryon.batch.workdir import WorkFolder
from vtryon.errors import UsageError
from vtryon.imageio import load_image

PERSONS = ("01008_00.jpg", "01861_00.jpg", "05997_00.jpg")
GARMENTS = ("00055_00.jpg", "02015_00.jpg")
ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------
# fixtures: small photos, a pairs list with two bad pairs in the middle, a reference run
# ----------------------------------------------------------------------------------------


def shrink_photos(shared: Path, root: Path) -> Path:
    """384x512 copies of three persons and two garments under ``root``/person and /garment."""
    from PIL import Image

    for sub, names in (("person", PERSONS), ("garment", GARMENTS)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            Image.open(shared / sub / name).convert("RGB").resize((384, 512), Image.LANCZOS).save(root / sub / name, quality=95)
    return root


@pytest.fixture(scope="module")
def photos(shared_images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    root = shrink_photos(shared_images, tmp_path_factory.mktemp("photos"))
    (root / "bad").mkdir()
    (root / "bad" / "broken.jpg").write_bytes(b"this is not a JPEG")
    Image.new("RGB", (384, 512), (128, 128, 128)).save(root / "bad" / "blank.jpg")
    return root


@pytest.fixture(scope="module")
def pairs_csv(photos: Path) -> Path:
    rows = [(f"person/{p}", f"garment/{g}") for p in PERSONS for g in GARMENTS]
    rows.insert(2, ("bad/broken.jpg", f"garment/{GARMENTS[0]}"))  # unreadable image
    rows.insert(5, ("bad/blank.jpg", f"garment/{GARMENTS[1]}"))  # no person in it
    path = photos / "pairs.csv"
    path.write_text("person,garment\n" + "".join(f"{p},{g}\n" for p, g in rows))
    return path


GOOD = [f"{Path(p).stem}__{Path(g).stem}" for p in PERSONS for g in GARMENTS]
BAD = {"broken__00055_00": "inputs", "blank__02015_00": "human_parsing"}


@pytest.fixture(scope="module")
def reference(pairs_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], list[dict]]:
    """An uninterrupted run, as two shards sharing one output and work folder."""
    out = tmp_path_factory.mktemp("reference")
    pairs = load_pairs(pairs_csv)
    summaries = [
        run_batch(BatchSettings(output=out, profile="embedded", chunk=3, shard=(i, 2)), pairs)
        for i in range(2)
    ]
    reports = [[json.loads(line) for line in (out / f"report.shard-{i}-of-2.jsonl").read_text().splitlines()] for i in range(2)]
    return out, summaries, reports


def _outputs(folder: Path) -> dict[str, np.ndarray]:
    return {p.stem: load_image(p) for p in sorted(folder.glob("*.png"))}


# ----------------------------------------------------------------------------------------
# pairs, names, shards (fast)
# ----------------------------------------------------------------------------------------


def test_pairs_from_lists_and_folders_get_stable_unique_names(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    for name in ("a.jpg", "b.png", "c.jpg"):
        (tmp_path / "p" / name).write_bytes(b"x")
    for name in ("a.jpg", "z.webp"):
        (tmp_path / "g" / name).write_bytes(b"x")
    cross = load_pairs(tmp_path / "p", tmp_path / "g")
    assert [p.output for p in cross] == ["a__a.png", "a__z.png", "b__a.png", "b__z.png", "c__a.png", "c__z.png"]
    assert [p.id for p in load_pairs(tmp_path / "p", tmp_path / "g", pairing="by-name")] == ["a__a"]

    listed = tmp_path / "pairs.jsonl"
    listed.write_text(
        '{"person": "p/a.jpg", "garment": "g/a.jpg"}\n'
        '{"person": "other/a.jpg", "garment": "g/a.jpg"}\n'  # same stems, other files
        '{"person": "p/b.png", "garment": "g/z.webp", "category": "dress", "output": "sub/mine.jpg"}\n'
    )
    pairs = load_pairs(listed)
    assert pairs[0].person == tmp_path / "p" / "a.jpg"
    assert pairs[0].output != pairs[1].output and pairs[0].output.startswith("a__a__") and pairs[1].output.startswith("a__a__")
    assert load_pairs(listed)[0].output == pairs[0].output  # deterministic
    assert (pairs[2].output, pairs[2].category, pairs[2].id) == ("sub/mine.jpg", "dress", "sub__mine")

    bad = tmp_path / "bad.csv"
    bad.write_text("person,garment,category\np/a.jpg,g/a.jpg,shoes\n")
    with pytest.raises(UsageError, match="category 'shoes'"):
        load_pairs(bad)
    bad.write_text("person,garment,output\np/a.jpg,g/a.jpg,../escape.png\n")
    with pytest.raises(UsageError, match="inside the output folder"):
        load_pairs(bad)


def test_shards_are_stable_and_cover_every_pair_once() -> None:
    pairs = name_pairs([(Path(f"p{i}.jpg"), Path(f"g{j}.jpg"), "upper", None) for i in range(30) for j in range(5)])
    for n in (1, 2, 3, 7):
        parts = [select_shard(pairs, (i, n)) for i in range(n)]
        ids = [p.id for part in parts for p in part]
        assert sorted(ids) == sorted(p.id for p in pairs)  # every pair exactly once
    # the same on every machine and Python: sha256 of the pair's id, not hash()
    assert [shard_of(k, 4) for k in ("p0__g0", "p1__g3", "p29__g4")] == [
        int.from_bytes(__import__("hashlib").sha256(k.encode()).digest()[:8], "big") % 4 for k in ("p0__g0", "p1__g3", "p29__g4")
    ]
    assert parse_shard("1/3") == (1, 3)
    for text in ("3/3", "-1/2", "1/0", "a/b"):
        with pytest.raises(UsageError):
            parse_shard(text)


# ----------------------------------------------------------------------------------------
# the work folder (fast)
# ----------------------------------------------------------------------------------------


def test_codec_round_trips_the_steps_dataclasses_and_refuses_other_objects(tmp_path: Path) -> None:
    from vtryon.state import Keypoints, StepRecord, Warp
    from vtryon.vision.fit_warp import BodyAnchors
    from vtryon.vision.garment_landmarks import GarmentLandmarks, SleeveAxis

    rng = np.random.default_rng(0)
    values = {
        "keypoints": Keypoints(rng.random((18, 2)), rng.random(18)),
        "warp": Warp(rng.random((4, 3, 2)).astype(np.float32), np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32),
                     ("a", "b"), {"neckline": [[1.5, 2.0]], "scale": np.float32(0.3)}),
        "aux.garment_landmarks": GarmentLandmarks({"shoulder_l": np.array([1.0, 2.0])}, np.zeros((3, 3), np.uint8),
                                                  {"l": SleeveAxis(np.array([0.0, 1.0]), np.array([2.0, 3.0]), 4.5)}, True),
        "aux.body_anchors": BodyAnchors({"hip_l": np.array([1, 2], np.float32)}, {"l": [np.array([0.0, 0.0])]}, 3.0,
                                        np.float64(1.25), np.full((3, 2), np.nan)),
        "aux.garment_background": (246, 245, 240),
        "aux.misc": {"nan": float("nan"), 3: "int key", "none": None, "flag": np.bool_(True)},
        "quality": {"metrics": {"x": 0.5}},
    }
    path = tmp_path / "step.npz"
    path.write_bytes(dumps(values, {"record": {"step": "s"}}))
    back, meta = load(path)
    assert meta == {"record": {"step": "s"}}
    assert np.array_equal(back["keypoints"].xy, values["keypoints"].xy) and back["keypoints"].xy.dtype == np.float32
    w = back["warp"]
    assert isinstance(w, Warp) and w.point_names == ("a", "b") and np.array_equal(w.map_xy, values["warp"].map_xy)
    assert type(w.params["scale"]) is np.float32 and w.params["neckline"] == [[1.5, 2.0]]
    lm = back["aux.garment_landmarks"]
    assert isinstance(lm.sleeves["l"], SleeveAxis) and lm.sleeves["l"].width == 4.5 and lm.sleeved is True
    body = back["aux.body_anchors"]
    assert type(body.centre_x) is np.float64 and np.isnan(body.torso_extent).all() and body.points["hip_l"].dtype == np.float32
    assert back["aux.garment_background"] == (246, 245, 240)
    misc = back["aux.misc"]
    assert np.isnan(misc["nan"]) and misc[3] == "int key" and misc["none"] is None and misc["flag"] is np.True_
    assert StepRecord(**{"step": "x", "backend": "y", "status": "ran"}).status == "ran"

    class Opaque:
        pass

    with pytest.raises(StateNotSerializable, match=r"aux\.thing.*Opaque"):
        dumps({"aux.thing": Opaque()})
    with pytest.raises(StateNotSerializable, match="object array"):
        dumps({"aux.objects": np.array([Opaque()], dtype=object)})


def test_a_damaged_step_file_is_discarded_and_other_settings_are_refused(tmp_path: Path) -> None:
    work = WorkFolder(tmp_path / "work")
    pair = Pair(Path("p.jpg"), Path("g.jpg"), "upper", "p__g.png")
    work.commit_step(pair, "pose", {"aux.x": np.arange(3)}, {"record": {"seconds": 0.1}})
    values, _meta = work.load_step(pair, "pose")
    assert np.array_equal(values["aux.x"], np.arange(3))
    path = work.step_path(pair, "pose")
    path.write_bytes(path.read_bytes()[:40])  # cut short, as a crashed machine might leave it
    assert work.load_step(pair, "pose") is None and not path.exists()

    work.check_settings({"profile": "embedded", "seed": 0})
    work.check_settings({"profile": "embedded", "seed": 0})
    with pytest.raises(UsageError, match="seed: 0 then, 1 now"):
        work.check_settings({"profile": "embedded", "seed": 1})


# ----------------------------------------------------------------------------------------
# end to end on photos
# ----------------------------------------------------------------------------------------


def test_shards_cover_every_pair_once_and_bad_pairs_are_reported(reference: tuple[Path, list[dict], list[dict]]) -> None:
    out, summaries, reports = reference
    ids = [r["id"] for rep in reports for r in rep]
    assert sorted(ids) == sorted(GOOD + list(BAD))  # every pair, exactly once
    assert sum(s["pairs"] for s in summaries) == len(GOOD) + len(BAD)
    for rep in reports:
        for r in rep:
            if r["id"] in BAD:
                assert r["status"] == "failed" and r["failed_step"] == BAD[r["id"]], r
                assert ("broken" in r["reason"]) if r["id"].startswith("broken") else ("no person" in r["reason"])
            else:
                assert r["status"] == "done" and [s["step"] for s in r["steps"]][0] == "human_parsing" and len(r["steps"]) == 8
    outputs = _outputs(out)
    assert sorted(outputs) == sorted(GOOD)
    assert all(img.shape == (512, 384, 3) for img in outputs.values())
    assert not list(out.rglob("*.part"))
    # finished pairs keep only their done marker (no --keep-work)
    assert not list((out / ".vtryon-batch" / "pairs").rglob("*.npz")) or all(
        p.parent.name in BAD for p in (out / ".vtryon-batch" / "pairs").rglob("*.npz")
    )


def test_kill_and_resume_redoes_nothing_finished_and_matches_an_uninterrupted_run(
    pairs_csv: Path, reference: tuple[Path, list[dict], list[dict]], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vtryon", "batch", str(pairs_csv), "-o", str(out), "--profile", "embedded",
           "--chunk", "2", "--keep-work", "--json"]
    pairs_dir = out / ".vtryon-batch" / "pairs"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None:
            finished = {p.stem for p in out.glob("*.png")}
            # the first output is there, and a later pair is part-way through its steps
            partway = [d for d in pairs_dir.glob("*") if list(d.glob("0*.npz")) and not (d / "08_quality_assessment.npz").exists()]
            if finished and partway:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the batch ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before_outputs = sorted(out.glob("*.png"))
    assert before_outputs and len(before_outputs) < len(GOOD)
    for path in before_outputs:  # nothing partial under a final name
        assert load_image(path).shape == (512, 384, 3)
    committed = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in pairs_dir.rglob("*.npz")}
    assert committed
    finished_before = len(list(pairs_dir.glob("*/done.json")))

    rerun = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert rerun.returncode == 1, rerun.stderr  # 1: some pairs failed (the two bad ones)
    summary = json.loads(rerun.stdout)
    assert summary["done"] + summary["skipped"] == len(GOOD) and summary["failed"] == len(BAD)
    assert summary["skipped"] == finished_before >= 1
    # no step that had been committed ran again: same files, untouched
    for path, stamp in committed.items():
        assert path.is_file() and (path.stat().st_mtime_ns, path.stat().st_ino) == stamp, path
    events = WorkFolder(out / ".vtryon-batch").events()
    runs: dict[tuple[str, str], int] = {}
    for e in events:
        if e["event"] == "committed":
            runs[(e["pair"], e["step"])] = runs.get((e["pair"], e["step"]), 0) + 1
    assert runs and max(runs.values()) == 1, [k for k, v in runs.items() if v > 1]
    assert {pid for pid in (e["pid"] for e in events)} >= {proc.pid}  # both runs wrote events
    # every output valid, identical to the uninterrupted run, no temporary file left
    assert not list(out.rglob("*.part"))
    ours, theirs = _outputs(out), _outputs(reference[0])
    assert sorted(ours) == sorted(GOOD)
    for name in GOOD:
        assert np.array_equal(ours[name], theirs[name]), name
    report = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    assert {r["id"]: r["status"] for r in report if r["id"] in BAD} == {k: "failed" for k in BAD}


def test_bad_options_and_missing_checkpoints_stop_before_any_pair(pairs_csv: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vtryon.cli import app

    runner = CliRunner()
    base = ["batch", str(pairs_csv), "-o", str(tmp_path / "out")]
    for extra, message in (
        (["--profile", "embedded", "--use", "pose=nonexistent"], "no backend 'nonexistent'"),
        (["--profile", "embedded", "--shard", "2/2"], "--shard '2/2'"),
        (["--profile", "embedded", "--chunk", "0"], "--chunk 0"),
        (["--profile", "cp-vton", "--models-dir", str(tmp_path / "empty")], "cpvton_gmm"),
    ):
        result = runner.invoke(app, base + extra)
        assert result.exit_code == 2 and message in result.output, (extra, result.output)
    assert not list((tmp_path / "out").glob("*.png")) and not (tmp_path / "out" / ".vtryon-batch" / "pairs").exists()


def test_ray_path_without_ray_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vtryon.batch.ray_runner import run_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(UsageError, match=r"--ray needs Ray Data.*pip install 'vtryon\[ray\]'"):
        run_ray(BatchSettings(output=tmp_path / "out", profile="embedded"), [], "local")


def test_ray_batch_on_a_local_cluster_gives_the_same_outputs(pairs_csv: Path, reference: tuple[Path, list[dict], list[dict]], tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'vtryon[ray]')")
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'vtryon[ray]')")
    pairs = [p for p in load_pairs(pairs_csv) if p.id in (GOOD[0], GOOD[3], "broken__00055_00", GOOD[5])]
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        summary = run_batch(BatchSettings(output=tmp_path / "ray", profile="embedded", chunk=2), pairs, ray_address="local")
    finally:
        ray.shutdown()
    assert (summary["done"], summary["failed"], summary["runner"]) == (3, 1, "ray (local)")
    ours, theirs = _outputs(tmp_path / "ray"), _outputs(reference[0])
    assert sorted(ours) == sorted([GOOD[0], GOOD[3], GOOD[5]])
    for name, image in ours.items():
        assert np.array_equal(image, theirs[name]), name
    report = [json.loads(line) for line in (tmp_path / "ray" / "report.jsonl").read_text().splitlines()]
    assert [r["failed_step"] for r in report if r["status"] == "failed"] == ["inputs"]
