"""manifests/profiles.toml: which backend each step uses in a profile."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache

from vtryon.errors import UsageError
from vtryon.models.manifest import manifests_dir
from vtryon.steps import STEPS, load_backend


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    backends: dict[str, str]  # step -> backend name

    def models(self) -> list[str]:
        """Manifest ids every backend of this profile loads, in step order, without repeats."""
        ids: list[str] = []
        for step in STEPS:
            for model_id in load_backend(step, self.backends[step]).models:
                if model_id not in ids:
                    ids.append(model_id)
        return ids


@lru_cache(maxsize=1)
def _data() -> dict:
    return tomllib.loads((manifests_dir() / "profiles.toml").read_text(encoding="utf-8"))


def unavailable() -> dict[str, str]:
    """Profiles the project knows but cannot run, with the reason (profiles.toml [unavailable])."""
    return dict(_data().get("unavailable", {}))


@lru_cache(maxsize=1)
def _read() -> tuple[dict[str, Profile], tuple[str, ...]]:
    data = _data()
    profiles = {}
    for name, table in data.get("profiles", {}).items():
        missing = [s for s in STEPS if s not in table]
        if missing:
            raise UsageError(f"profile {name!r} in profiles.toml names no backend for: {', '.join(missing)}")
        profiles[name] = Profile(name, table.get("description", ""), {s: table[s] for s in STEPS})
    return profiles, tuple(data.get("auto_order", ()))


def all_profiles() -> dict[str, Profile]:
    return dict(_read()[0])


def auto_order() -> tuple[str, ...]:
    return _read()[1]


def get_profile(name: str) -> Profile:
    profiles = all_profiles()
    if name in unavailable():
        raise UsageError(f"profile {name!r} cannot run in vtryon yet: {unavailable()[name]}")
    if name not in profiles:
        raise UsageError(f"unknown profile {name!r}; profiles are: auto, {', '.join(profiles)}")
    return profiles[name]
