"""`vtryon models scan DIR`: recognise checkpoint files by content, whatever their names.

A ComfyUI models folder, the seed project's ``ai_models`` folder or the Hugging Face cache
hold checkpoints under all kinds of names. Each file is identified

1. by sha256, against the published hashes and the lock file;
2. else by tensor layout: the file's tensor names and shapes (read without loading the data)
   against every manifest entry's architecture built on the meta device.

A file matched by layout to an entry whose publisher gives a sha256 it does not have is
reported (a fine-tune or another release) but not registered: vtryon never swaps a model
silently. Identified files are registered in place (``registered.json``), or linked or
copied into the models folder (``--link``/``--copy``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtryon.errors import VtryonError
from vtryon.models.checkpoint_io import CHECKPOINT_SUFFIXES, sniff
from vtryon.models.manifest import ModelEntry
from vtryon.models.store import ModelStore
from vtryon.models.verify import check_file, layout_fits

_MIN_SIZE = 512  # bytes; LPIPS's heads are 6 KB


@dataclass
class ScanHit:
    path: Path
    size: int
    sha256: str | None = None
    id: str | None = None
    how: str = ""  # "sha256", "sha256 prefix + layout", "layout"
    note: str = ""
    action: str = ""  # "registered", "linked", "copied", "already installed", ""


def checkpoint_files(root: Path) -> Iterator[Path]:
    """Candidate files under ``root`` (symlinked files included, each real file once)."""
    seen: set[Path] = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in (".git", "__pycache__"))
        for name in sorted(files):
            path = Path(folder) / name
            lowered = name.lower()
            is_blob = Path(folder).name == "blobs"  # the HF cache names blobs by hash; snapshots link them
            if not (lowered.endswith(CHECKPOINT_SUFFIXES) or is_blob):
                continue
            try:
                real = path.resolve()
                if real in seen or not real.is_file() or real.stat().st_size < _MIN_SIZE:
                    continue
            except OSError:
                continue
            seen.add(real)
            yield path


class _LayoutIndex:
    """Meta-device networks per (arch, config), built once per scan."""

    def __init__(self, entries: list[ModelEntry]) -> None:
        self.entries = entries
        self._modules: dict[str, Any] = {}

    def module(self, arch: str) -> Any:
        if arch not in self._modules:
            try:
                from vtryon.archs import arch_module

                mod = arch_module(arch)
                self._modules[arch] = mod if hasattr(mod, "build") and hasattr(mod, "config_from_state_dict") else None
            except (KeyError, ImportError):
                self._modules[arch] = None
        return self._modules[arch]

    def matches(self, raw: Any) -> list[ModelEntry]:
        from vtryon.models.build import module_state_dict

        found = []
        for entry in self.entries:
            mod = self.module(entry.arch)
            if mod is None:
                continue
            try:
                state = module_state_dict(entry.arch, raw, entry.wrapper)
            except Exception:  # another network's file: its renaming rules do not apply
                continue
            ok, _msg = layout_fits(entry, state, mod)
            if ok:
                found.append(entry)
        return found


def identify(path: Path, store: ModelStore, index: _LayoutIndex) -> ScanHit:
    """What ``path`` is (id and how it was recognised), or why it is nothing vtryon uses."""
    from vtryon.models.checkpoint_io import read_state_dict

    hit = ScanHit(path, path.stat().st_size)
    try:
        sniff(path)
    except VtryonError as exc:
        hit.note = str(exc).split(" (delete it")[0]
        return hit
    hit.sha256 = store.hashes.sha256(path)
    lock = store.lock.read()
    for entry in store.manifest.entries.values():
        locked = lock.get(entry.id) if isinstance(lock.get(entry.id), dict) else {}
        if hit.sha256 in (entry.sha256, locked.get("sha256")):
            hit.id, hit.how = entry.id, "sha256"
            return hit
    try:
        raw = read_state_dict(path, meta=True)
    except VtryonError as exc:
        hit.note = str(exc).split(" (")[0]
        return hit
    candidates = index.matches(raw)
    if not candidates:
        name_hint = store.manifest.unsupported.get(path.name)
        hit.note = f"not a checkpoint vtryon uses{': ' + name_hint if name_hint else ''}"
        return hit
    if len(candidates) > 1:  # the same layout (a released file and its fine-tune): let the name decide
        by_name = [e for e in candidates if path.name in e.names]
        if len(by_name) != 1:
            hit.note = "fits several checkpoints by layout: " + ", ".join(e.id for e in candidates)
            return hit
        candidates = by_name
    entry = candidates[0]
    if entry.sha256:
        hit.note = f"has the tensor layout of {entry.id} but not its published sha256 (a fine-tune or another release); not registered"
        return hit
    locked = lock.get(entry.id) if isinstance(lock.get(entry.id), dict) else {}
    if locked.get("sha256"):
        hit.note = f"has the tensor layout of {entry.id} but differs from the file recorded in {store.lock.path.name}; not registered"
        return hit
    if entry.sha256_prefix:
        if not hit.sha256.startswith(entry.sha256_prefix):
            hit.note = f"has the tensor layout of {entry.id} but not its published sha256 prefix {entry.sha256_prefix}; not registered"
            return hit
        hit.id, hit.how = entry.id, "sha256 prefix + layout"
        return hit
    hit.id, hit.how = entry.id, "layout"
    return hit


def scan_folder(
    root: Path,
    store: ModelStore,
    *,
    mode: str = "register",
    on_hit: Callable[[ScanHit], None] | None = None,
) -> list[ScanHit]:
    """Identify every checkpoint under ``root`` and register (``register``/``link``/``copy``) them."""
    if mode not in ("register", "link", "copy", "none"):
        raise ValueError(mode)
    entries = [e for e in store.manifest.entries.values() if e.arch and not e.is_folder]
    index = _LayoutIndex(entries)
    hits = []
    for path in checkpoint_files(root):
        hit = identify(path, store, index)
        if hit.id is not None and mode != "none":
            _register(hit, store, mode)
        hits.append(hit)
        if on_hit is not None:
            on_hit(hit)
    return hits


def _register(hit: ScanHit, store: ModelStore, mode: str) -> None:
    assert hit.id is not None
    entry = store.entry(hit.id)
    installed = store.locate(entry)
    if installed is not None and check_file(entry, installed, store).ok:
        if mode == "register" or installed == store.target(entry) or installed.resolve() != hit.path.resolve():
            hit.action = f"already installed ({installed})"
            return
    if not entry.sha256 and not (store.lock.get(entry.id) or {}).get("sha256"):
        store.lock.record(entry.id, {"file": entry.file, "size": hit.size, "sha256": hit.sha256, "source": f"models scan of {hit.path}"})
    if mode == "register":
        store.register(entry.id, hit.path)
        hit.action = "registered"
        return
    target = store.target(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.scan")
    try:
        if mode == "link":
            temp.symlink_to(hit.path.resolve())
        else:
            shutil.copyfile(hit.path, temp)
            if store.hashes.sha256(temp) != hit.sha256:
                raise OSError(f"the copy of {hit.path} differs from the original")
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    hit.action = "linked" if mode == "link" else "copied"
