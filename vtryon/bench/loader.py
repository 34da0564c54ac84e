"""Loader benchmark: time from checkpoint file to a ready module, against a plain memory copy.

    python -m vtryon.bench.loader [--size-mb 1024] [--dir /tmp] [--repeat 2] [--json]

Writes a ~1 GB safetensors and a ~1 GB .pth (zip) checkpoint of a stack of linear layers,
then loads each through :class:`vtryon.models.pool.ModelPool` (the real path: size check,
cached sha256, memory-mapped read, unwrap, meta build, strict ``load_state_dict(assign=True)``,
cast, move) with the page cache warm and cold (``posix_fadvise(POSIX_FADV_DONTNEED)``), in
fp32 and fp16. Each case runs in its own process, so its peak RSS is its own. "ready" means
every weight page is resident (a memory-mapped load is lazy: the first forward pass would pay
the rest). The same run measures a plain copy of a tensor of the same size; load speed is
reported as a fraction of that copy's speed. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

WIDTH = 4096  # one layer = 4096 x 4096 fp32 = 64 MiB


class BENCH_MLP:
    """A stack of bias-free linear layers, as an architecture namespace for the pool."""

    @staticmethod
    def build(config: Mapping[str, Any]) -> Any:
        from torch import nn

        return nn.Sequential(*[nn.Linear(config["width"], config["width"], bias=False) for _ in range(config["layers"])])

    @staticmethod
    def config_from_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
        return {"layers": len(state), "width": int(state["0.weight"].shape[0])}


def _register() -> None:
    from vtryon.archs import ARCHITECTURES

    ARCHITECTURES["bench_mlp"] = "vtryon.bench.loader:BENCH_MLP"


def _rss() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key = line.split(":")[0]
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(line.split()[1]) * 1024
    return out


def _drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _touch(model: Any) -> float:
    """Read one element per 4 KiB page of every weight, so every page is resident; returns a checksum."""
    total = 0.0
    for p in model.parameters():
        flat = p.detach().reshape(-1)
        step = max(1, 4096 // p.element_size())
        total += float(flat[::step].float().sum())
    return total


def write_files(folder: Path, size_mb: int) -> dict[str, Path]:
    import torch
    from safetensors.torch import save_file

    layers = max(1, size_mb * 2**20 // (WIDTH * WIDTH * 4))
    g = torch.Generator().manual_seed(0)
    state = {f"{i}.weight": torch.randn(WIDTH, WIDTH, generator=g) * 0.01 for i in range(layers)}
    files = {"safetensors": folder / "bench" / "bench.safetensors", "pth": folder / "bench_pth" / "bench.pth"}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(files["safetensors"]))
    torch.save(state, files["pth"])
    for path in files.values():
        _drop_cache(path)  # fsync + drop: the write's pages are not what a warm read sees
    return files


def manifest_for(folder: Path, files: dict[str, Path]) -> Path:
    lines = []
    for name, fmt in (("bench", "safetensors"), ("bench_pth", "pth")):
        lines += [f"[models.{name}]", 'step = "virtual_fitting"', 'arch = "bench_mlp"', f'file = "{files[fmt].name}"',
                  f"size = {files[fmt].stat().st_size}", 'license = "benchmark"', "capabilities = { fp16 = true, bf16 = true }", ""]
    path = folder / "bench.toml"
    path.write_text("\n".join(lines))
    return path


def run_case(folder: Path, manifest: Path, model_id: str, cache: str, precision: str) -> dict[str, Any]:
    """One load in this process (called in a child process by :func:`main`)."""
    import torch

    from vtryon.models.pool import ModelPool

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    _register()
    pool = ModelPool(models_dir=folder, manifest=[manifest], precision=precision)
    path = pool.path(model_id)  # hashes the file once (cached by path, size, mtime) before timing
    nbytes = path.stat().st_size
    if cache == "cold":
        _drop_cache(path)
    else:
        with open(path, "rb") as fh:  # warm: read it once so the page cache holds it
            while fh.read(64 * 2**20):
                pass
    before = _rss()
    t0 = time.perf_counter()
    model = pool.load(model_id)
    t_load = time.perf_counter() - t0
    _touch(model)
    t_ready = time.perf_counter() - t0
    after = _rss()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return {
        "case": f"{model_id}:{cache}:{precision}", "file_bytes": nbytes, "weights_bytes": weights,
        "load_s": t_load, "ready_s": t_ready, "rss_before": before["VmRSS"], "peak_rss": after["VmHWM"],
        "rss_anon": after["RssAnon"], "rss_file": after["RssFile"],
    }


def memcpy_speed(nbytes: int, repeat: int = 3) -> float:
    """Bytes per second of a plain tensor copy of ``nbytes`` (best of ``repeat``)."""
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    src = torch.empty(nbytes, dtype=torch.uint8)
    src.fill_(1)
    dst = torch.empty_like(src)
    dst.fill_(0)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return nbytes / best


def _child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "vtryon.bench.loader", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vtryon.bench.loader", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the checkpoints (default: a temporary folder)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per case (the best is reported)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--case", nargs=4, metavar=("FOLDER", "MANIFEST", "ID", "CACHE:PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--memcpy", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        folder, manifest, model_id, cp = args.case
        cache, precision = cp.split(":")
        print(json.dumps(run_case(Path(folder), Path(manifest), model_id, cache, precision)))
        return 0
    if args.memcpy:
        print(json.dumps({"memcpy_Bps": memcpy_speed(args.memcpy)}))
        return 0
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="vtryon-bench-") as tmp:
        folder = Path(tmp)
        files = write_files(folder, args.size_mb)
        manifest = manifest_for(folder, files)
        nbytes = files["safetensors"].stat().st_size
        memcpy = max(_child(["--memcpy", str(nbytes)])["memcpy_Bps"] for _ in range(args.repeat))
        results = []
        for model_id in ("bench", "bench_pth"):
            for cache in ("warm", "cold"):
                for precision in ("fp32", "fp16"):
                    runs = [_child(["--case", str(folder), str(manifest), model_id, f"{cache}:{precision}"]) for _ in range(args.repeat)]
                    best = min(runs, key=lambda r: r["ready_s"])
                    best["ready_vs_memcpy"] = (best["file_bytes"] / best["ready_s"]) / memcpy
                    best["load_vs_memcpy"] = (best["file_bytes"] / best["load_s"]) / memcpy
                    best["peak_extra_vs_file"] = (best["peak_rss"] - best["rss_before"]) / best["file_bytes"]
                    results.append(best)
    if args.json:
        print(json.dumps({"memcpy_GBps": memcpy / 1e9, "results": results}, indent=2))
        return 0
    print(f"plain memory copy of {nbytes / 2**20:.0f} MiB: {memcpy / 1e9:.1f} GB/s")
    print(f"{'case':28} {'load s':>7} {'ready s':>8} {'ready GB/s':>10} {'x memcpy':>8} {'peak RSS +':>11} {'x file':>7}")
    for r in results:
        speed = r["file_bytes"] / r["ready_s"] / 1e9
        extra = r["peak_rss"] - r["rss_before"]
        print(f"{r['case']:28} {r['load_s']:7.3f} {r['ready_s']:8.3f} {speed:10.2f} {r['ready_vs_memcpy']:8.2f} {extra / 2**20:9.0f} MiB {r['peak_extra_vs_file']:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
