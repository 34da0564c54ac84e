"""CLI commands about checkpoints: verify-models, download, models (list, scan)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the checkpoint commands to the main app."""
