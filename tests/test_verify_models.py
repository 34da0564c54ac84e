"""`vtryon verify-models` end to end through the CLI, on checkpoints written in a tmp models folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from loader_support import heads_entry, heads_state, register_test_archs, sha256_of, tiny_bn_state, toml_entry, write_checkpoint, write_manifest  # noqa: E402


@pytest.fixture(autouse=True)
def _archs(monkeypatch):
    register_test_archs(monkeypatch)


def _cli(*args: str):
    from typer.testing import CliRunner

    from vtryon.cli import app

    return CliRunner().invoke(app, list(args))


def _setup(tmp_path: Path) -> tuple[list[str], Path]:
    models = tmp_path / "models"
    good = write_checkpoint(models / "heads" / "alex.pth", heads_state())
    write_checkpoint(models / "tiny" / "tiny.safetensors", tiny_bn_state(), "safetensors")
    manifest = write_manifest(
        tmp_path / "extra.toml",
        heads_entry("heads", size=good.stat().st_size, sha256=sha256_of(good), sources=[{"url": "https://example.invalid/a"}]),
        toml_entry("tiny", step="pose", arch="test_tiny_bn", file="tiny.safetensors", license="MIT"),
        heads_entry("absent", file="absent.pth"),
    )
    return ["--models-dir", str(models), "--manifest", str(manifest)], models


def _rows(output: str) -> dict[str, dict]:
    data = json.loads(output)
    return {row["id"]: row for row in data["models"]} | {"_ok": data["ok"], "_profiles": data["profiles"]}


def test_good_checkpoints_pass_with_table_and_json(tmp_path):
    common, _ = _setup(tmp_path)
    result = _cli("verify-models", "heads", "tiny", *common)
    assert result.exit_code == 0, result.output
    assert "heads" in result.output and "Profiles" in result.output
    rows = _rows(_cli("verify-models", "heads", "tiny", "--json", *common).output)
    assert rows["_ok"] is True
    assert rows["heads"]["sha256"] == "matches published sha256" and rows["heads"]["loadable"].startswith("yes: 5 tensors fit")
    assert rows["tiny"]["sha256"] == "no published hash, not recorded yet" and rows["tiny"]["license"] == "MIT"
    assert {p["profile"] for p in rows["_profiles"]} >= {"embedded"}


def test_without_ids_only_installed_ones_count(tmp_path):
    common, _ = _setup(tmp_path)
    result = _cli("verify-models", *common)
    assert result.exit_code == 0, result.output  # 'absent' and the built-in ones are only listed
    assert "not installed:" in result.output and "absent" in result.output
    assert _cli("verify-models", "absent", *common).exit_code == 2  # asked for explicitly: a failure


@pytest.mark.parametrize(
    "damage,expected",
    [
        ("flip", "sha256"),
        ("truncate", "truncated"),
        ("lfs", "git-LFS pointer"),
        ("html", "HTML page"),
    ],
)
def test_damaged_files_are_named(tmp_path, damage, expected):
    common, models = _setup(tmp_path)
    path = models / "heads" / "alex.pth"
    data = path.read_bytes()
    if damage == "flip":
        path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 3])
    elif damage == "lfs":
        path.write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{'0' * 64}\nsize {len(data)}\n")
    else:
        path.write_text("<html><body>Quota exceeded</body></html>")
    result = _cli("verify-models", "heads", "--json", *common)
    assert result.exit_code == 2
    row = _rows(result.output)["heads"]
    assert row["ok"] is False and expected in row["problems"][0]


def test_layout_of_another_network_is_not_loadable(tmp_path):
    common, models = _setup(tmp_path)
    write_checkpoint(models / "tiny" / "tiny.safetensors", heads_state(), "safetensors")  # heads where tiny belongs
    result = _cli("verify-models", "tiny", "--json", *common)
    assert result.exit_code == 2
    row = _rows(result.output)["tiny"]
    assert row["loadable"].startswith("no:") and "does not fit architecture 'test_tiny_bn'" in row["loadable"]


def test_layout_check_allocates_nothing(tmp_path, monkeypatch):
    """loadable is decided on the meta device: the file's tensor bytes are never read."""
    import vtryon.models.verify as verify
    from vtryon.models.store import ModelStore
    from vtryon.models.verify import check_layout

    common, models = _setup(tmp_path)
    store = ModelStore(models, [tmp_path / "extra.toml"])
    seen = []
    real = verify.read_state_dict

    def spy(path, meta=False, fmt=None):
        state = real(path, meta=meta, fmt=fmt)
        seen.append(all(t.is_meta for t in state.values()))
        return state

    monkeypatch.setattr(verify, "read_state_dict", spy)
    for mid in ("heads", "tiny"):
        ok, message = check_layout(store.entry(mid), store.locate(store.entry(mid)))
        assert ok, message
    assert seen == [True, True]


def test_deep_runs_one_forward_pass(tmp_path):
    common, _ = _setup(tmp_path)
    result = _cli("verify-models", "heads", "tiny", "--deep", "--json", *common)
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert rows["heads"]["deep"].startswith("ok: output []")  # a scalar
    assert rows["tiny"]["deep"] == "ok: output [1, 4, 8, 8]"


def test_deep_reports_non_finite_output(tmp_path):
    common, models = _setup(tmp_path)
    state = tiny_bn_state()
    state["bn.running_var"] = -state["bn.running_var"]  # sqrt of a negative variance: NaN
    write_checkpoint(models / "tiny" / "tiny.safetensors", state, "safetensors")
    result = _cli("verify-models", "tiny", "--deep", "--json", *common)
    assert result.exit_code == 2 and "NaN" in _rows(result.output)["tiny"]["deep"]


def test_profile_option_and_unknown_ids(tmp_path):
    common, _ = _setup(tmp_path)
    result = _cli("verify-models", "--profile", "embedded", "--json", *common)
    assert result.exit_code == 0 and json.loads(result.output)["models"] == []
    unknown = _cli("verify-models", "no_such_model", *common)
    assert unknown.exit_code == 2 and "unknown model id" in unknown.output


def test_models_lists_profiles_and_status(tmp_path):
    common, _ = _setup(tmp_path)
    result = _cli("models", *common)
    assert result.exit_code == 0, result.output
    assert "embedded" in result.output and "All checkpoints" in result.output
    data = json.loads(_cli("models", "--json", *common).output)
    status = {m["id"]: m for m in data["models"]}
    assert status["heads"]["installed"] is True and status["absent"]["installed"] is False
    assert "vtryon download" in status["sam_vit_b"]["problem"] or "not installed" in status["sam_vit_b"]["problem"]


def test_missing_models_and_profile_status(tmp_path):
    from vtryon.models.status import missing_models, profile_status

    common, models = _setup(tmp_path)
    problems = dict(missing_models(["heads", "absent"], models_dir=models, manifest=[tmp_path / "extra.toml"]))
    assert list(problems) == ["absent"] and "not installed" in problems["absent"]
    assert profile_status("embedded", models_dir=models) == (True, "needs no checkpoint")
