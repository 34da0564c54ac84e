"""Runs one step for one pair against the work folder: restore the pair's state from the
steps it has finished, run the step through the lead's :class:`~vtryon.pipeline.Pipeline`,
commit what the step wrote. Shared by the local runner and the Ray actors.

A :class:`StepRunner` builds the pipeline (its backends) and the model pool once. While a
step passes over several pairs, the offload policy is held back (:class:`DeferredOffloadPool`)
and applied once when the step is done with them (:meth:`StepRunner.end_step`), so its
models load once per batch (``none``, ``model``) or once per chunk (``sequential``).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

from vtryon.batch.pairs import Pair
from vtryon.batch.settings import BatchSettings, fingerprint
from vtryon.batch.workdir import WorkFolder
from vtryon.errors import ModelError, PipelineError, VtryonError
from vtryon.pipeline import PlannedStep, Pipeline
from vtryon.state import StepRecord, TryOnState
from vtryon.steps.base import RunContext

_FIELDS = tuple(f.name for f in dataclasses.fields(TryOnState) if f.name not in ("aux", "records"))
FATAL = (ModelError,)  # a missing or broken checkpoint fails every pair: stop the batch instead


class PairFailed(Exception):
    """A pair cannot go on: ``step`` is where, ``error`` why."""

    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(f"{step}: {error}")
        self.step = step
        self.error = error


class DeferredOffloadPool:
    """The model pool, with ``end_step`` held back until the step has seen every pair of the chunk."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def end_step(self, step: str, model_ids: Any, offload: str | None = None) -> None:
        pass  # the step is over for this pair only; its models stay where they are


def _snapshot(state: TryOnState) -> dict[str, Any]:
    snap = {name: getattr(state, name) for name in _FIELDS}
    snap.update({f"aux.{k}": v for k, v in state.aux.items()})
    return snap


def _written(state: TryOnState, before: dict[str, Any], declared: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """The fields and aux entries the step replaced, added or declares it writes; and the aux keys it removed."""
    now = _snapshot(state)
    names = [n for n, v in now.items() if n not in before or before[n] is not v]
    names += [n for n in declared if n in now and n not in names]
    removed = [n[4:] for n in before if n.startswith("aux.") and n not in now]
    return {n: now[n] for n in names}, removed


def _apply(state: TryOnState, values: dict[str, Any], meta: dict[str, Any]) -> None:
    for name, value in values.items():
        if name.startswith("aux."):
            state.aux[name[4:]] = value
        else:
            setattr(state, name, value)
    for key in meta.get("aux_removed", ()):
        state.aux.pop(key, None)
    if meta.get("record"):
        state.records.append(StepRecord(**meta["record"]))


class StepRunner:
    def __init__(self, settings: BatchSettings, work: WorkFolder | None = None) -> None:
        from vtryon.runner import make_context, pick_device, resolve_profile, with_backends

        self.settings = settings
        self.work = work or WorkFolder(settings.work, settings.who)
        self.request = req = settings.request()
        self.profile, self.profile_reason = resolve_profile(req.profile, req.models_dir, req.manifests)
        if req.backends:
            self.profile = with_backends(self.profile, req.backends)
            self.profile_reason += "; --use " + ", ".join(f"{k}={v}" for k, v in req.backends.items())
        self.device = pick_device(req.device, needs_torch=bool(self.profile.models()))
        self.base_ctx: RunContext = make_context(req, self.profile, self.device)
        self.pool = self.base_ctx.models
        self._ctx_models = DeferredOffloadPool(self.pool) if self.pool is not None else None
        self.pipeline = Pipeline(self.profile, self.base_ctx)
        self.steps: list[PlannedStep] = self.pipeline.steps
        self._touched: set[str] = set()
        self._started: set[str] = set()

    def fingerprint(self) -> dict[str, Any]:
        return fingerprint(self.profile.name, self.profile.backends, self.settings)

    def check_models(self) -> None:
        """Stop before any pair runs when a checkpoint of the profile is missing or broken."""
        from vtryon.runner import preflight

        preflight(self.profile, self.request)

    # -- state ---------------------------------------------------------------------------------
    def new_state(self, pair: Pair) -> TryOnState:
        from vtryon.imageio import load_image

        try:
            person = load_image(pair.person, role="person image")
            garment = load_image(pair.garment, role="garment image")
        except VtryonError as exc:
            raise PairFailed("inputs", exc) from None
        return TryOnState(person=person, garment=garment, category=pair.category, seed=self.settings.seed,
                          person_path=pair.person, garment_path=pair.garment)

    def restore(self, pair: Pair) -> tuple[TryOnState, int]:
        """The pair's state with every finished step applied in order, and the index of the
        first unfinished step (``len(self.steps)`` when all are finished)."""
        if pair.id not in self._started:
            self.work.start_pair(pair)  # clears what a killed writer left in the pair's folder
            self._started.add(pair.id)
        state = self.new_state(pair)
        for i, planned in enumerate(self.steps):
            loaded = self.work.load_step(pair, planned.step)
            if loaded is None:
                return state, i
            _apply(state, *loaded)
        return state, len(self.steps)

    def apply_committed(self, state: TryOnState, pair: Pair, step: str) -> bool:
        loaded = self.work.load_step(pair, step)
        if loaded is None:
            return False
        _apply(state, *loaded)
        return True

    # -- running -------------------------------------------------------------------------------
    def run_step(self, planned: PlannedStep, pair: Pair, state: TryOnState, memo: dict[str, Any]) -> StepRecord:
        """Run ``planned`` on the pair's state and commit what it wrote. Raises PairFailed."""
        self.pipeline.ctx = dataclasses.replace(self.base_ctx, memo=memo, models=self._ctx_models)
        if not planned.implicit_in:
            self._touched.add(planned.step)  # its models may be loaded now, even if the pair fails
        before = _snapshot(state)
        try:
            record = self.pipeline.run_step(planned, state)
        except FATAL:
            raise
        except VtryonError as exc:
            raise PairFailed(planned.step, exc) from None
        finally:
            self.pipeline.ctx = self.base_ctx
        values, removed = _written(state, before, () if planned.implicit_in else tuple(planned.backend.writes))
        meta = {
            "pair": pair.id,
            "step": planned.step,
            "backend": planned.backend_name,
            "record": dataclasses.asdict(record),
            "aux_removed": removed,
            "pid": os.getpid(),
            "committed_at": time.time(),
        }
        self.work.commit_step(pair, planned.step, values, meta)
        return record

    def end_step(self, planned: PlannedStep) -> None:
        """The step is done with the current pairs: apply the offload policy once."""
        if planned.step not in self._touched or planned.implicit_in:
            return
        self._touched.discard(planned.step)
        backend = self.pipeline.backend(planned)
        offload = self.settings.offload
        if self.pool is not None:
            self.pool.end_step(planned.step, backend.models, offload)
        release = getattr(backend, "release", None)
        if offload == "sequential" and callable(release):
            release()  # a backend that keeps its own engine (diffusion) frees it too

    def finish(self, pair: Pair, state: TryOnState) -> dict[str, Any]:
        """Write the pair's output image and its done marker; return its report record."""
        from vtryon.imageio import save_image

        final = state.result if state.result is not None else state.tryon
        if final is None:
            raise PairFailed("output", PipelineError("the steps produced no try-on image"))
        output = self.settings.output / pair.output
        save_image(final, output)
        record = {
            **pair.as_dict(),
            "status": "done",
            "output_path": str(output),
            "seconds": round(sum(r.seconds for r in state.records), 4),
            "steps": [
                {"step": r.step, "backend": r.backend, "status": r.status, "seconds": round(r.seconds, 4),
                 "peak_rss_mb": round(r.peak_rss_bytes / 2**20, 1)}
                for r in state.records
            ],
            "quality": state.quality,
            "finished_at": time.time(),
        }
        self.work.mark_done(pair, record)
        if not self.settings.keep_work:
            self.work.drop_steps(pair)
        return record

    def fail(self, pair: Pair, failure: PairFailed) -> dict[str, Any]:
        record = {
            **pair.as_dict(),
            "status": "failed",
            "failed_step": failure.step,
            "reason": str(failure.error),
            "error": type(failure.error).__name__,
            "finished_at": time.time(),
        }
        self.work.mark_failed(pair, record)
        return record
