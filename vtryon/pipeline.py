"""Chains the eight steps in one process: picks backends, times each step, measures its peak
memory, applies the offload policy between steps, and records what ran."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from vtryon.errors import PipelineError, UsageError, VtryonError
from vtryon.profiles import Profile
from vtryon.state import StepRecord, TryOnState
from vtryon.steps import STEPS, load_backend
from vtryon.steps.base import Backend, RunContext

_CLEAR_REFS = "/proc/self/clear_refs"
_STATUS = "/proc/self/status"


def _reset_peak_rss() -> None:
    """Reset the kernel's high-water mark so the next reading is this step's own peak (Linux)."""
    try:
        with open(_CLEAR_REFS, "w") as fh:
            fh.write("5")
    except OSError:
        pass  # not Linux or not permitted: the reading is then the process peak so far


def peak_rss_bytes() -> int:
    try:
        with open(_STATUS) as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class PlannedStep:
    step: str
    backend_name: str
    backend: type[Backend]
    implicit_in: str | None = None  # the backend that performs this step inside itself


def plan(profile: Profile, start: str | None = None, stop: str | None = None) -> list[PlannedStep]:
    """The steps to run for ``profile``, with the steps another backend folds in marked."""
    for name in (start, stop):
        if name is not None and name not in STEPS:
            raise UsageError(f"unknown step {name!r}; steps are: {', '.join(STEPS)}")
    chosen = {s: load_backend(s, profile.backends[s]) for s in STEPS}
    folded = {s: f"{b.step}:{b.name}" for b in chosen.values() for s in b.implicit}
    i0 = STEPS.index(start) if start else 0
    i1 = STEPS.index(stop) if stop else len(STEPS) - 1
    if i0 > i1:
        raise UsageError(f"--from {start} comes after --to {stop}")
    return [
        PlannedStep(s, profile.backends[s], chosen[s], folded.get(s))
        for s in STEPS[i0 : i1 + 1]
    ]


class Pipeline:
    """Runs planned steps on a state. ``on_step`` is called after each step with its record."""

    def __init__(
        self,
        profile: Profile,
        ctx: RunContext,
        *,
        start: str | None = None,
        stop: str | None = None,
        on_step: Callable[[StepRecord], None] | None = None,
    ) -> None:
        self.profile = profile
        self.ctx = ctx
        self.steps = plan(profile, start, stop)
        self.on_step = on_step
        self._instances: dict[str, Backend] = {}

    def backend(self, planned: PlannedStep) -> Backend:
        if planned.step not in self._instances:
            self._instances[planned.step] = planned.backend()
        return self._instances[planned.step]

    def run_step(self, planned: PlannedStep, state: TryOnState) -> StepRecord:
        if planned.implicit_in:
            record = StepRecord(planned.step, planned.backend_name, f"implicit in {planned.implicit_in}")
        else:
            backend = self.backend(planned)
            models = self.ctx.models
            _reset_peak_rss()
            t0 = time.perf_counter()
            if models is not None:
                models.begin_step(planned.step, backend.models)
            try:
                backend.run(state, self.ctx)
            except VtryonError:
                raise
            except Exception as exc:  # a bug or a library failure inside a backend
                raise PipelineError(
                    f"step {planned.step} ({planned.backend_name}) failed: {type(exc).__name__}: {exc}",
                    hint="run again with --debug for the traceback",
                ) from exc
            finally:
                if models is not None:
                    models.end_step(planned.step, backend.models, self.ctx.offload)
            record = StepRecord(planned.step, planned.backend_name, "ran", time.perf_counter() - t0, peak_rss_bytes())
        state.records.append(record)
        if self.on_step is not None:
            self.on_step(record)
        return record

    def run(self, state: TryOnState) -> TryOnState:
        for planned in self.steps:
            self.run_step(planned, state)
        return state
