"""What every CLI command shares: the consoles, and the edge where errors become one line and an exit code."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from vtryon.errors import EXIT_BAD_INPUT, EXIT_FAILURE, VtryonError

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)


def debug_requested() -> bool:
    return "--debug" in sys.argv or os.environ.get("VTRYON_DEBUG") == "1"


def fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn a VtryonError into one line on stderr and its exit code; a bug into a one-line
    internal error (exit 1) unless --debug asks for the traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug")) or debug_requested()
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except VtryonError as exc:
            if debug:
                raise
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except MemoryError:
            if debug:
                raise
            raise fail("out of memory; try --offload sequential or a smaller input", EXIT_FAILURE) from None
        except Exception as exc:  # a bug: say so in one line; --debug shows the traceback
            if debug:
                raise
            raise fail(f"internal error: {type(exc).__name__}: {exc} (run again with --debug for the traceback)", EXIT_FAILURE) from None

    return wrapper  # type: ignore[return-value]


__all__ = ["console", "err_console", "handle_errors", "fail", "EXIT_BAD_INPUT", "EXIT_FAILURE"]
