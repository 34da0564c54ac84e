"""The shared loader: files in released layouts with random weights, loaded strictly, or refused
with an error that says what is wrong and what to do."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from loader_support import (  # noqa: E402
    HEADS_KEYS,
    heads_entry,
    heads_state,
    lpips_layout,
    register_test_archs,
    sha256_of,
    tiny_bn_state,
    toml_entry,
    write_checkpoint,
    write_manifest,
)

from vtryon.errors import CheckpointCorrupt, CheckpointMismatch, CheckpointMissing, UnsafeCheckpoint  # noqa: E402


@pytest.fixture(autouse=True)
def _archs(monkeypatch):
    register_test_archs(monkeypatch)


def _pool(tmp_path: Path, *tables: str, **kwargs):
    from vtryon.models.pool import ModelPool

    manifest = write_manifest(tmp_path / "extra.toml", *tables)
    return ModelPool(models_dir=tmp_path / "models", manifest=[manifest], **kwargs)


def _install(tmp_path: Path, model_id: str, file: str, obj, fmt: str = "pth") -> Path:
    return write_checkpoint(tmp_path / "models" / model_id / file, obj, fmt)


@pytest.mark.parametrize("fmt,file", [("pth", "alex.pth"), ("safetensors", "alex.safetensors"), ("legacy", "alex.pth")])
def test_load_released_layout_strictly(tmp_path, fmt, file):
    state = heads_state()
    path = _install(tmp_path, "heads", file, state, fmt)
    pool = _pool(tmp_path, heads_entry(file=file, size=path.stat().st_size, sha256=sha256_of(path)))
    model = pool.load("heads")
    assert not model.training
    got = model.state_dict()
    assert sorted(got) == sorted(lpips_layout())
    for key in HEADS_KEYS:
        assert torch.equal(got[key], state[key]) and got[key].dtype == torch.float32
    assert all(not p.requires_grad for p in model.parameters())
    assert pool.held_bytes() == {"cpu": sum(t.numel() * 4 for t in state.values())}
    assert pool.path("heads") == path


def test_fp16_override_and_fp16_file_on_cpu(tmp_path):
    path = _install(tmp_path, "heads", "alex.pth", heads_state())
    half = _pool(tmp_path, heads_entry(sha256=sha256_of(path)), precision="fp16").load("heads")
    assert {p.dtype for p in half.parameters()} == {torch.float16}
    out = half(*[torch.rand(1, c, 2, 2, dtype=torch.float16) for c in half_channels(half)])
    assert out.dtype == torch.float16

    stored_half = _install(tmp_path / "b", "heads", "alex.pth", heads_state(dtype=torch.float16))
    model = _pool(tmp_path / "b", heads_entry(sha256=sha256_of(stored_half))).load("heads")
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # fp32 on CPU


def half_channels(model) -> list[int]:
    return [getattr(model, f"lin{k}").model[1].weight.shape[1] for k in range(5)]


def test_integer_buffers_keep_their_dtype_and_counters_are_optional(tmp_path):
    state = tiny_bn_state()  # no num_batches_tracked, as in pre-0.4.1 files
    path = _install(tmp_path, "tiny", "tiny.pth", state)
    entry = toml_entry("tiny", step="pose", arch="test_tiny_bn", file="tiny.pth", sha256=sha256_of(path))
    model = _pool(tmp_path, entry, precision="bf16").load("tiny")
    assert model.bn.weight.dtype == torch.bfloat16
    assert model.bn.num_batches_tracked.dtype == torch.long


def test_strict_mismatch_lists_missing_unexpected_and_misshaped(tmp_path):
    state = heads_state()
    del state["lin0.model.1.weight"]
    state["lin9.model.1.weight"] = torch.zeros(1, 8, 1, 1)
    state["lin1.model.1.weight"] = torch.zeros(2, 192, 1, 1)  # out channels 2 instead of 1
    path = _install(tmp_path, "heads", "alex.pth", state)
    pool = _pool(tmp_path, heads_entry(sha256=sha256_of(path), config={"channels": [64, 192, 384, 256, 256]}))
    with pytest.raises(CheckpointMismatch) as err:
        pool.load("heads")
    text = str(err.value)
    assert "1 missing (lin0.model.1.weight)" in text
    assert "1 unexpected (lin9.model.1.weight)" in text
    assert "1 mis-shaped (lin1.model.1.weight: file [2, 192, 1, 1] vs network [1, 192, 1, 1])" in text
    assert err.value.exit_code == 2


def test_mismatch_message_shows_first_few_and_counts(tmp_path):
    state = {f"extra{i}.weight": torch.zeros(1) for i in range(9)}
    state.update(heads_state())
    path = _install(tmp_path, "heads", "alex.pth", state)
    with pytest.raises(CheckpointMismatch, match=r"9 unexpected \(extra0.weight; .* and 4 more\)"):
        _pool(tmp_path, heads_entry(sha256=sha256_of(path))).load("heads")


def test_missing_checkpoint_names_file_place_and_fix(tmp_path):
    pool = _pool(tmp_path, heads_entry(sources=[{"url": "https://example.invalid/alex.pth"}]))
    with pytest.raises(CheckpointMissing) as err:
        pool.load("heads")
    text = str(err.value)
    assert "alex.pth" in text and str(tmp_path / "models" / "heads" / "alex.pth") in text
    assert "vtryon download heads" in text


def test_truncated_file_is_corrupt(tmp_path):
    path = _install(tmp_path, "heads", "alex.pth", heads_state())
    full = path.stat().st_size
    digest = sha256_of(path)
    path.write_bytes(path.read_bytes()[: full // 2])
    with pytest.raises(CheckpointCorrupt, match="truncated"):
        _pool(tmp_path, heads_entry(size=full, sha256=digest)).load("heads")
    with pytest.raises(CheckpointCorrupt, match="truncated"):  # no size published: the zip directory is gone
        _pool(tmp_path, heads_entry()).load("heads")


def test_truncated_safetensors_without_published_size(tmp_path):
    path = _install(tmp_path, "heads", "alex.safetensors", heads_state(), "safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointCorrupt, match="truncated: its tensors need"):
        _pool(tmp_path, heads_entry(file="alex.safetensors")).load("heads")


def test_flipped_byte_fails_the_hash(tmp_path):
    path = _install(tmp_path, "heads", "alex.safetensors", heads_state(), "safetensors")
    digest = sha256_of(path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorrupt, match=r"sha256 .* differs from the published") as err:
        _pool(tmp_path, heads_entry(file="alex.safetensors", size=len(data), sha256=digest)).load("heads")
    assert "vtryon download heads" in str(err.value)


def test_lfs_pointer_and_html_page_are_named(tmp_path):
    path = tmp_path / "models" / "heads" / "alex.pth"
    path.parent.mkdir(parents=True)
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 6009\n")
    with pytest.raises(CheckpointCorrupt, match="git-LFS pointer"):
        _pool(tmp_path, heads_entry(size=6009)).load("heads")
    path.write_text("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>")
    with pytest.raises(CheckpointCorrupt, match="HTML page"):
        _pool(tmp_path, heads_entry()).load("heads")


class _WritesMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("fmt", ["zip", "plain-pickle"])
def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, fmt):
    marker = tmp_path / "MARKER"
    path = tmp_path / "models" / "heads" / "alex.pth"
    path.parent.mkdir(parents=True)
    payload = {**heads_state(), "evil": _WritesMarker(marker)}
    if fmt == "zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    assert not marker.exists()
    pool = _pool(tmp_path, heads_entry(sha256=sha256_of(path)))
    with pytest.raises(UnsafeCheckpoint, match="needs code execution") as err:
        pool.load("heads")
    assert "builtins.exec" in str(err.value) or "exec" in str(err.value)
    assert not marker.exists()
    from vtryon.models.verify import check_layout

    ok, message = check_layout(pool.entry("heads"), path)  # verify-models' meta check refuses it too
    assert not ok and "code execution" in message and not marker.exists()


def test_torchscript_archive_is_read_as_data(tmp_path, monkeypatch):
    from vtryon.models.checkpoint_io import TORCHSCRIPT, read_state_dict, sniff

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)
            self.attn_mask = torch.zeros(4)  # a plain tensor attribute: not in state_dict()
            self.register_buffer("scale", torch.ones(1))

        def forward(self, x):
            return self.lin(x + self.attn_mask) * self.scale

    class Clipish(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = Block(), Block()
            self.proj = torch.nn.Parameter(torch.randn(4, 4).half())
            self.register_buffer("input_resolution", torch.tensor(224))

        def forward(self, x):
            return self.b(self.a(x)) @ self.proj.float()

    path = tmp_path / "ViT-B-32.pt"
    traced = torch.jit.trace(Clipish().eval(), torch.randn(2, 4))
    torch.jit.save(traced, str(path))
    expected = torch.jit.load(str(path)).state_dict()

    def forbidden(*a, **k):
        raise AssertionError("TorchScript must not be executed")

    monkeypatch.setattr(torch.jit, "load", forbidden)
    assert sniff(path) == TORCHSCRIPT
    got = read_state_dict(path)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value) and got[key].dtype == value.dtype
    meta = read_state_dict(path, meta=True)
    assert all(t.is_meta for t in meta.values()) and meta["proj"].dtype == torch.float16


def test_hash_is_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    import vtryon.models.store as store_mod

    path = _install(tmp_path, "heads", "alex.pth", heads_state())
    calls = []
    real = store_mod.sha256_file
    monkeypatch.setattr(store_mod, "sha256_file", lambda p, progress=None: calls.append(p) or real(p))
    digest = sha256_of(path)
    for _ in range(2):
        _pool(tmp_path, heads_entry(sha256=digest)).path("heads")
    assert len(calls) == 1
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    _pool(tmp_path, heads_entry(sha256=digest)).path("heads")
    assert len(calls) == 2


def test_trust_on_first_use_records_then_catches_a_change(tmp_path):
    path = _install(tmp_path, "heads", "alex.pth", heads_state())
    pool = _pool(tmp_path, heads_entry())
    pool.load("heads")
    lock = pool.store.lock.get("heads")
    assert lock is not None and lock["sha256"] == sha256_of(path)
    write_checkpoint(path, heads_state(seed=1))  # a different file under the same name
    with pytest.raises(CheckpointCorrupt, match="recorded in vtryon.lock.json"):
        _pool(tmp_path, heads_entry()).load("heads")


def test_a_shared_model_loads_once_and_offload_policies(tmp_path):
    path = _install(tmp_path, "heads", "alex.pth", heads_state())
    pool = _pool(tmp_path, heads_entry(sha256=sha256_of(path)))
    pool.begin_step("pose", ["heads"])
    first = pool.load("heads")
    pool.end_step("pose", ["heads"], "none")
    pool.begin_step("quality_assessment", ["heads"])
    assert pool.load("heads") is first and pool.loads == 1
    pool.end_step("quality_assessment", ["heads"], "model")  # on CPU the model stays where it is
    assert pool.held_ids() == ["heads"] and pool.load("heads") is first
    pool.end_step("quality_assessment", ["heads"], "sequential")
    assert pool.held_ids() == [] and pool.held_bytes() == {}
    assert pool.load("heads") is not first and pool.loads == 2


def test_memory_budget_frees_the_least_recently_used(tmp_path):
    tables = []
    for name in ("a", "b", "c"):
        path = _install(tmp_path, name, "alex.pth", heads_state())
        tables.append(heads_entry(name, sha256=sha256_of(path)))
    one = sum(v.numel() * 4 for v in heads_state().values())
    pool = _pool(tmp_path, *tables, budget_bytes=2 * one)
    pool.load("a")
    pool.load("b")
    pool.load("a")  # a is now the most recently used
    pool.begin_step("quality_assessment", ["b", "c"])
    pool.load("c")
    assert pool.held_ids() == ["b", "c"]  # a was freed; b is protected by the running step
    assert pool.held_bytes()["cpu"] <= 2 * one


def test_found_under_alias_registration_and_flat_name(tmp_path):
    state = heads_state()
    path = _install(tmp_path, "heads", "my_heads.pth", state)
    entry = heads_entry(file="heads.pth", sha256=sha256_of(path), aliases=["my_heads.pth"])
    assert _pool(tmp_path, entry).path("heads") == path
    elsewhere = tmp_path / "elsewhere" / "weights.pth"
    elsewhere.parent.mkdir()
    path.rename(elsewhere)  # the same bytes under another name, outside the models folder
    pool = _pool(tmp_path, entry)
    pool.store.register("heads", elsewhere)
    assert pool.path("heads") == elsewhere.resolve()
    pool.store.registry.path.unlink()
    flat = elsewhere.rename(tmp_path / "models" / "heads.pth")  # no other checkpoint is named heads.pth
    assert _pool(tmp_path, entry).path("heads") == flat


def test_file_in_the_hugging_face_cache_is_found(tmp_path, monkeypatch):
    from vtryon.models.hub import hf_module

    hub = hf_module()
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "models--org--heads"
    snapshot = repo / "snapshots" / commit / "weights"
    blob = write_checkpoint(repo / "blobs" / "blob0", heads_state())
    snapshot.mkdir(parents=True)
    (snapshot / "alex.pth").symlink_to(blob)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    pool = _pool(tmp_path, heads_entry(sha256=sha256_of(blob), sources=[{"hf": "org/heads", "revision": "main", "path": "weights/alex.pth"}]))
    assert pool.path("heads") == snapshot / "alex.pth"
    assert pool.load("heads") is not None


def test_u2netp_in_its_released_layout(tmp_path):
    """A real architecture (written in parallel): u2netp's 686 released tensors, random weights."""
    pytest.importorskip("vtryon.archs.u2net")
    from reference_support import load_layout

    from vtryon.models.pool import ModelPool

    layout = load_layout("u2netp")["tensors"]
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in layout.items():  # small random convolutions, neutral batch norms
        if key.endswith(("running_var", "bn_s1.weight")):
            state[key] = torch.ones(shape)
        elif len(shape) == 4:
            state[key] = torch.randn(shape, generator=g) * 0.05
        else:
            state[key] = torch.zeros(shape)
    write_checkpoint(tmp_path / "models" / "u2netp" / "u2netp.pth", state, "legacy")  # 2018 files predate zip
    pool = ModelPool(models_dir=tmp_path / "models")
    model = pool.load("u2netp")
    assert sum(p.numel() for p in model.parameters()) == load_layout("u2netp")["param_count"]
    with torch.no_grad():
        out = model(torch.rand(1, 3, 32, 32))
    first = out[0] if isinstance(out, (tuple, list)) else out
    assert first.shape[-2:] == (32, 32) and torch.isfinite(first).all()
    half = ModelPool(models_dir=tmp_path / "models", precision="fp16").load("u2netp")
    assert {p.dtype for p in half.parameters()} == {torch.float16}


def test_precision_rules():
    from vtryon.models.manifest import Capabilities, ModelEntry
    from vtryon.models.pool import resolve_dtype

    both = ModelEntry("m", "pose", "x", "f", capabilities=Capabilities(fp16=True, bf16=True))
    neither = ModelEntry("n", "pose", "x", "f")
    assert resolve_dtype(both, "cpu", "auto") == torch.float32
    assert resolve_dtype(both, "cuda", "auto") == torch.float16
    assert resolve_dtype(neither, "cuda", "auto") == torch.float32
    assert resolve_dtype(neither, "cpu", "bf16") == torch.bfloat16  # --precision overrides


def test_unwrap_rules():
    from vtryon.models.unwrap import WrapperSpec, unwrap_state_dict

    spec = WrapperSpec(keys=("params_ema", "params"), strip_prefix="module.")
    t = torch.zeros(1)
    assert unwrap_state_dict({"params": {"module.a": t}, "iter": 5}, spec) == {"a": t}
    assert unwrap_state_dict({"module.a": t}, spec) == {"a": t}  # saved without its container: still strict below
    with pytest.raises(CheckpointMismatch, match="none of the top-level keys"):
        unwrap_state_dict({"optimizer": {"module.a": t}}, spec)
    with pytest.raises(CheckpointMismatch, match="lacks the prefix 'module.'"):
        unwrap_state_dict({"params": {"a": t}}, spec)
