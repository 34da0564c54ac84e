"""`vtryon batch`: many person x garment pairs, step-major, resumable, shardable.

- :mod:`vtryon.batch.pairs`: the input (CSV/JSONL list or two folders), output names, shards
- :mod:`vtryon.batch.codec`: a step's results as one npz file (no pickling)
- :mod:`vtryon.batch.workdir`: the work folder (atomic step files, done/failed markers, event log)
- :mod:`vtryon.batch.steprunner`: one step for one pair against the work folder
- :mod:`vtryon.batch.local`: step-major chunks in one process
- :mod:`vtryon.batch.ray_runner`: the same plan on Ray Data (``pip install vtryon[ray]``)
- :mod:`vtryon.batch.report`: JSONL report, summary, table
"""

from __future__ import annotations

from typing import Any

from vtryon.batch.pairs import Pair, load_pairs, select_shard
from vtryon.batch.settings import BatchSettings


def run_batch(settings: BatchSettings, pairs: list[Pair], progress: Any = None, ray_address: str | None = None) -> dict[str, Any]:
    """Run this process's shard of ``pairs``; write the report; return the summary."""
    from vtryon.batch.report import summarize, write_report

    mine = select_shard(pairs, settings.shard)
    if ray_address is not None:
        from vtryon.batch.ray_runner import run_ray

        result = run_ray(settings, mine, ray_address, progress)
    else:
        from vtryon.batch.local import run_local

        result = run_local(settings, mine, progress)
    summary = summarize(result, settings, len(pairs))
    write_report(result, summary, settings)
    return summary


__all__ = ["BatchSettings", "Pair", "load_pairs", "run_batch", "select_shard"]
