"""Checkpoint load throughput against a raw read of the same bytes.

For each file: a raw read (16 MiB blocks into one reused buffer), then the loader's
``read_state_dict`` with every tensor copied once (memory-mapped formats read lazily, so an
untouched load would measure nothing; the raw read also copies each byte once), then the pool's whole ``load`` (verify, unwrap,
build on meta, strict fill, cast, move to the device). The file was hashed (verified) just
before, so all three read from the page cache: the figures compare the loader's work with
memory bandwidth, not the disk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

_BLOCK = 16 * 2**20


def files_of(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def raw_read_seconds(paths: list[Path]) -> tuple[int, float]:
    buf = bytearray(_BLOCK)
    view = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(view):
                total += n
    return total, time.perf_counter() - t0


def _touch(obj: Any) -> int:
    """Read every byte of every tensor in a (nested) state dict; the bytes touched."""
    import torch

    if isinstance(obj, torch.Tensor):
        if obj.numel() == 0:
            return 0
        obj.clone()  # one copy of every byte, as the raw read makes one into its buffer
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_touch(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_touch(v) for v in obj)
    return 0


def loader_read_seconds(path: Path) -> tuple[int, float]:
    from vtryon.models.checkpoint_io import read_state_dict

    t0 = time.perf_counter()
    state = read_state_dict(path)
    touched = _touch(state)
    seconds = time.perf_counter() - t0
    del state
    return touched, seconds


def checkpoint_throughput(path: Path) -> dict[str, Any]:
    """Raw read vs loader read of one checkpoint file (MB/s, page cache warm; best of 2 after a
    warm-up read, since other work on the machine only ever adds time)."""
    raw_read_seconds([path])
    size, raw_s = min((raw_read_seconds([path]) for _ in range(2)), key=lambda r: r[1])
    touched, load_s = min((loader_read_seconds(path) for _ in range(2)), key=lambda r: r[1])
    return {
        "file": str(path),
        "size_mb": round(size / 2**20, 2),
        "raw_read_s": round(raw_s, 4),
        "raw_read_mb_s": round(size / 2**20 / raw_s, 1) if raw_s > 0 else None,
        "loader_read_s": round(load_s, 4),
        "loader_read_mb_s": round(touched / 2**20 / load_s, 1) if load_s > 0 else None,
        "tensor_mb": round(touched / 2**20, 2),
        "loader_vs_raw": round(raw_s / load_s, 3) if load_s > 0 else None,
    }


def profile_checkpoints(model_ids: list[str], pool_factory: Any) -> list[dict[str, Any]]:
    """Every checkpoint of a profile: raw vs loader read, and the pool's whole load (cold pool)."""
    rows = []
    for model_id in model_ids:
        pool = pool_factory()
        entry = pool.entry(model_id)
        path = pool.path(model_id)  # verifies (hashes) the file: the page cache is warm after
        if path.is_dir() or not entry.arch:
            size, raw_s = raw_read_seconds(files_of(path))
            rows.append({
                "model": model_id, "file": str(path), "size_mb": round(size / 2**20, 2),
                "raw_read_mb_s": round(size / 2**20 / raw_s, 1) if raw_s > 0 else None,
                "note": "read by its own library (a folder or a file the pool does not build)",
            })
            continue
        row = {"model": model_id, **checkpoint_throughput(path)}
        t0 = time.perf_counter()
        pool.load(model_id)
        row["pool_load_s"] = round(time.perf_counter() - t0, 4)
        row["pool_load_mb_s"] = round(row["size_mb"] / row["pool_load_s"], 1) if row["pool_load_s"] > 0 else None
        pool.clear()
        rows.append(row)
    return rows
