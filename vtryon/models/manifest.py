"""manifests/models.toml: every checkpoint vtryon knows, read into :class:`ModelEntry`."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from vtryon.errors import UsageError
from vtryon.models.unwrap import WrapperSpec


def manifests_dir() -> Path:
    """The folder with models.toml and profiles.toml (the installed copy, else the source tree's)."""
    here = Path(__file__).resolve().parent.parent
    installed = here / "_manifests"
    return installed if installed.is_dir() else here.parent / "manifests"


@dataclass(frozen=True)
class ModelEntry:
    id: str
    step: str
    arch: str
    file: str
    wrapper: WrapperSpec = field(default_factory=WrapperSpec)
    config: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_table(cls, model_id: str, table: Mapping[str, Any]) -> "ModelEntry":
        try:
            return cls(
                id=model_id,
                step=table["step"],
                arch=table["arch"],
                file=table["file"],
                wrapper=WrapperSpec.from_manifest(table.get("wrapper")),
                config=dict(table.get("config", {})),
                raw=dict(table),
            )
        except KeyError as exc:
            raise UsageError(f"manifest entry {model_id!r} lacks the field {exc.args[0]!r}") from None


def read_manifest(path: Path) -> dict[str, ModelEntry]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"manifest {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"manifest {path} is not valid TOML: {exc}") from None
    return {mid: ModelEntry.from_table(mid, table) for mid, table in data.get("models", {}).items()}


@lru_cache(maxsize=1)
def builtin_manifest() -> dict[str, ModelEntry]:
    return read_manifest(manifests_dir() / "models.toml")
