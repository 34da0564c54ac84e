"""The benchmark's measurements: per-step cold and warm time and memory, and batch throughput
(separate `vtryon run` processes, one process pair by pair, step-major) under offload tiers."""

from __future__ import annotations

import csv
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vtryon.bench.memory import DevicePeaks
from vtryon.errors import UsageError


@dataclasses.dataclass
class Target:
    """What is measured: the profile, device and loader options shared by every mode."""

    profile: str
    device: str
    precision: str = "auto"
    models_dir: Path | None = None
    manifests: tuple[Path, ...] = ()
    backends: dict[str, str] = dataclasses.field(default_factory=dict)  # --use STEP=BACKEND

    def request(self, person: Path, garment: Path, output: Path, offload: str = "none") -> Any:
        from vtryon.runner import RunRequest

        return RunRequest(person=person, garment=garment, output=output, profile=self.profile, device=self.device,
                          precision=self.precision, offload=offload, models_dir=self.models_dir, manifests=self.manifests,
                          backends=dict(self.backends))

    def resolved(self) -> Any:
        """The profile with the --use overrides applied."""
        from vtryon.profiles import get_profile
        from vtryon.runner import with_backends

        profile = get_profile(self.profile)
        return with_backends(profile, self.backends) if self.backends else profile

    def cli_options(self) -> list[str]:
        opts = ["--profile", self.profile, "--device", self.device, "--precision", self.precision]
        for step, name in self.backends.items():
            opts += ["--use", f"{step}={name}"]
        if self.models_dir:
            opts += ["--models-dir", str(self.models_dir)]
        for m in self.manifests:
            opts += ["--manifest", str(m)]
        return opts


def _state(person: Path, garment: Path) -> Any:
    from vtryon.imageio import load_image
    from vtryon.state import TryOnState

    return TryOnState(person=load_image(person), garment=load_image(garment), person_path=person, garment_path=garment)


def _pipeline(target: Target, offload: str) -> Any:
    from vtryon.pipeline import Pipeline
    from vtryon.runner import make_context

    req = target.request(Path("p.png"), Path("g.png"), Path("o.png"), offload)
    profile = target.resolved()
    return Pipeline(profile, make_context(req, profile, target.device))


def step_times(target: Target, pairs: list[tuple[Path, Path]], warm_pairs: int = 3) -> dict[str, Any]:
    """Each step's time and peak memory: cold (first pair in this process, models loaded
    in it) and warm (the median over the next pairs, models resident). A pair the profile
    cannot do (no person found, ...) is left out and named."""
    from vtryon.errors import VtryonError

    pipeline = _pipeline(target, "none")
    peaks = DevicePeaks(target.device)
    candidates = pairs + pairs[:1] if len(pairs) == 1 else pairs  # one pair: measure it twice
    per_step: dict[str, dict[str, Any]] = {}
    samples: list[dict[str, dict[str, Any]]] = []
    left_out = []
    for person, garment in candidates:
        if len(samples) > warm_pairs:
            break
        state = _state(person, garment)
        pipeline.ctx = dataclasses.replace(pipeline.ctx, memo={})  # one run's cache per pair
        run: dict[str, dict[str, Any]] = {}
        try:
            for planned in pipeline.steps:
                peaks.reset()
                record = pipeline.run_step(planned, state)
                per_step.setdefault(planned.step, {"backend": planned.backend_name, "status": record.status})
                run[planned.step] = {"seconds": record.seconds, **peaks.read()}
        except VtryonError as exc:
            left_out.append({"person": str(person), "garment": str(garment), "reason": str(exc)})
            continue
        samples.append(run)
    if len(samples) < 2:
        raise UsageError("the benchmark needs at least two pairs the profile can do; "
                         + "; ".join(f"{Path(x['person']).name}: {x['reason']}" for x in left_out[:3]))
    out = {}
    for step, row in per_step.items():
        cold, warm = samples[0][step], [s[step] for s in samples[1:]]
        out[step] = {
            **row,
            "cold_s": round(cold["seconds"], 4),
            "warm_s": round(statistics.median(w["seconds"] for w in warm), 4),
            "cold_peak_rss_mb": cold["peak_rss_mb"],
            "warm_peak_rss_mb": max(w["peak_rss_mb"] for w in warm),
            **{f"cold_{k}": v for k, v in cold.items() if k.startswith("cuda")},
            **{f"warm_{k}": max(w[k] for w in warm) for k in warm[0] if k.startswith("cuda")},
        }
    return {"pairs_cold": 1, "pairs_warm": len(samples) - 1, "left_out": left_out, "steps": out}


def _rate(n_ok: int, seconds: float) -> float | None:
    return round(60.0 * n_ok / seconds, 2) if n_ok and seconds > 0 else None


def separate_processes(target: Target, pairs: list[tuple[Path, Path]], scratch: Path) -> dict[str, Any]:
    """One `vtryon run` process per pair, as a shell loop would do it."""
    ok, t0 = 0, time.perf_counter()
    for i, (person, garment) in enumerate(pairs):
        cmd = [sys.executable, "-m", "vtryon", "run", str(person), str(garment), "-o", str(scratch / f"run_{i}.png"), *target.cli_options()]
        ok += subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    wall = time.perf_counter() - t0
    return {"mode": "vtryon run per pair", "pairs": len(pairs), "ok": ok, "seconds": round(wall, 3),
            "seconds_per_pair": round(wall / len(pairs), 3), "pairs_per_minute": _rate(ok, wall)}


def batch_process(target: Target, pairs: list[tuple[Path, Path]], scratch: Path, chunk: int) -> dict[str, Any]:
    """One `vtryon batch` process for all pairs (its start-up included)."""
    listing = scratch / "pairs.csv"
    with open(listing, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["person", "garment", "output"])
        w.writerows([str(p.resolve()), str(g.resolve()), f"pair_{i:04d}.png"] for i, (p, g) in enumerate(pairs))
    cmd = [sys.executable, "-m", "vtryon", "batch", str(listing), "-o", str(scratch / "batch"), "--chunk", str(chunk), "--json", *target.cli_options()]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    ok = len(list((scratch / "batch").glob("pair_*.png")))
    out = {"mode": "vtryon batch", "pairs": len(pairs), "ok": ok, "seconds": round(wall, 3),
           "seconds_per_pair": round(wall / len(pairs), 3), "pairs_per_minute": _rate(ok, wall)}
    if proc.returncode not in (0, 1):
        out["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["exit code %d" % proc.returncode]
    return out


def pair_major(target: Target, pairs: list[tuple[Path, Path]], offload: str) -> dict[str, Any]:
    """One process, pair after pair through all eight steps and into its output file, one model
    pool kept across pairs (so under ``sequential`` every pair loads every model again)."""
    from vtryon.imageio import save_image

    pipeline = _pipeline(target, offload)
    peaks = DevicePeaks(target.device)
    peaks.reset()
    ok, t0 = 0, time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vtryon-bench-") as tmp:
        for i, (person, garment) in enumerate(pairs):
            pipeline.ctx = dataclasses.replace(pipeline.ctx, memo={})
            try:
                state = pipeline.run(_state(person, garment))
                save_image(state.result if state.result is not None else state.tryon, Path(tmp) / f"pair_{i:04d}.png")
                ok += 1
            except Exception:  # noqa: BLE001 - a bad pair counts as not done, as in a batch
                pass
    wall = time.perf_counter() - t0
    pool = pipeline.ctx.models
    return {"mode": "in-process, pair by pair", "offload": offload, "pairs": len(pairs), "ok": ok, "seconds": round(wall, 3),
            "seconds_per_pair": round(wall / len(pairs), 3), "pairs_per_minute": _rate(ok, wall),
            "model_loads": pool.loads if pool is not None else None, **peaks.read()}


def step_major(target: Target, pairs: list[tuple[Path, Path]], offload: str, chunk: int) -> dict[str, Any]:
    """One process, the step-major batch runner (its work-folder writes included)."""
    from vtryon.batch import BatchSettings
    from vtryon.batch.local import run_local
    from vtryon.batch.pairs import name_pairs

    listed = name_pairs([(p, g, "upper", f"pair_{i:04d}.png") for i, (p, g) in enumerate(pairs)])
    peaks = DevicePeaks(target.device)
    with tempfile.TemporaryDirectory(prefix="vtryon-bench-") as tmp:
        settings = BatchSettings(output=Path(tmp), profile=target.profile, device=target.device, precision=target.precision,
                                 offload=offload, chunk=chunk, models_dir=target.models_dir, manifests=target.manifests,
                                 backends=dict(target.backends))
        peaks.reset()
        result = run_local(settings, listed)
    ok = sum(r["status"] == "done" for r in result.records)
    wall = result.wall_seconds
    return {"mode": "in-process, step-major", "offload": offload, "chunk": chunk, "pairs": len(pairs), "ok": ok,
            "seconds": round(wall, 3), "seconds_per_pair": round(wall / len(pairs), 3), "pairs_per_minute": _rate(ok, wall),
            "model_loads": result.model_loads, **peaks.read()}
