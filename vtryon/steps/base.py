"""The contract every step backend fulfils.

A backend is a class registered under a step and a name. It declares what it reads from
and writes to the :class:`~vtryon.state.TryOnState`, which manifest checkpoints it needs,
and which other steps it performs implicitly (a diffusion model that warps inside itself).
``run`` fills its outputs; it loads models only through ``ctx.models``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from vtryon.state import TryOnState


@dataclass
class RunContext:
    """What a backend may use besides the state: options and the shared model pool."""

    device: str = "cpu"
    precision: str = "auto"
    offload: str = "none"
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # backend options (--steps, --guidance, ...)
    models: Any = None  # vtryon.models.pool.ModelPool; None when the profile needs no checkpoint
    memo: dict[str, Any] = field(default_factory=dict)  # per-run cache shared by backends (e.g. one mediapipe pass)


class Backend:
    """Base class of step backends."""

    step: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    models: ClassVar[tuple[str, ...]] = ()  # manifest ids this backend loads
    implicit: ClassVar[tuple[str, ...]] = ()  # other steps this backend performs inside itself

    def run(self, state: "TryOnState", ctx: RunContext) -> None:
        raise NotImplementedError

    def pictures(self, state: "TryOnState") -> dict[str, Any]:
        """RGB images that show what this step did, for --save-steps (name -> HxWx3 uint8)."""
        return {}
