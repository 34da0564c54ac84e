"""`vtryon batch --ray ADDRESS`: the step-major plan on a Ray cluster with Ray Data.

Each step is one ``map_batches`` stage served by an actor pool; an actor builds its step's
backend and loads its models once, then serves batches of pairs for its whole life (GPU
actors where the cluster has GPUs and the step has models). Pairs stream from stage to
stage as rows that carry only their names; the states go through the same work folder as
a local batch (use shared storage for several machines), so a rerun resumes the same way,
and a batch started locally can be finished on Ray or the other way round.

Ray is optional: ``pip install 'vtryon[ray]'``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from vtryon.batch.local import BatchResult, NoProgress, prepare
from vtryon.batch.pairs import Pair
from vtryon.batch.settings import BatchSettings
from vtryon.batch.steprunner import PairFailed, StepRunner
from vtryon.batch.workdir import WorkFolder
from vtryon.errors import PipelineError, UsageError

_INSTALL_HINT = "install it with: pip install 'vtryon[ray]'"


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"--ray needs Ray Data, which is not importable here ({exc})", hint=_INSTALL_HINT) from None
    return ray


def _pair(row_pair: str) -> Pair:
    from pathlib import Path

    d = json.loads(row_pair)
    return Pair(Path(d["person"]), Path(d["garment"]), d["category"], d["output"])


def _actor_runner(settings: dict[str, Any]) -> StepRunner:
    s = BatchSettings.from_dict(settings)
    return StepRunner(s, WorkFolder(s.work, f"ray-{socket.gethostname()}-{os.getpid()}"))


class StepStage:
    """One step of the plan for a batch of pairs (a Ray Data actor: built once, called per batch)."""

    def __init__(self, settings: dict[str, Any], step: str) -> None:
        self.runner = _actor_runner(settings)
        self.k = next(i for i, p in enumerate(self.runner.steps) if p.step == step)
        self.planned = self.runner.steps[self.k]

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        records = list(batch["record"])
        for i, (row_pair, record) in enumerate(zip(batch["pair"], records)):
            if record:  # failed at an earlier step
                continue
            pair = _pair(str(row_pair))
            try:
                state, first = self.runner.restore(pair)
                if first > self.k:
                    continue  # finished before
                memo: dict[str, Any] = {}
                for earlier in self.runner.steps[first : self.k]:  # a damaged step file was removed
                    self.runner.run_step(earlier, pair, state, memo)
                self.runner.run_step(self.planned, pair, state, memo)
            except PairFailed as failure:
                records[i] = json.dumps(self.runner.fail(pair, failure), default=str)
        for planned in self.runner.steps:
            self.runner.end_step(planned)
        return {"id": batch["id"], "pair": batch["pair"], "record": records}


class FinishStage:
    """Writes each pair's output image and done marker."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.runner = _actor_runner(settings)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        records = list(batch["record"])
        for i, (row_pair, record) in enumerate(zip(batch["pair"], records)):
            if record:
                continue
            pair = _pair(str(row_pair))
            try:
                state, first = self.runner.restore(pair)
                for planned in self.runner.steps[first:]:
                    if not planned.implicit_in:
                        raise PairFailed(planned.step, PipelineError("its result is missing from the work folder"))
                    self.runner.run_step(planned, pair, state, {})  # records a step another one performed
                out = self.runner.finish(pair, state)
            except PairFailed as failure:
                out = self.runner.fail(pair, failure)
            records[i] = json.dumps(out, default=str)
        return {"id": batch["id"], "pair": batch["pair"], "record": records}


def _resources(ray: Any) -> tuple[float, float]:
    res = ray.cluster_resources()
    return float(res.get("CPU", 1.0)), float(res.get("GPU", 0.0))


def run_ray(settings: BatchSettings, pairs: list[Pair], address: str, progress: Any = None) -> BatchResult:
    ray = _import_ray()
    progress = progress or NoProgress()
    t0 = time.perf_counter()
    driver = StepRunner(settings)  # plans and checks; loads no model in the driver
    work = driver.work
    work.check_settings(driver.fingerprint())
    driver.check_models()
    started_here = False
    with work.lock(settings.who):
        todo, records = prepare(settings, work, pairs)
        if todo:
            if not ray.is_initialized():
                ray.init(address=address, logging_level="WARNING")
                started_here = True
            try:
                records.update(_run_dataset(ray, settings, driver, todo, progress))
            finally:
                if started_here:
                    ray.shutdown()
    return BatchResult(
        records=[records[p.id] for p in pairs],
        wall_seconds=time.perf_counter() - t0,
        profile=driver.profile.name,
        profile_reason=driver.profile_reason,
        device=settings.device,
        runner=f"ray ({address})",
    )


def _run_dataset(ray: Any, settings: BatchSettings, driver: StepRunner, todo: list[Pair], progress: Any) -> dict[str, dict[str, Any]]:
    from ray.data import ActorPoolStrategy, DataContext

    DataContext.get_current().enable_progress_bars = False
    cpus, gpus = _resources(ray)
    stages = [p for p in driver.steps if not p.implicit_in]
    cpu_share = max(0.05, min(1.0, round(cpus / (len(stages) + 1), 2)))
    conf = settings.to_dict()
    ds = ray.data.from_items([{"id": p.id, "pair": json.dumps(p.as_dict()), "record": ""} for p in todo])
    for planned in driver.steps:
        if planned.implicit_in:
            continue  # nothing runs; the stage of the step that performs it records it
        on_gpu = gpus > 0 and bool(planned.backend.models) and settings.device in ("auto", "cuda")
        ds = ds.map_batches(
            StepStage,
            fn_constructor_kwargs={"settings": conf, "step": planned.step},
            batch_size=settings.chunk,
            compute=ActorPoolStrategy(min_size=1, max_size=max(1, int(gpus if on_gpu else cpus))),
            num_cpus=cpu_share,
            num_gpus=1 if on_gpu else 0,
            batch_format="numpy",
        )
    ds = ds.map_batches(
        FinishStage, fn_constructor_kwargs={"settings": conf}, batch_size=settings.chunk,
        compute=ActorPoolStrategy(min_size=1, max_size=max(1, int(cpus))), num_cpus=cpu_share, batch_format="numpy",
    )
    progress.start(len(todo), len(todo), "pairs")
    out: dict[str, dict[str, Any]] = {}
    try:
        for row in ds.iter_rows():
            record = json.loads(row["record"])
            out[str(row["id"])] = record
            progress.advance(1, f"{row['id']}: {record['status']}")
    except Exception as exc:  # a fatal error inside an actor (missing checkpoint, a bug)
        raise PipelineError(f"the Ray batch stopped: {type(exc).__name__}: {str(exc).strip().splitlines()[-1]}",
                            hint="finished steps are kept; rerun the same command to resume") from exc
    finally:
        progress.stop()
    return out
