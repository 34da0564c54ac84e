"""`vtryon models scan DIR`: files recognised by content (sha256, else tensor layout), whatever their names."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from loader_support import heads_entry, heads_state, register_test_archs, sha256_of, tiny_bn_state, toml_entry, write_checkpoint, write_manifest  # noqa: E402


@pytest.fixture(autouse=True)
def _archs(monkeypatch):
    register_test_archs(monkeypatch)


def _cli(*args: str):
    from typer.testing import CliRunner

    from vtryon.cli import app

    return CliRunner().invoke(app, list(args))


class _Marker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({str(self.path)!r}, 'w').write('x')",))


def _seed_folder(tmp_path: Path) -> tuple[Path, Path, dict[str, Path]]:
    """A folder like the seed project's ai_models: real files under invented names, and junk."""
    root = tmp_path / "ai_models"
    files = {
        "heads": write_checkpoint(root / "step_08_quality_assessment" / "lpips_alex_ultra.pth", heads_state()),
        "tiny": write_checkpoint(root / "checkpoints" / "pose_model_v2.safetensors", tiny_bn_state(), "safetensors"),
        "other": write_checkpoint(root / "step_04" / "resnet101_geometric.pth", {"fc.weight": torch.zeros(3, 3)}),
    }
    (root / "step_03").mkdir()
    files["lfs"] = root / "step_03" / "sam_vit_h_4b8939.pth"
    files["lfs"].write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 2564550879\n" + " " * 600)
    files["html"] = root / "step_03" / "u2net.ckpt"
    files["html"].write_text("<!DOCTYPE html><html>" + "Google Drive can't scan this file for viruses. " * 20 + "</html>")
    files["evil"] = root / "evil.pth"
    torch.save({"w": torch.ones(200), "x": _Marker(tmp_path / "MARKER")}, files["evil"])
    (root / "notes.txt").write_text("not a checkpoint")
    manifest = write_manifest(
        tmp_path / "extra.toml",
        heads_entry("heads_pub", sha256=sha256_of(files["heads"])),
        toml_entry("tiny", step="pose", arch="test_tiny_bn", file="tiny.safetensors", license="MIT"),
    )
    return root, manifest, files


def _scan(root: Path, tmp_path: Path, manifest: Path, *extra: str) -> dict[str, dict]:
    result = _cli("models", "scan", str(root), "--json", "--models-dir", str(tmp_path / "models"), "--manifest", str(manifest), *extra)
    assert result.exit_code == 0, result.output
    return {Path(h["path"]).name: h for h in json.loads(result.output)}


def test_scan_identifies_by_hash_and_layout_and_registers(tmp_path):
    from vtryon.models.pool import ModelPool

    root, manifest, files = _seed_folder(tmp_path)
    hits = _scan(root, tmp_path, manifest)
    assert set(hits) == {p.name for p in files.values()}  # notes.txt is no candidate
    assert (hits["lpips_alex_ultra.pth"]["id"], hits["lpips_alex_ultra.pth"]["how"]) == ("heads_pub", "sha256")
    assert (hits["pose_model_v2.safetensors"]["id"], hits["pose_model_v2.safetensors"]["how"]) == ("tiny", "layout")
    assert hits["lpips_alex_ultra.pth"]["action"] == "registered"
    assert hits["resnet101_geometric.pth"]["id"] is None and "not a checkpoint vtryon uses" in hits["resnet101_geometric.pth"]["note"]
    assert "an ImageNet ResNet-101 classifier" in hits["resnet101_geometric.pth"]["note"]  # the manifest's reason
    assert "git-LFS pointer" in hits["sam_vit_h_4b8939.pth"]["note"]
    assert "HTML page" in hits["u2net.ckpt"]["note"]
    assert "code execution" in hits["evil.pth"]["note"] and not (tmp_path / "MARKER").exists()
    pool = ModelPool(models_dir=tmp_path / "models", manifest=[manifest])
    assert pool.path("heads_pub") == files["heads"].resolve()
    assert pool.load("tiny") is not None
    assert pool.store.lock.get("tiny")["sha256"] == sha256_of(files["tiny"])  # no published hash: recorded now


@pytest.mark.parametrize("mode", ["--link", "--copy"])
def test_scan_links_or_copies_into_the_models_folder(tmp_path, mode):
    root, manifest, files = _seed_folder(tmp_path)
    hits = _scan(root, tmp_path, manifest, mode)
    target = tmp_path / "models" / "heads_pub" / "alex.pth"
    assert hits["lpips_alex_ultra.pth"]["action"] == ("linked" if mode == "--link" else "copied")
    assert target.is_symlink() == (mode == "--link") and target.read_bytes() == files["heads"].read_bytes()
    assert (tmp_path / "models" / "tiny" / "tiny.safetensors").is_file()
    again = _scan(root, tmp_path, manifest, mode)
    assert again["lpips_alex_ultra.pth"]["action"].startswith("already installed")


def test_same_layout_but_not_the_published_file_is_not_registered(tmp_path):
    root = tmp_path / "comfy"
    write_checkpoint(root / "finetuned.safetensors", tiny_bn_state(seed=3), "safetensors")
    manifest = write_manifest(
        tmp_path / "extra.toml",
        toml_entry("tiny_pub", step="pose", arch="test_tiny_bn", file="tiny.pth", sha256="0" * 64, license="MIT"),
    )
    hit = _scan(root, tmp_path, manifest)["finetuned.safetensors"]
    assert hit["id"] is None and "not its published sha256" in hit["note"]
    assert not (tmp_path / "models" / "registered.json").exists()


def test_hugging_face_cache_files_are_seen_once(tmp_path):
    repo = tmp_path / "hub" / "models--org--tiny"
    blob = write_checkpoint(repo / "blobs" / ("f" * 64), tiny_bn_state(), "safetensors")
    snap = repo / "snapshots" / ("1" * 40)
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to(blob)
    manifest = write_manifest(tmp_path / "extra.toml", toml_entry("tiny", step="pose", arch="test_tiny_bn", file="tiny.safetensors", license="MIT"))
    hits = _scan(tmp_path / "hub", tmp_path, manifest, "--dry-run")
    assert len(hits) == 1 and next(iter(hits.values()))["id"] == "tiny"
    assert next(iter(hits.values()))["action"] == ""  # --dry-run registers nothing


def test_scan_of_a_missing_folder_is_bad_usage(tmp_path):
    result = _cli("models", "scan", str(tmp_path / "nope"), "--models-dir", str(tmp_path / "m"))
    assert result.exit_code == 2 and "is not a folder" in result.output


def test_plain_pickle_is_not_unpickled_by_scan(tmp_path):
    root = tmp_path / "x"
    root.mkdir()
    (root / "model.pkl").write_bytes(pickle.dumps({"a": _Marker(tmp_path / "MARKER2")}, protocol=2) + b" " * 600)
    manifest = write_manifest(tmp_path / "extra.toml", toml_entry("tiny", step="pose", arch="test_tiny_bn", file="t.pth", license="MIT"))
    hit = _scan(root, tmp_path, manifest)["model.pkl"]
    assert hit["id"] is None and not (tmp_path / "MARKER2").exists()
