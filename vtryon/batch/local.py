"""Step-major batches in one process.

The pairs to do are cut into chunks of ``--chunk`` pairs. A chunk passes through step 01 for
all its pairs, then step 02, ... (its states stay in memory between steps, and every step's
result is committed to the work folder as it is made); after the last step each pair's
output is written and the pair is marked done. A pair that fails is recorded with its step
and reason and leaves the chunk; the others go on.

Resume: a pair marked done (and whose output exists) is skipped; any other pair restarts at
its first unfinished step, from the state its finished steps committed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vtryon.batch.pairs import Pair
from vtryon.batch.settings import BatchSettings
from vtryon.batch.steprunner import PairFailed, StepRunner
from vtryon.batch.workdir import WorkFolder, remove_partials
from vtryon.state import TryOnState


class Progress(Protocol):
    def start(self, total: int, pairs: int, unit: str = "pair-steps") -> None: ...
    def advance(self, units: int, note: str) -> None: ...
    def stop(self) -> None: ...


class NoProgress:
    def start(self, total: int, pairs: int, unit: str = "pair-steps") -> None:
        pass

    def advance(self, units: int, note: str) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass
class BatchResult:
    records: list[dict[str, Any]]  # one per pair of this shard, in input order
    wall_seconds: float
    profile: str
    profile_reason: str
    device: str
    runner: str = "local"
    model_loads: int | None = None  # checkpoint files read (None: the profile loads none)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Slot:
    pair: Pair
    state: TryOnState | None = None
    memo: dict[str, Any] = field(default_factory=dict)  # per pair, as in one `vtryon run`
    next: int = 0  # index of the first step not yet applied to ``state``


def prepare(settings: BatchSettings, work: WorkFolder, pairs: list[Pair]) -> tuple[list[Pair], dict[str, dict[str, Any]]]:
    """Split ``pairs`` into those to do and those an earlier run finished (-> skipped records).
    Clears the temporary output files a killed run left for the pairs to do."""
    todo, skipped = [], {}
    for pair in pairs:
        done = work.done(pair)
        if done is not None and (settings.output / pair.output).is_file():
            skipped[pair.id] = {**done, "status": "skipped", "reason": "finished in an earlier run"}
            continue
        if done is not None:  # its output was removed since: make it again
            work.clear_done(pair)
        work.clear_failed(pair)
        todo.append(pair)
    by_folder: dict[Path, set[str]] = {}
    for pair in todo:
        out = settings.output / pair.output
        by_folder.setdefault(out.parent, set()).add(out.name)
    for folder, names in by_folder.items():  # one listing per folder, not one per pair
        remove_partials(folder, names)
    return todo, skipped


def run_local(settings: BatchSettings, pairs: list[Pair], progress: Progress | None = None,
              runner: StepRunner | None = None) -> BatchResult:
    progress = progress or NoProgress()
    t0 = time.perf_counter()
    runner = runner or StepRunner(settings)
    work = runner.work
    work.check_settings(runner.fingerprint())
    runner.check_models()
    with work.lock(settings.who):
        todo, records = prepare(settings, work, pairs)
        steps = runner.steps
        progress.start(len(todo) * (len(steps) + 1), len(todo))
        try:
            for start in range(0, len(todo), settings.chunk):
                chunk = [_Slot(p) for p in todo[start : start + settings.chunk]]
                records.update(_run_chunk(runner, chunk, progress))
        finally:
            progress.stop()
    return BatchResult(
        records=[records[p.id] for p in pairs],
        wall_seconds=time.perf_counter() - t0,
        profile=runner.profile.name,
        profile_reason=runner.profile_reason,
        device=runner.device,
        model_loads=runner.pool.loads if runner.pool is not None else None,
    )


def _run_chunk(runner: StepRunner, chunk: list[_Slot], progress: Progress) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    live = list(chunk)
    steps = runner.steps

    def drop(slot: _Slot, failure: PairFailed, remaining: int) -> None:
        out[slot.pair.id] = runner.fail(slot.pair, failure)
        live.remove(slot)
        progress.advance(remaining, f"{slot.pair.id}: failed")

    for k, planned in enumerate(steps):
        for slot in list(live):
            try:
                if slot.state is None:
                    slot.state, slot.next = runner.restore(slot.pair)
                while slot.next < k:  # a damaged step file was removed: redo that step first
                    runner.run_step(steps[slot.next], slot.pair, slot.state, slot.memo)
                    slot.next += 1
                if slot.next > k or runner.apply_committed(slot.state, slot.pair, planned.step):
                    slot.next = max(slot.next, k + 1)
                    progress.advance(1, f"{planned.step} (finished before)")
                    continue
                runner.run_step(planned, slot.pair, slot.state, slot.memo)
                slot.next = k + 1
                progress.advance(1, f"{planned.step} {slot.pair.id}")
            except PairFailed as failure:
                drop(slot, failure, len(steps) - k + 1)
        runner.end_step(planned)
    for planned in steps:  # a step redone out of turn above
        runner.end_step(planned)
    for slot in list(live):
        try:
            if slot.state is None:
                slot.state, _ = runner.restore(slot.pair)
            out[slot.pair.id] = runner.finish(slot.pair, slot.state)
            progress.advance(1, f"{slot.pair.id}: done")
        except PairFailed as failure:
            drop(slot, failure, 1)
        slot.state, slot.memo = None, {}
    return out
