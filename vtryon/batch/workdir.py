"""The work folder of a batch: what each pair has finished, written so a SIGKILL never
leaves a partial file under a final name.

    WORK/batch.json                       the settings the results depend on (checked on resume)
    WORK/events-<who>.jsonl               one line per committed step (append-only, per process)
    WORK/pairs/<id>/NN_<step>.npz         what step NN wrote for that pair (codec.dumps)
    WORK/pairs/<id>/done.json             the pair is finished: its output and report record
    WORK/pairs/<id>/failed.json           the pair failed: at which step and why

Every file is written to a temporary name in the same folder and moved into place with
``os.replace``; a damaged step file (from a crash of the machine) is discarded and redone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from vtryon.batch import codec
from vtryon.batch.pairs import Pair
from vtryon.errors import UsageError
from vtryon.steps import STEP_NUMBERS

log = logging.getLogger(__name__)


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=1, default=str) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None if it is absent or damaged."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def remove_partials(folder: Path, finals: set[str] | None = None) -> int:
    """Delete the temporary files (``.<final name>.<random>.part``) a killed writer left in
    ``folder``: all of them, or only those of the final names in ``finals``."""
    n = 0
    if not folder.is_dir():
        return n
    for tmp in folder.glob(".*.part"):
        final = tmp.name[1 : -len(".part")].rsplit(".", 1)[0]
        if finals is None or final in finals:
            with contextlib.suppress(OSError):
                tmp.unlink()
                n += 1
    return n


def step_file_name(step: str) -> str:
    return f"{STEP_NUMBERS[step]:02d}_{step}.npz"


class WorkFolder:
    def __init__(self, root: Path, who: str = "main") -> None:
        self.root = Path(root)
        self.who = who  # names this process's event log, e.g. "shard-0-of-4"

    # -- the batch -----------------------------------------------------------------------------
    def check_settings(self, fingerprint: dict[str, Any]) -> None:
        """Record the settings on first use; refuse to mix results of other settings."""
        path = self.root / "batch.json"
        old = read_json(path)
        if old is None:
            write_json(path, fingerprint)
            return
        diff = [k for k in sorted(set(old) | set(fingerprint)) if old.get(k) != fingerprint.get(k)]
        if diff:
            shown = "; ".join(f"{k}: {old.get(k)!r} then, {fingerprint.get(k)!r} now" for k in diff[:3])
            raise UsageError(
                f"work folder {self.root} holds results made with other settings ({shown})",
                hint="use the same options, another --work folder, or delete that folder to start over",
            )

    @contextlib.contextmanager
    def lock(self, name: str):
        """One process per shard: a second one with the same shard stops at once."""
        from filelock import FileLock, Timeout

        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / f".{name}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise UsageError(f"another vtryon batch is running {name} in {self.root}", hint="wait for it, or give another --shard") from None
        try:
            yield
        finally:
            lock.release()

    def event(self, **fields: Any) -> None:
        """Append one line to this process's event log (after the thing it reports is committed)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"t": round(time.time(), 3), "pid": os.getpid(), "host": socket.gethostname(), **fields}) + "\n"
        fd = os.open(self.root / f"events-{self.who}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    def events(self) -> list[dict[str, Any]]:
        """Every event of every process (a torn last line of a killed process is skipped)."""
        out = []
        for path in sorted(self.root.glob("events-*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    # -- one pair ------------------------------------------------------------------------------
    def pair_dir(self, pair: Pair) -> Path:
        return self.root / "pairs" / pair.id

    def step_path(self, pair: Pair, step: str) -> Path:
        return self.pair_dir(pair) / step_file_name(step)

    def start_pair(self, pair: Pair) -> None:
        """Clear what a killed writer left, and note the pair's inputs."""
        folder = self.pair_dir(pair)
        if folder.is_dir():
            remove_partials(folder)
        path = folder / "pair.json"
        if read_json(path) != pair.as_dict():
            write_json(path, pair.as_dict())

    def has_step(self, pair: Pair, step: str) -> bool:
        return self.step_path(pair, step).is_file()

    def commit_step(self, pair: Pair, step: str, values: dict[str, Any], meta: dict[str, Any]) -> Path:
        path = self.step_path(pair, step)
        write_atomic(path, codec.dumps(values, meta))
        self.event(pair=pair.id, step=step, event="committed", seconds=meta.get("record", {}).get("seconds"))
        return path

    def load_step(self, pair: Pair, step: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """What ``step`` wrote for ``pair``, or None if absent; a damaged file is removed (redo)."""
        path = self.step_path(pair, step)
        if not path.is_file():
            return None
        try:
            return codec.load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("%s is damaged (%s); step %s of %s will run again", path, exc, step, pair.id)
            with contextlib.suppress(OSError):
                path.unlink()
            return None

    def done(self, pair: Pair) -> dict[str, Any] | None:
        return read_json(self.pair_dir(pair) / "done.json")

    def mark_done(self, pair: Pair, record: dict[str, Any]) -> None:
        write_json(self.pair_dir(pair) / "done.json", record)
        self.event(pair=pair.id, event="done")

    def failed(self, pair: Pair) -> dict[str, Any] | None:
        return read_json(self.pair_dir(pair) / "failed.json")

    def mark_failed(self, pair: Pair, record: dict[str, Any]) -> None:
        write_json(self.pair_dir(pair) / "failed.json", record)
        self.event(pair=pair.id, event="failed", step=record.get("failed_step"), reason=record.get("reason"))

    def clear_failed(self, pair: Pair) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.pair_dir(pair) / "failed.json").unlink()

    def clear_done(self, pair: Pair) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.pair_dir(pair) / "done.json").unlink()

    def drop_steps(self, pair: Pair) -> None:
        """Remove a finished pair's step files (its done.json stays, so it is not redone)."""
        for path in self.pair_dir(pair).glob("[0-9][0-9]_*.npz"):
            with contextlib.suppress(OSError):
                path.unlink()
