"""Rich rendering of a run for people at a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from vtryon.steps import step_label

if TYPE_CHECKING:
    from vtryon.runner import RunOutcome


def print_run_table(outcome: "RunOutcome", console: Console) -> None:
    table = Table(title=f"vtryon · profile {outcome.profile.name} · {outcome.device}", title_justify="left")
    table.add_column("step")
    table.add_column("backend")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("peak RSS", justify="right")
    for r in outcome.state.records:
        ran = r.status == "ran"
        table.add_row(
            step_label(r.step),
            r.backend,
            r.status,
            f"{r.seconds * 1000:.0f} ms" if ran else "-",
            f"{r.peak_rss_bytes / 2**20:.0f} MB" if ran else "-",
        )
    console.print(table)
    console.print(f"profile: {outcome.profile.name} ({outcome.profile_reason})", highlight=False)
    q = outcome.state.quality or {}
    shown = {k: v for k, v in q.get("metrics", {}).items() if isinstance(v, (int, float))}
    if shown:
        console.print("quality: " + ", ".join(f"{k} {v:.3f}" for k, v in shown.items()), highlight=False)
    if outcome.output is not None:
        console.print(f"result: [bold]{outcome.output}[/]  ({outcome.seconds:.2f} s)", highlight=False)
    if outcome.step_pictures:
        console.print(f"step pictures: {outcome.step_pictures[0].parent}/ (contact sheet: contact_sheet.png)", highlight=False)
