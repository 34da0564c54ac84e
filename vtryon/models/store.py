"""Where checkpoint files live, and what vtryon remembers about them.

The models folder is ``--models-dir``, else ``$VTRYON_HOME/models``, else
``$XDG_CACHE_HOME/vtryon/models`` (``~/.cache/vtryon/models``). A checkpoint ``ID`` is kept as
``<models>/<ID>/<released file name>`` (ids, not names, are unique: CP-VTON and VITON-HD both
release a ``gmm_final.pth``). Besides that layout a file is found

- under an alias name in its id folder, or under its own name at the top of the folder when
  no other checkpoint shares that name;
- where ``vtryon models scan`` registered it (``registered.json``);
- in the Hugging Face cache, for Hugging Face sources at the pinned (or locked) revision.

Three small JSON files sit in the models folder:

- ``vtryon.lock.json``: trust on first use. For checkpoints whose publisher gives no sha256,
  the hash (and the Hugging Face commit a branch resolved to) recorded at the first download
  or registration; every later check compares against it.
- ``registered.json``: files registered in place by ``vtryon models scan``.
- ``.hash-cache.json``: sha256 by (path, size, mtime), so a file is hashed once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vtryon.models.manifest import Manifest, ManifestLike, ModelEntry, as_manifest

HOME_ENV = "VTRYON_HOME"
LOCK_NAME = "vtryon.lock.json"
REGISTRY_NAME = "registered.json"
HASH_CACHE_NAME = ".hash-cache.json"
_HASH_BLOCK = 8 * 2**20


def default_models_dir() -> Path:
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "models"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "vtryon" / "models"


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """sha256 of a file, read in large blocks (``progress`` gets each block's length)."""
    digest = hashlib.sha256()
    buf = bytearray(_HASH_BLOCK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            digest.update(view[:n])
            if progress is not None:
                progress(n)
    return digest.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # a damaged cache or registry is rebuilt, never trusted


class _JsonTable:
    """A small JSON object on disk, re-read before each update (other processes write it too)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.Lock()

    def read(self) -> dict[str, Any]:
        return _read_json(self.path)

    @contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        from filelock import FileLock, Timeout

        with self._mutex:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                lock = FileLock(str(self.path) + ".lock", timeout=30)
                lock.acquire()
            except (OSError, Timeout):
                lock = None  # read-only folder or no lock support: write without it (atomic rename)
            try:
                data = self.read()
                yield data
                write_json_atomic(self.path, data)
            finally:
                if lock is not None:
                    lock.release()


class HashCache(_JsonTable):
    """sha256 by (resolved path, size, mtime_ns); a changed file is hashed again."""

    def lookup(self, path: Path) -> str | None:
        st = path.stat()
        hit = self.read().get(str(path.resolve()))
        if isinstance(hit, dict) and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
            return str(hit.get("sha256"))
        return None

    def sha256(self, path: Path, progress: Callable[[int], None] | None = None) -> str:
        cached = self.lookup(path)
        if cached:
            return cached
        st = path.stat()
        digest = sha256_file(path, progress)
        try:
            with self.update() as data:
                data[str(path.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        except OSError:
            pass  # a read-only models folder: the file is hashed again when next verified  # a read-only models folder: hash again next time
        return digest

    def remember(self, path: Path, digest: str) -> None:
        """Record a hash computed while writing the file (downloads)."""
        st = path.stat()
        try:
            with self.update() as data:
                data[str(path.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        except OSError:
            pass  # a read-only models folder: the file is hashed again when next verified


class LockFile(_JsonTable):
    """Trust on first use: id -> {file, size, sha256, source, revision, recorded} (folders: files{})."""

    def get(self, model_id: str) -> dict[str, Any] | None:
        value = self.read().get(model_id)
        return value if isinstance(value, dict) else None

    def record(self, model_id: str, record: dict[str, Any]) -> None:
        with self.update() as data:
            data[model_id] = {**record, "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def forget(self, model_id: str) -> None:
        with self.update() as data:
            data.pop(model_id, None)


def _hf_repo_cached(repo: str) -> bool:
    """Whether the Hugging Face cache has a folder for ``repo`` (its documented layout)."""
    constants = sys.modules.get("huggingface_hub.constants")
    cache = getattr(constants, "HF_HUB_CACHE", None) or os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub"
    )
    return os.path.isdir(os.path.join(cache, "models--" + repo.replace("/", "--")))


class ModelStore:
    """Finds checkpoint files for manifest entries and holds the lock, registry and hash cache."""

    def __init__(self, models_dir: Path | str | None = None, manifest: ManifestLike = None) -> None:
        self.root = Path(models_dir).expanduser() if models_dir else default_models_dir()
        self.manifest: Manifest = as_manifest(manifest)
        self.lock = LockFile(self.root / LOCK_NAME)
        self.registry = _JsonTable(self.root / REGISTRY_NAME)
        self.hashes = HashCache(self.root / HASH_CACHE_NAME)

    def entry(self, model_id: str) -> ModelEntry:
        from vtryon.models.manifest import entry_for

        return entry_for(self.manifest, model_id)

    def target(self, entry: ModelEntry) -> Path:
        """Where ``download`` puts the file (or folder) of ``entry``."""
        return self.root / entry.id / entry.file

    def candidates(self, entry: ModelEntry) -> list[tuple[Path, str]]:
        """(path, how it is known) in the order they are tried."""
        out: list[tuple[Path, str]] = [(self.target(entry), "models folder")]
        out += [(self.root / entry.id / name, f"alias {name}") for name in entry.aliases]
        registered = self.registry.read().get(entry.id)
        if isinstance(registered, str):
            out.append((Path(registered), "registered by `vtryon models scan`"))
        if sum(1 for e in self.manifest.entries.values() if e.file == entry.file) == 1:
            out.append((self.root / entry.file, "models folder (flat)"))
        out += [(p, "Hugging Face cache") for p in self._hf_cache_paths(entry)]
        return out

    def locate(self, entry: ModelEntry) -> Path | None:
        for path, _how in self.candidates(entry):
            if path.is_dir() if entry.is_folder else path.is_file():
                return path
        return None

    def where_looked(self, entry: ModelEntry) -> str:
        places = [str(self.target(entry))]
        if any(s.kind == "hf" for s in entry.sources):
            places.append("the Hugging Face cache")
        if self.registry.read().get(entry.id):
            places.append(f"registered {self.registry.read()[entry.id]}")
        return ", ".join(places)

    def locked_revision(self, entry: ModelEntry, repo: str) -> str | None:
        rec = self.lock.get(entry.id) or {}
        revs = rec.get("revisions") or {}
        return revs.get(repo) if isinstance(revs, dict) else None

    def _hf_cache_paths(self, entry: ModelEntry) -> list[Path]:
        if entry.is_folder:
            return []
        paths = []
        for source in entry.sources:
            if source.kind != "hf":
                continue
            if not _hf_repo_cached(source.hf):
                continue  # cheap check first: importing huggingface_hub costs most of a second
            revision = self.locked_revision(entry, source.hf) or source.revision or "main"
            try:
                from vtryon.models.hub import hf_module

                found = hf_module().try_to_load_from_cache(source.hf, source.path, revision=revision)
            except Exception:
                continue  # an unreadable cache is no place to find a file
            if isinstance(found, str):
                paths.append(Path(found))
        return paths

    def register(self, model_id: str, path: Path) -> None:
        with self.registry.update() as data:
            data[model_id] = str(Path(path).resolve())
