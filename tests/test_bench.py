"""`vtryon bench`: the command runs and its JSON holds every figure and a chart; checkpoint
throughput against a raw read; on a profile with checkpoints and ``sequential`` offload, a
step-major batch loads each model once per chunk where a pair-by-pair loop loads it per pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vtryon.cli import app
from vtryon.imageio import load_image

from test_batch import shrink_photos

STEPS = ("human_parsing", "pose", "cloth_segmentation", "geometric_matching", "cloth_warping",
         "virtual_fitting", "post_processing", "quality_assessment")


@pytest.fixture(scope="module")
def photos(shared_images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shrink_photos(shared_images, tmp_path_factory.mktemp("bench-photos"))


def test_bench_json_has_per_step_throughput_and_chart(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["bench", str(photos), "--profile", "embedded", "--pairs", "2", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["profile"] == "embedded" and data["device"] == "cpu" and len(data["pairs"]) == 2
    steps = data["steps"]["steps"]
    assert list(steps) == list(STEPS)
    for name, s in steps.items():
        assert s["status"] == "ran" and s["cold_s"] >= 0 and s["warm_s"] >= 0, name
        assert s["cold_peak_rss_mb"] > 50 and s["warm_peak_rss_mb"] > 50, name
    assert steps["human_parsing"]["cold_s"] > steps["human_parsing"]["warm_s"] > 0  # MediaPipe's graphs build once
    modes = {m["mode"]: m for m in data["throughput"]}
    assert set(modes) == {"vtryon run per pair", "vtryon batch", "in-process, pair by pair", "in-process, step-major"}
    for m in modes.values():
        assert m["ok"] == 2 and m["pairs_per_minute"] > 0 and m["seconds"] > 0, m
    assert modes["in-process, step-major"]["peak_rss_mb"] > 50
    assert data["checkpoints"]["files"] == [] and "no checkpoint" in data["checkpoints"]["note"]
    assert data["offload_tiers"]["runs"] == [] and "no checkpoint" in data["offload_tiers"]["note"]
    assert json.loads((out / "bench.json").read_text())["steps"] == data["steps"]
    chart = load_image(out / "bench.png")
    assert chart.shape[1] == 1000 and chart.shape[0] > 600 and (chart < 200).any()


def test_checkpoint_read_is_measured_against_a_raw_read(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    from vtryon.bench.checkpoints import checkpoint_throughput

    tensors = {f"layer{i}.weight": torch.randn(256, 1024) for i in range(8)}  # 8 MiB
    path = tmp_path / "random.safetensors"
    save_file(tensors, str(path))
    row = checkpoint_throughput(path)
    assert row["size_mb"] == pytest.approx(path.stat().st_size / 2**20, abs=0.01)
    assert row["tensor_mb"] == pytest.approx(8.0, abs=0.01)
    assert row["raw_read_mb_s"] > 0 and row["loader_read_mb_s"] > 0 and row["loader_vs_raw"] > 0


def test_step_major_loads_each_model_once_per_chunk_where_pair_by_pair_reloads(photos: Path, tmp_path: Path) -> None:
    """CP-VTON with full-size random-weight checkpoints (its networks' numerics are proven
    elsewhere; here only loads, timings and memory are measured), two pairs, ``sequential``
    offload: a pair-by-pair loop loads both models for each pair, the step-major batch once."""
    pytest.importorskip("torch")
    from checkpoint_writers import write_random_checkpoints
    from vtryon.bench.checkpoints import profile_checkpoints
    from vtryon.bench.measure import Target, pair_major, step_major
    from vtryon.models.pool import ModelPool

    models = tmp_path / "models"
    extra = write_random_checkpoints(["cpvton_gmm", "cpvton_tom"], models)
    rows = profile_checkpoints(["cpvton_gmm", "cpvton_tom"], lambda: ModelPool(models_dir=models, manifest=[extra]))
    assert [r["model"] for r in rows] == ["cpvton_gmm", "cpvton_tom"]
    for r in rows:
        assert r["size_mb"] > 10 and r["raw_read_mb_s"] > 0 and r["loader_read_mb_s"] > 0 and r["pool_load_s"] > 0

    embedded = {"human_parsing": "embedded", "pose": "embedded", "cloth_segmentation": "embedded"}  # only GMM and TOM load
    target = Target("cp-vton", "cpu", models_dir=models, manifests=(extra,), backends=embedded)
    pairs = [(photos / "person" / "01008_00.jpg", photos / "garment" / "00055_00.jpg"),
             (photos / "person" / "01861_00.jpg", photos / "garment" / "02015_00.jpg")]
    by_pair = pair_major(target, pairs, "sequential")
    batched = step_major(target, pairs, "sequential", chunk=2)
    assert by_pair["ok"] == batched["ok"] == 2
    assert (by_pair["model_loads"], batched["model_loads"]) == (4, 2)
    assert batched["peak_rss_mb"] > 50 and batched["pairs_per_minute"] > 0
