"""`vtryon bench`: the whole benchmark of one profile, written as JSON and a PNG chart.

1. steps: per step, cold (first pair in the process) and warm time, peak RSS, CUDA peaks;
2. checkpoints: each checkpoint's loader read against a raw read of the same bytes;
3. throughput for N pairs: separate `vtryon run` processes, one `vtryon batch` process,
   one process pair by pair, one process step-major;
4. offload tiers side by side (pair by pair and step-major), for profiles with checkpoints.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.table import Table

from vtryon import __version__
from vtryon.errors import UsageError

TIERS = ("none", "model", "sequential")


@dataclass
class BenchOptions:
    sources: list[Path]
    profile: str = "embedded"
    device: str = "auto"
    pairs: int = 4
    offloads: list[str] = field(default_factory=list)
    out: Path = Path("out/bench")
    chunk: int = 8
    processes: bool = True
    precision: str = "auto"
    models_dir: Path | None = None
    manifests: tuple[Path, ...] = ()
    backends: dict[str, str] = field(default_factory=dict)  # --use STEP=BACKEND


def _machine(device: str) -> dict[str, Any]:
    import os

    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                            "vtryon": __version__, "device": device}
    try:
        load = os.getloadavg()
        info["load_average_1m"] = round(load[0], 2)  # other work on the machine skews the figures
    except OSError:
        pass
    if device.startswith("cuda"):
        import torch

        info["gpu"] = torch.cuda.get_device_name()
    return info


def run_bench(opts: BenchOptions, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    from vtryon.bench import chart, measure
    from vtryon.bench.checkpoints import profile_checkpoints
    from vtryon.bench.sources import bench_pairs
    from vtryon.runner import pick_device, preflight, resolve_profile

    say = log or (lambda _msg: None)
    bad = [o for o in opts.offloads if o not in TIERS]
    if bad:
        raise UsageError(f"--offload {bad[0]!r} is not one of: {', '.join(TIERS)}")
    if opts.pairs < 1:
        raise UsageError("--pairs: give at least 1")
    base, _reason = resolve_profile(opts.profile, opts.models_dir, opts.manifests)
    target = measure.Target(base.name, "cpu", opts.precision, opts.models_dir, opts.manifests, dict(opts.backends))
    profile = target.resolved()
    model_ids = profile.models()
    target.device = device = pick_device(opts.device, needs_torch=bool(model_ids))
    preflight(profile, target.request(Path("p.png"), Path("g.png"), Path("o.png")))
    pairs = bench_pairs(opts.sources, opts.pairs)
    tiers = opts.offloads or list(TIERS)
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "profile": profile.name,
        "device": device,
        "machine": _machine(device),
        "pairs": [[str(p), str(g)] for p, g in pairs],
        "chunk": opts.chunk,
    }
    if model_ids:
        from vtryon.runner import make_context

        say(f"checkpoint throughput ({len(model_ids)} files)")
        req = target.request(Path("p.png"), Path("g.png"), Path("o.png"))
        result["checkpoints"] = {"files": profile_checkpoints(model_ids, lambda: make_context(req, profile, device).models)}
    else:
        result["checkpoints"] = {"files": [], "note": f"profile {profile.name} loads no checkpoint"}

    say(f"per-step times: {profile.name} on {device}")
    result["steps"] = measure.step_times(target, pairs)

    first_tier = tiers[0]
    say(f"throughput over {len(pairs)} pairs")
    throughput = []
    with tempfile.TemporaryDirectory(prefix="vtryon-bench-") as tmp:
        scratch = Path(tmp)
        if opts.processes:
            throughput.append(measure.separate_processes(target, pairs, scratch))
            throughput.append(measure.batch_process(target, pairs, scratch, opts.chunk))
    tier_runs = []
    pm = measure.pair_major(target, pairs, first_tier)
    sm = measure.step_major(target, pairs, first_tier, opts.chunk)
    throughput += [pm, sm]
    result["throughput"] = throughput
    if model_ids:
        tier_runs += [pm, sm]
        for tier in tiers[1:]:
            say(f"offload tier {tier}")
            tier_runs.append(measure.pair_major(target, pairs, tier))
            tier_runs.append(measure.step_major(target, pairs, tier, opts.chunk))
        result["offload_tiers"] = {"runs": tier_runs}
    else:
        result["offload_tiers"] = {"runs": [], "note": f"profile {profile.name} loads no checkpoint: the tiers do the same work"}
    result["seconds"] = round(time.perf_counter() - t0, 2)

    opts.out.mkdir(parents=True, exist_ok=True)
    json_path = opts.out / "bench.json"
    png_path = opts.out / "bench.png"
    result["files"] = {"json": str(json_path), "chart": str(png_path)}
    chart.draw(result, png_path)
    from vtryon.imageio import save_text

    save_text(json.dumps(result, indent=2) + "\n", json_path)
    return result


def print_bench(result: dict[str, Any], console: Console) -> None:
    steps = result["steps"]["steps"]
    cuda = any("cold_cuda_max_allocated_mb" in v for v in steps.values())
    table = Table(title=f"vtryon bench: {result['profile']} on {result['device']} (cold: first pair; warm: median of {result['steps']['pairs_warm']})")
    cols = ["step", "backend", "cold", "warm", "peak RSS cold", "peak RSS warm"] + (["CUDA alloc", "CUDA reserved"] if cuda else [])
    for c in cols:
        table.add_column(c, justify="left" if c in ("step", "backend") else "right")
    for step, v in steps.items():
        row = [step, v["backend"], f"{v['cold_s'] * 1000:.0f} ms", f"{v['warm_s'] * 1000:.0f} ms",
               f"{v['cold_peak_rss_mb']:.0f} MB", f"{v['warm_peak_rss_mb']:.0f} MB"]
        if cuda:
            row += [f"{v.get('warm_cuda_max_allocated_mb', 0):.0f} MB", f"{v.get('warm_cuda_max_reserved_mb', 0):.0f} MB"]
        table.add_row(*row)
    console.print(table)
    t = Table(title="throughput")
    for c in ("mode", "offload", "pairs ok", "seconds", "s/pair", "pairs/min", "model loads", "peak RSS"):
        t.add_column(c, justify="left" if c == "mode" else "right")
    rows = result["throughput"] + [r for r in result["offload_tiers"]["runs"] if r not in result["throughput"]]
    for r in rows:
        t.add_row(r["mode"], r.get("offload", "-"), f"{r['ok']}/{r['pairs']}", f"{r['seconds']:.1f}", f"{r['seconds_per_pair']:.2f}",
                  f"{r['pairs_per_minute']}" if r["pairs_per_minute"] else "-", str(r.get("model_loads", "-")),
                  f"{r['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in r else "-")
    console.print(t)
    for c in result["checkpoints"]["files"]:
        if "loader_read_mb_s" in c:
            console.print(f"{c['model']}: {c['size_mb']} MB; raw read {c['raw_read_mb_s']} MB/s, loader {c['loader_read_mb_s']} MB/s, "
                          f"pool load {c['pool_load_s']} s", highlight=False)
    for key in ("checkpoints", "offload_tiers"):
        if result[key].get("note"):
            console.print(f"{key.replace('_', ' ')}: {result[key]['note']}", highlight=False)
    console.print(f"written: {result['files']['json']} and {result['files']['chart']}", highlight=False)
