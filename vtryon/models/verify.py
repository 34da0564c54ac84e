"""Is this the right file? Size, sha256, content, and tensor layout against the architecture.

:func:`check_file` answers for the bytes (size, format, sha256 against the published hash, its
published prefix, or the trust-on-first-use lock); :func:`check_layout` answers for the tensors
(names and shapes against the architecture built on the meta device: nothing is allocated).
The pool raises on the first problem; ``verify-models`` and ``models scan`` report them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtryon.errors import CheckpointCorrupt, CheckpointMismatch, ModelError, UnsafeCheckpoint
from vtryon.models.checkpoint_io import describe_bad_content, read_state_dict, sniff
from vtryon.models.manifest import ModelEntry
from vtryon.models.store import ModelStore

# hash_status values
PUBLISHED = "matches published sha256"
PREFIX = "matches the published sha256 prefix"
LOCKED = "matches lock (first download)"
UNRECORDED = "no published hash, not recorded yet"
MISMATCH = "MISMATCH"
NOT_CHECKED = "not checked"


@dataclass
class FileCheck:
    entry: ModelEntry
    path: Path | None
    size: int | None = None
    sha256: str | None = None
    format: str | None = None
    hash_status: str = NOT_CHECKED
    problems: list[str] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return self.path is not None

    @property
    def ok(self) -> bool:
        return self.present and not self.problems


def _size_problem(entry: ModelEntry, path: Path, size: int) -> str | None:
    if entry.size is None or size == entry.size:
        return None
    bad = describe_bad_content(path)
    what = f"{path} {bad}" if bad else f"{path} has {size} bytes, the published file has {entry.size}"
    if not bad and size < entry.size:
        what += " (truncated: an interrupted download?)"
    return what


def check_file(entry: ModelEntry, path: Path | None, store: ModelStore, *, hash_file: bool = True) -> FileCheck:
    """Everything about the bytes of ``path`` for ``entry``, problems collected, nothing raised."""
    result = FileCheck(entry, path)
    if path is None:
        return result
    if entry.is_folder:
        return _check_folder(result, store, hash_file)
    result.size = path.stat().st_size
    problem = _size_problem(entry, path, result.size)
    if problem:
        result.problems.append(problem)
        return result
    try:
        result.format = sniff(path)
    except CheckpointCorrupt as exc:
        result.problems.append(exc.message)
        return result
    if not hash_file:
        return result
    result.sha256 = store.hashes.sha256(path)
    locked = store.lock.get(entry.id) or {}
    if entry.sha256:
        ok = result.sha256 == entry.sha256
        result.hash_status = PUBLISHED if ok else MISMATCH
        expected = entry.sha256
    elif locked.get("sha256"):
        ok = result.sha256 == locked["sha256"]
        result.hash_status = LOCKED if ok else MISMATCH
        expected = locked["sha256"]
    elif entry.sha256_prefix:
        ok = result.sha256.startswith(entry.sha256_prefix)
        result.hash_status = PREFIX if ok else MISMATCH
        expected = entry.sha256_prefix + "…"
    else:
        ok, expected = True, ""
        result.hash_status = UNRECORDED
    if not ok:
        origin = "published" if entry.sha256 or not locked.get("sha256") else f"recorded in {store.lock.path.name} at the first download"
        result.problems.append(f"{path}: sha256 {result.sha256[:16]}… differs from the {origin} {expected[:16]}… (a damaged or different file)")
    return result


def _check_folder(result: FileCheck, store: ModelStore, hash_file: bool) -> FileCheck:
    path, entry = result.path, result.entry
    assert path is not None
    files = [p for p in path.rglob("*") if p.is_file()]
    result.size = sum(p.stat().st_size for p in files)
    result.format = "folder"
    if not files:
        result.problems.append(f"{path} is an empty folder")
        return result
    recorded = (store.lock.get(entry.id) or {}).get("files") or {}
    if not recorded:
        result.hash_status = UNRECORDED
        return result
    for rel, rec in sorted(recorded.items()):
        file = path / rel
        if not file.is_file():
            result.problems.append(f"{file} is missing from the folder")
            continue
        if file.stat().st_size != rec.get("size"):
            result.problems.append(f"{file} has {file.stat().st_size} bytes, {rec.get('size')} were recorded at the download")
            continue
        if hash_file and store.hashes.sha256(file) != rec.get("sha256"):
            result.problems.append(f"{file}: sha256 differs from the one recorded at the download")
    result.hash_status = NOT_CHECKED if not hash_file else (LOCKED if not result.problems else MISMATCH)
    return result


def raise_for(check: FileCheck) -> None:
    """Turn the first problem of a check into the loader's exception."""
    if check.problems:
        raise CheckpointCorrupt(check.problems[0], hint=f"delete it and run `vtryon download {check.entry.id}`")


def file_tensors(entry: ModelEntry, path: Path, *, meta: bool) -> dict[str, Any]:
    """The released file's tensors after the manifest's unwrapping and the arch's renaming."""
    from vtryon.models.build import module_state_dict

    raw = read_state_dict(path, meta=meta)
    return module_state_dict(entry.arch, raw, entry.wrapper, source=str(path))


def check_layout(entry: ModelEntry, path: Path) -> tuple[bool, str]:
    """Do the file's tensor names and shapes fit ``entry.arch``? Checked on the meta device."""
    if not entry.arch:
        return True, "read by its library (no architecture check)"
    try:
        from vtryon.archs import arch_module

        mod = arch_module(entry.arch)
    except (KeyError, ImportError) as exc:
        return False, f"architecture {entry.arch!r} is not available ({exc})"
    try:
        state = file_tensors(entry, path, meta=True)
        return layout_fits(entry, state, mod)
    except (CheckpointCorrupt, UnsafeCheckpoint, CheckpointMismatch) as exc:
        return False, exc.message
    except ModelError as exc:
        return False, str(exc)


def layout_fits(entry: ModelEntry, state: dict[str, Any], mod: Any) -> tuple[bool, str]:
    """Compare ``state`` (meta tensors) with the network built on the meta device."""
    from vtryon.models.build import DEFAULT_OPTIONAL_SUFFIXES, build_meta, describe_mismatch, key_mismatch, resolve_config

    if getattr(mod, "from_state_dict", None) is not None and not hasattr(mod, "build"):
        return True, "loaded by its library (checked when loaded)"
    try:
        config = resolve_config(entry.arch, state, entry.config)
        model = build_meta(entry.arch, config)
    except Exception as exc:  # config inference fails on tensors of another network
        return False, f"does not fit architecture {entry.arch!r}: {type(exc).__name__}: {exc}"
    optional = tuple(getattr(mod, "OPTIONAL_KEYS", DEFAULT_OPTIONAL_SUFFIXES))
    missing, unexpected, misshaped = key_mismatch(model.state_dict(), state, optional)
    if missing or unexpected or misshaped:
        return False, f"does not fit architecture {entry.arch!r}: {describe_mismatch(missing, unexpected, misshaped)}"
    return True, f"{len(state)} tensors fit {entry.arch}"
