"""The eight steps, their order, and the backends registered for each.

Backends are listed as ``"module:Class"`` strings and imported only when chosen, so that
choosing the embedded profile never imports torch and ``--help`` imports nothing heavy.
Each step package lists its own backends in ``BACKENDS``.
"""

from __future__ import annotations

import importlib

from vtryon.errors import UsageError

STEPS: tuple[str, ...] = (
    "human_parsing",
    "pose",
    "cloth_segmentation",
    "geometric_matching",
    "cloth_warping",
    "virtual_fitting",
    "post_processing",
    "quality_assessment",
)
STEP_NUMBERS = {name: i + 1 for i, name in enumerate(STEPS)}


def step_label(step: str) -> str:
    return f"{STEP_NUMBERS[step]:02d} {step.replace('_', ' ')}"


def backends_of(step: str) -> dict[str, str]:
    """name -> "module:Class" for every backend of ``step``."""
    if step not in STEP_NUMBERS:
        raise UsageError(f"unknown step {step!r}; steps are: {', '.join(STEPS)}")
    return dict(importlib.import_module(f"vtryon.steps.{step}").BACKENDS)


def load_backend(step: str, name: str) -> type:
    table = backends_of(step)
    if name not in table:
        raise UsageError(f"step {step} has no backend {name!r}; it has: {', '.join(sorted(table))}")
    module_path, _, cls = table[name].partition(":")
    backend = getattr(importlib.import_module(module_path), cls)
    assert backend.step == step and backend.name == name, f"{table[name]} registered under the wrong name"
    return backend
