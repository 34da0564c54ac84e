"""Where an engine's models live while it runs.

- ``none``: every model on the device for the whole run (fastest, most memory).
- ``model``: models wait on the CPU; :meth:`Placement.use` brings the one a stage needs to
  the device and sends it back afterwards, so one model is on the device at a time
  (explicit sequencing, the same contract as diffusers' model offload).
- ``sequential``: accelerate's leaf-level hooks (``cpu_offload``) keep the weights on the
  CPU and move each leaf module's tensors to the device only for its forward: least device
  memory, slowest.

On a CPU-only machine the three compute the same thing; the difference is device memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from vtryon.errors import UsageError

OFFLOADS = ("none", "model", "sequential")


class Placement:
    """Places an engine's named models on ``device`` according to ``mode``."""

    def __init__(self, device: str, mode: str) -> None:
        if mode not in OFFLOADS:
            raise UsageError(f"--offload {mode!r} is not one of: {', '.join(OFFLOADS)}")
        self.device = device
        self.mode = mode
        self.models: dict[str, Any] = {}

    def prepare(self, models: dict[str, Any]) -> None:
        """Take ownership of ``models`` (freshly loaded on the CPU) and place them."""
        self.models = dict(models)
        for model in self.models.values():
            if self.mode == "none":
                model.to(self.device)
            elif self.mode == "sequential":
                from accelerate import cpu_offload

                cpu_offload(model, execution_device=self.device)
            # "model": stays on the CPU until used

    @contextlib.contextmanager
    def use(self, *names: str) -> Iterator[tuple[Any, ...]]:
        """The named models, on the device for the duration of the block."""
        models = tuple(self.models[n] for n in names)
        if self.mode != "model":
            yield models
            return
        for model in models:
            model.to(self.device)
        try:
            yield models
        finally:
            for model in models:
                model.to("cpu")
            _empty_cache(self.device)

    def release(self) -> None:
        """Drop the models (end of run with --offload sequential, or before a reload)."""
        self.models.clear()
        _empty_cache(self.device)


def _empty_cache(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    elif device == "mps":
        import torch

        torch.mps.empty_cache()
