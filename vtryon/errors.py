"""One exception hierarchy for everything vtryon reports to a user.

The CLI catches :class:`VtryonError` at the edge and prints ``str(error)`` as one line,
then exits with ``error.exit_code``. Anything else is a bug and shows a traceback only
with ``--debug``.

Exit codes: 0 ok, 1 failure while running, 2 bad usage or bad input (files, options,
checkpoints the user has to fetch or fix).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class VtryonError(Exception):
    """Base of every error meant for the user: one line saying what is wrong and what to do."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(VtryonError):
    """A bad option or combination of options."""

    exit_code = EXIT_BAD_INPUT


class InputError(VtryonError):
    """An input file that cannot be used (missing, not an image, too large, no person...)."""

    exit_code = EXIT_BAD_INPUT


class NoPersonFound(InputError):
    """The person photo has no detectable person."""


class NoGarmentFound(InputError):
    """The garment photo has no separable garment."""


class ModelError(VtryonError):
    """A checkpoint is missing, corrupt, unverified or does not fit its architecture."""

    exit_code = EXIT_BAD_INPUT


class CheckpointMissing(ModelError):
    """The checkpoint file is not installed."""


class CheckpointCorrupt(ModelError):
    """The checkpoint file is there but its size, hash or content is wrong."""


class CheckpointMismatch(ModelError):
    """The checkpoint's tensors do not match the architecture (strict loading failed)."""


class UnsafeCheckpoint(ModelError):
    """The checkpoint would need code execution to load (pickled objects, TorchScript code)."""


class DownloadError(VtryonError):
    """A download failed (network, server, hash mismatch)."""

    exit_code = EXIT_FAILURE


class PipelineError(VtryonError):
    """A step failed while running."""

    exit_code = EXIT_FAILURE
