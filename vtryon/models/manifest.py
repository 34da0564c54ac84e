"""manifests/models.toml: every checkpoint vtryon knows, read into :class:`ModelEntry`.

A manifest has three tables:

- ``[models.<id>]``: one released checkpoint (a file, or a folder of files for the
  diffusion engines): what network it fills (``arch`` + ``config`` + ``wrapper``) and where it
  comes from (``size``, ``sha256``, ``sources``, ``license``, ``capabilities``). Fields this
  module does not know are kept in :attr:`ModelEntry.raw` for the code that does.
- ``[aliases]``: other file names under which a checkpoint circulates (the seed project's
  invented names) -> ``{ id, note }``.
- ``[unsupported]``: file names vtryon deliberately does not use -> the reason.

Extra manifests (``--manifest FILE``, ``$VTRYON_MANIFEST``, ``os.pathsep``-separated) are
read after the built-in one; an entry with the same id replaces the built-in entry whole, so
users can register their own fine-tuned checkpoints.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from vtryon.errors import UsageError
from vtryon.models.unwrap import WrapperSpec

MANIFEST_ENV = "VTRYON_MANIFEST"
_HEX = set("0123456789abcdef")


def manifests_dir() -> Path:
    """The folder with models.toml and profiles.toml (the installed copy, else the source tree's)."""
    here = Path(__file__).resolve().parent.parent
    installed = here / "_manifests"
    return installed if installed.is_dir() else here.parent / "manifests"


@dataclass(frozen=True)
class Source:
    """One place a checkpoint can be fetched from.

    Either a Hugging Face file (``hf`` repo id, ``revision``, ``path`` inside the repo; for a
    folder entry ``path`` is a folder and every file under it is fetched) or an ``https`` URL.
    ``revision`` should be a commit hash; a branch name is pinned to the commit it resolves to
    at the first download (recorded in the lock file).
    """

    hf: str = ""
    revision: str = ""
    path: str = ""
    url: str = ""
    note: str = ""
    patterns: tuple[str, ...] = ()  # folder entries: files under ``path`` to fetch (fnmatch globs)

    @property
    def kind(self) -> str:
        return "hf" if self.hf else "url"

    @property
    def pinned(self) -> bool:
        return self.kind == "url" or (len(self.revision) == 40 and set(self.revision) <= _HEX)

    def describe(self) -> str:
        if self.kind == "hf":
            return f"hf://{self.hf}@{self.revision or 'main'}/{self.path}"
        return self.url

    @classmethod
    def from_table(cls, model_id: str, table: Mapping[str, Any]) -> "Source":
        if not isinstance(table, Mapping):
            raise UsageError(f"manifest entry {model_id!r}: each source must be a table, got {table!r}")
        src = cls(
            hf=str(table.get("hf", "")),
            revision=str(table.get("revision", "")),
            path=str(table.get("path", "")),
            url=str(table.get("url", "")),
            note=str(table.get("note", "")),
            patterns=tuple(str(p) for p in table.get("patterns", ())),
        )
        if bool(src.hf) == bool(src.url):
            raise UsageError(f"manifest entry {model_id!r}: a source has either `hf` (+ revision, path) or `url`")
        if src.url and not src.url.startswith(("https://", "http://")):
            raise UsageError(f"manifest entry {model_id!r}: source url {src.url!r} is not http(s)")
        if src.hf and not src.path:
            raise UsageError(f"manifest entry {model_id!r}: Hugging Face source {src.hf!r} needs `path`")
        return src


@dataclass(frozen=True)
class Capabilities:
    """What the network tolerates: half precisions on accelerators, input size rules."""

    fp16: bool = False
    bf16: bool = False
    input_multiple: int = 1
    input_size: tuple[int, ...] = ()  # fixed (H, W) when the network needs one

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None) -> "Capabilities":
        table = table or {}
        return cls(
            fp16=bool(table.get("fp16", False)),
            bf16=bool(table.get("bf16", False)),
            input_multiple=int(table.get("input_multiple", 1)),
            input_size=tuple(int(v) for v in table.get("input_size", ())),
        )


@dataclass(frozen=True)
class ModelEntry:
    id: str
    step: str
    arch: str  # vtryon/archs registry name; "" for a folder a library reads itself (diffusers)
    file: str  # released file name (or folder name for a folder entry)
    wrapper: WrapperSpec = field(default_factory=WrapperSpec)
    config: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)
    size: int | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None  # only a prefix is published (torchvision's file names)
    hash_note: str = ""
    sources: tuple[Source, ...] = ()
    license: str = ""
    noncommercial: bool = False
    capabilities: Capabilities = field(default_factory=Capabilities)
    aliases: tuple[str, ...] = ()
    description: str = ""
    manual: str = ""  # how to get the file by hand when no source can be fetched automatically
    origin: str = ""  # the manifest file this entry came from

    @property
    def is_folder(self) -> bool:
        return self.raw.get("kind") == "folder"

    @property
    def names(self) -> tuple[str, ...]:
        """Every file name this checkpoint is known under (released name first)."""
        return (self.file, *[a for a in self.aliases if a != self.file])

    @classmethod
    def from_table(cls, model_id: str, table: Mapping[str, Any], origin: str = "") -> "ModelEntry":
        if not isinstance(table, Mapping):
            raise UsageError(f"manifest entry {model_id!r} is not a table")
        try:
            step, file = table["step"], table["file"]
        except KeyError as exc:
            raise UsageError(f"manifest entry {model_id!r} lacks the field {exc.args[0]!r}") from None
        kind = table.get("kind", "file")
        if kind not in ("file", "folder"):
            raise UsageError(f"manifest entry {model_id!r}: kind must be 'file' or 'folder', not {kind!r}")
        arch = str(table.get("arch", ""))  # "" : a file or folder a library reads itself (path() only)
        sha256 = _hex_or_none(model_id, "sha256", table.get("sha256"), 64)
        prefix = _hex_or_none(model_id, "sha256_prefix", table.get("sha256_prefix"), None)
        size = table.get("size")
        if size is not None and (not isinstance(size, int) or size <= 0):
            raise UsageError(f"manifest entry {model_id!r}: size must be a positive number of bytes")
        sources = tuple(Source.from_table(model_id, s) for s in table.get("sources", ()))
        return cls(
            id=model_id,
            step=str(step),
            arch=arch,
            file=str(file),
            wrapper=WrapperSpec.from_manifest(table.get("wrapper")),
            config=dict(table.get("config", {})),
            raw=dict(table),
            size=size,
            sha256=sha256,
            sha256_prefix=prefix,
            hash_note=str(table.get("hash_note", "")),
            sources=sources,
            license=str(table.get("license", "")),
            noncommercial=bool(table.get("noncommercial", False)),
            capabilities=Capabilities.from_table(table.get("capabilities")),
            aliases=tuple(str(a) for a in table.get("aliases", ())),
            description=str(table.get("description", "")),
            manual=str(table.get("manual", "")),
            origin=origin,
        )


def _hex_or_none(model_id: str, name: str, value: Any, length: int | None) -> str | None:
    if value in (None, ""):
        return None
    text = str(value).lower()
    if not set(text) <= _HEX or (length is not None and len(text) != length):
        want = f"{length} hex digits" if length else "hex digits"
        raise UsageError(f"manifest entry {model_id!r}: {name} must be {want}, got {value!r}")
    return text


@dataclass(frozen=True)
class Manifest:
    """Entries plus the alias and unsupported tables, merged from several files."""

    entries: dict[str, ModelEntry]
    aliases: dict[str, tuple[str, str]]  # file name -> (id, note)
    unsupported: dict[str, str]  # file name -> reason
    files: tuple[Path, ...] = ()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"manifest {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"manifest {path} is not valid TOML: {exc}") from None


def read_manifest(path: Path) -> dict[str, ModelEntry]:
    """The ``[models.*]`` entries of one manifest file."""
    data = _read_toml(Path(path))
    return {mid: ModelEntry.from_table(mid, table, origin=str(path)) for mid, table in data.get("models", {}).items()}


def read_full_manifest(paths: Iterable[Path]) -> Manifest:
    """Merge manifest files in order; later files add entries or replace them by id."""
    entries: dict[str, ModelEntry] = {}
    aliases: dict[str, tuple[str, str]] = {}
    unsupported: dict[str, str] = {}
    files = []
    for path in paths:
        path = Path(path)
        files.append(path)
        data = _read_toml(path)
        for mid, table in data.get("models", {}).items():
            entries[mid] = ModelEntry.from_table(mid, table, origin=str(path))
            for name in entries[mid].aliases:  # a later manifest may take a name over
                aliases[name] = (mid, "")
        for name, target in data.get("aliases", {}).items():
            if isinstance(target, str):
                aliases[name] = (target, "")
            elif isinstance(target, Mapping) and "id" in target:
                aliases[name] = (str(target["id"]), str(target.get("note", "")))
            else:
                raise UsageError(f"manifest {path}: alias {name!r} must name an id (`{{ id = \"...\" }}`)")
        for name, reason in data.get("unsupported", {}).items():
            unsupported[name] = str(reason)
    for name, (mid, _) in aliases.items():
        if mid not in entries:
            raise UsageError(f"manifest alias {name!r} points at unknown id {mid!r}")
    return Manifest(entries, aliases, unsupported, tuple(files))


def builtin_manifest_path() -> Path:
    return manifests_dir() / "models.toml"


@lru_cache(maxsize=1)
def _builtin_full() -> Manifest:
    return read_full_manifest([builtin_manifest_path()])


@lru_cache(maxsize=1)
def builtin_manifest() -> dict[str, ModelEntry]:
    return dict(_builtin_full().entries)


def extra_manifest_paths(extra: Sequence[Path | str] | None = None) -> list[Path]:
    """Paths from ``$VTRYON_MANIFEST`` then ``extra`` (``--manifest``), in that order."""
    paths = [Path(p) for p in os.environ.get(MANIFEST_ENV, "").split(os.pathsep) if p.strip()]
    paths += [Path(p) for p in extra or ()]
    return paths


def load_manifest(extra: Sequence[Path | str] | None = None) -> Manifest:
    """The built-in manifest with ``$VTRYON_MANIFEST`` and ``extra`` files layered on top."""
    paths = extra_manifest_paths(extra)
    if not paths:
        return _builtin_full()
    return read_full_manifest([builtin_manifest_path(), *paths])


ManifestLike = Manifest | Mapping[str, ModelEntry] | Sequence[Path | str] | None


def as_manifest(manifest: ManifestLike) -> Manifest:
    """Accept what callers pass: None (built-in + env), extra manifest paths, entries, or a Manifest."""
    if isinstance(manifest, Manifest):
        return manifest
    if manifest is None:
        return load_manifest()
    if isinstance(manifest, Mapping):
        return Manifest(dict(manifest), {}, {})
    return load_manifest(list(manifest))


def entry_for(manifest: Manifest, model_id: str) -> ModelEntry:
    """The entry for ``model_id`` (an id, or an alias file name), or a UsageError listing ids."""
    if model_id in manifest.entries:
        return manifest.entries[model_id]
    if model_id in manifest.aliases:
        return manifest.entries[manifest.aliases[model_id][0]]
    if model_id in manifest.unsupported:
        raise UsageError(f"{model_id} is not supported: {manifest.unsupported[model_id]}")
    known = ", ".join(sorted(manifest.entries))
    raise UsageError(f"unknown model id {model_id!r}; known ids: {known}")
