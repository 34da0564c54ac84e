"""The batch's report: one JSON line per pair, a summary (done, failed, skipped, time per
pair), a Rich table. Shards write their own files (``report.shard-I-of-N.jsonl``) so that
processes sharing an output folder never write the same file."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from vtryon.batch.local import BatchResult
from vtryon.batch.settings import BatchSettings
from vtryon.batch.workdir import write_atomic

STATUSES = ("done", "failed", "skipped")


def report_paths(settings: BatchSettings) -> tuple[Path, Path]:
    suffix = "" if settings.shard is None else f".{settings.who}"
    return settings.output / f"report{suffix}.jsonl", settings.output / f"summary{suffix}.json"


def summarize(result: BatchResult, settings: BatchSettings, total_pairs: int) -> dict[str, Any]:
    counts = {s: sum(r["status"] == s for r in result.records) for s in STATUSES}
    ran = [r["seconds"] for r in result.records if r["status"] == "done"]
    report, summary = report_paths(settings)
    wall = result.wall_seconds
    return {
        "pairs": len(result.records),
        "pairs_in_input": total_pairs,
        "shard": settings.who,
        **counts,
        "wall_seconds": round(wall, 3),
        "wall_seconds_per_pair": round(wall / counts["done"], 3) if counts["done"] else None,
        "pairs_per_minute": round(60.0 * counts["done"] / wall, 2) if counts["done"] and wall > 0 else None,
        "step_seconds_per_pair": {
            "mean": round(statistics.fmean(ran), 3),
            "median": round(statistics.median(ran), 3),
            "max": round(max(ran), 3),
        } if ran else None,
        "profile": result.profile,
        "profile_reason": result.profile_reason,
        "device": result.device,
        "offload": settings.offload,
        "chunk": settings.chunk,
        "runner": result.runner,
        "model_loads": result.model_loads,
        "output": str(settings.output),
        "work": str(settings.work),
        "report": str(report),
        "summary": str(summary),
        "failures": [
            {"pair": r["id"], "step": r.get("failed_step"), "reason": r.get("reason")}
            for r in result.records if r["status"] == "failed"
        ],
        **result.extra,
    }


def write_report(result: BatchResult, summary: dict[str, Any], settings: BatchSettings) -> None:
    report, summary_path = report_paths(settings)
    lines = "".join(json.dumps(r, default=str) + "\n" for r in result.records)
    write_atomic(report, lines.encode("utf-8"))
    write_atomic(summary_path, (json.dumps(summary, indent=2, default=str) + "\n").encode("utf-8"))


def print_summary(summary: dict[str, Any], console: Console) -> None:
    table = Table(title=f"vtryon batch: {summary['pairs']} pairs ({summary['shard']}), profile {summary['profile']}, {summary['runner']}")
    for col in ("done", "failed", "skipped", "wall", "per pair (wall)", "per pair (steps)", "pairs/min"):
        table.add_column(col, justify="right")
    steps = summary["step_seconds_per_pair"]
    table.add_row(
        str(summary["done"]),
        str(summary["failed"]),
        str(summary["skipped"]),
        f"{summary['wall_seconds']:.1f} s",
        f"{summary['wall_seconds_per_pair']:.2f} s" if summary["wall_seconds_per_pair"] else "-",
        f"{steps['mean']:.2f} s" if steps else "-",
        f"{summary['pairs_per_minute']:.1f}" if summary["pairs_per_minute"] else "-",
    )
    console.print(table)
    for f in summary["failures"][:20]:
        console.print(f"[red]failed[/] {f['pair']} at {f['step']}: {f['reason']}", highlight=False, soft_wrap=True)
    if len(summary["failures"]) > 20:
        console.print(f"... and {len(summary['failures']) - 20} more failures (see the report)")
    console.print(f"results: {summary['output']}   report: {summary['report']}", highlight=False)
