"""Which checkpoints are installed and verified, for `--profile auto` and `vtryon models`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vtryon.errors import VtryonError
from vtryon.models.manifest import ManifestLike
from vtryon.models.store import ModelStore
from vtryon.models.verify import check_file


def _store(models_dir: Path | str | None, manifest: ManifestLike, store: ModelStore | None) -> ModelStore:
    from vtryon.models.hub import offline_by_default

    offline_by_default()
    return store if store is not None else ModelStore(models_dir, manifest)


def model_problem(model_id: str, store: ModelStore) -> str | None:
    """None when ``model_id`` is installed and its size and sha256 check out, else what is wrong."""
    try:
        entry = store.entry(model_id)
    except VtryonError as exc:
        return str(exc)
    path = store.locate(entry)
    if path is None:
        how = f"run `vtryon download {entry.id}`" if entry.sources else (entry.manual or "see `vtryon models`")
        return f"is not installed ({entry.file}; {how})"
    check = check_file(entry, path, store)
    if check.problems:
        return f"is damaged: {check.problems[0]}"
    return None


def missing_models(
    model_ids: Iterable[str],
    models_dir: Path | str | None = None,
    manifest: ManifestLike = None,
    *,
    store: ModelStore | None = None,
) -> list[tuple[str, str]]:
    """(id, problem) for each of ``model_ids`` that is not installed and verified."""
    store = _store(models_dir, manifest, store)
    out = []
    for mid in model_ids:
        problem = model_problem(mid, store)
        if problem:
            out.append((mid, problem))
    return out


def profile_status(
    profile: Any,
    models_dir: Path | str | None = None,
    manifest: ManifestLike = None,
    *,
    store: ModelStore | None = None,
) -> tuple[bool, str]:
    """(ready, reason) for a profile (a Profile or its name)."""
    from vtryon.profiles import get_profile

    prof = get_profile(profile) if isinstance(profile, str) else profile
    try:
        ids = prof.models()
    except VtryonError as exc:
        return False, f"a backend of {prof.name} is not available: {exc}"
    if not ids:
        return True, "needs no checkpoint"
    problems = missing_models(ids, models_dir, manifest, store=store)
    if not problems:
        return True, f"all {len(ids)} checkpoints installed and verified"
    mid, problem = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return False, f"{mid} {problem}{more}"
