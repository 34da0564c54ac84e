"""Benchmark of the embedded profile: per-step warm time and peak RSS, cold `vtryon run` wall time.

    python -m vtryon.bench.embedded [--out DIR] [--pairs N] [--repeat R]

Targets (a benchmark, not a test): <= 1.0 s per 768x1024 pair warm on 2 CPU cores,
`vtryon run` <= 3 s wall from a cold process, peak RSS <= 1 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PAIR = (ROOT / "examples" / "person_grace_hopper.jpg", ROOT / "examples" / "garment_tshirt_black_openclipart.png")
SHARED = ROOT.parent / "shared" / "images"


def pairs(limit: int) -> list[tuple[Path, Path]]:
    out = [EXAMPLE_PAIR]
    persons = sorted((SHARED / "person").glob("*"))
    garments = sorted((SHARED / "garment").glob("*"))
    for i, p in enumerate(persons):
        if garments:
            out.append((p, garments[i % len(garments)]))
    return out[:limit]


def warm_run(pair_list: list[tuple[Path, Path]], repeat: int) -> dict:
    from vtryon.imageio import load_image
    from vtryon.pipeline import Pipeline, peak_rss_bytes
    from vtryon.profiles import get_profile
    from vtryon.state import TryOnState
    from vtryon.steps.base import RunContext

    profile = get_profile("embedded")
    per_step: dict[str, list[float]] = {}
    per_step_rss: dict[str, int] = {}
    per_pair: list[float] = []
    # warm-up: builds MediaPipe's graphs once, as a long-running process (batch) would
    person, garment = load_image(pair_list[0][0]), load_image(pair_list[0][1])
    Pipeline(profile, RunContext()).run(TryOnState(person=person, garment=garment))
    for _ in range(repeat):
        for p, g in pair_list:
            state = TryOnState(person=load_image(p), garment=load_image(g), person_path=p, garment_path=g)
            t0 = time.perf_counter()
            Pipeline(profile, RunContext()).run(state)
            per_pair.append(time.perf_counter() - t0)
            for r in state.records:
                per_step.setdefault(r.step, []).append(r.seconds)
                per_step_rss[r.step] = max(per_step_rss.get(r.step, 0), r.peak_rss_bytes)
    return {
        "pairs": len(pair_list),
        "repeat": repeat,
        "seconds_per_pair": {"median": statistics.median(per_pair), "max": max(per_pair)},
        "steps": {s: {"median_s": statistics.median(v), "max_s": max(v), "peak_rss_mb": per_step_rss[s] / 2**20} for s, v in per_step.items()},
        "process_peak_rss_mb": peak_rss_bytes() / 2**20,
    }


def cold_runs(pair_list: list[tuple[Path, Path]], out: Path) -> list[dict]:
    rows = []
    for i, (p, g) in enumerate(pair_list):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "vtryon", "run", str(p), str(g), "--profile", "embedded", "-o", str(out / f"cold_{i}.png"), "--json"], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        rows.append({"person": p.name, "garment": g.name, "wall_s": wall, "ok": proc.returncode == 0, "peak_rss_mb_at_least": max(peak, before) / 1024})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("out/bench"))
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cold", type=int, default=3, help="how many pairs to run as cold `vtryon run` processes")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = pairs(args.pairs)
    result = {"warm": warm_run(chosen, args.repeat), "cold": cold_runs(chosen[: args.cold], args.out)}
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"embedded profile, {result['warm']['pairs']} pairs x {args.repeat} (warm)")
    for col in ("step", "median", "max", "peak RSS"):
        table.add_column(col, justify="right" if col != "step" else "left")
    for s, v in result["warm"]["steps"].items():
        table.add_row(s, f"{v['median_s'] * 1000:.0f} ms", f"{v['max_s'] * 1000:.0f} ms", f"{v['peak_rss_mb']:.0f} MB")
    console = Console()
    console.print(table)
    w = result["warm"]["seconds_per_pair"]
    console.print(f"warm: {w['median']:.2f} s per pair (median), {w['max']:.2f} s max; process peak RSS {result['warm']['process_peak_rss_mb']:.0f} MB")
    for row in result["cold"]:
        console.print(f"cold `vtryon run` {row['person']} x {row['garment']}: {row['wall_s']:.2f} s wall, ok={row['ok']}")
    (args.out / "embedded.json").write_text(json.dumps(result, indent=2))
    console.print(f"written: {args.out / 'embedded.json'}")


if __name__ == "__main__":
    main()
