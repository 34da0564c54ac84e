"""What `verify-models` and `vtryon models` report: one row per checkpoint, one per profile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from vtryon.errors import UsageError, VtryonError
from vtryon.models.store import ModelStore
from vtryon.models.verify import check_file, check_layout


@dataclass
class ModelRow:
    id: str
    step: str
    file: str
    license: str
    noncommercial: bool
    present: bool = False
    path: str | None = None
    size: int | None = None
    sha256: str = "not checked"
    loadable: str = "not checked"
    deep: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.present and not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def select_ids(store: ModelStore, ids: Sequence[str], profile: str | None) -> tuple[list[str], bool]:
    """The ids asked for (aliases resolved, profile's added) and whether any were asked for at all."""
    chosen: list[str] = []

    def add(mid: str) -> None:
        entry = store.entry(mid)
        if entry.id not in chosen:
            chosen.append(entry.id)

    for mid in ids:
        add(mid)
    if profile:
        from vtryon.profiles import get_profile

        for mid in get_profile(profile).models():
            add(mid)
    if ids or profile:
        return chosen, True
    return sorted(store.manifest.entries), False


def verify_row(store: ModelStore, model_id: str, *, deep: bool = False, layout: bool = True) -> ModelRow:
    entry = store.entry(model_id)
    row = ModelRow(entry.id, entry.step, entry.file, entry.license, entry.noncommercial)
    path = store.locate(entry)
    if path is None:
        row.problems.append("not installed")
        row.sha256 = row.loadable = "-"
        return row
    row.present, row.path = True, str(path)
    check = check_file(entry, path, store)
    row.size = check.size
    row.sha256 = check.hash_status
    row.problems += check.problems
    if check.problems:
        row.loadable = "no (file damaged)"
        return row
    if layout and not entry.is_folder:
        ok, message = check_layout(entry, path)
        row.loadable = f"yes: {message}" if ok else f"no: {message}"
        if not ok:
            row.problems.append(message)
    elif entry.is_folder:
        row.loadable = "read by its library"
    if deep and row.ok and entry.arch:
        row.deep = deep_check(store, entry.id)
        if not row.deep.startswith("ok"):
            row.problems.append(f"forward pass: {row.deep}")
    return row


def deep_check(store: ModelStore, model_id: str) -> str:
    """Load the model for real (CPU, fp32) and run one forward pass on the arch's example input."""
    import torch

    from vtryon.archs import arch_module
    from vtryon.models.build import resolve_config
    from vtryon.models.pool import ModelPool
    from vtryon.models.verify import file_tensors

    entry = store.entry(model_id)
    mod = arch_module(entry.arch)
    make_input = getattr(mod, "example_input", None)
    if make_input is None:
        return f"skipped: architecture {entry.arch} offers no example_input(config)"
    try:
        path = store.locate(entry)
        assert path is not None
        config = resolve_config(entry.arch, file_tensors(entry, path, meta=True), entry.config)
        pool = ModelPool(device="cpu", precision="fp32", models_dir=store.root, manifest=store.manifest)
        model = pool.load(entry.id)
        inputs = make_input(config)
        with torch.no_grad():
            out = model(**inputs) if isinstance(inputs, dict) else model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)
    except VtryonError as exc:
        return f"failed: {exc}"
    except Exception as exc:  # the forward pass itself failed: report it, do not crash the table
        return f"failed: {type(exc).__name__}: {exc}"
    tensors = _tensors(out)
    if not tensors:
        return "failed: the forward pass returned no tensor"
    if not all(bool(torch.isfinite(t.float()).all()) for t in tensors):
        return "failed: the output has NaN or infinite values"
    shapes = ", ".join(str(list(t.shape)) for t in tensors[:3])
    return f"ok: output {shapes}{' …' if len(tensors) > 3 else ''}"


def _tensors(obj: Any) -> list[Any]:
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def profile_rows(store: ModelStore, rows: dict[str, ModelRow] | None = None) -> list[dict[str, Any]]:
    """Every profile: runnable or not, and why (uses ``rows`` already computed when given)."""
    from vtryon.models.status import model_problem
    from vtryon.profiles import all_profiles

    out = []
    for name, profile in all_profiles().items():
        try:
            ids = profile.models()
        except VtryonError as exc:
            out.append({"profile": name, "ready": False, "reason": f"a backend is not available: {exc}", "models": []})
            continue
        problems = []
        for mid in ids:
            row = (rows or {}).get(store.entry(mid).id)
            problem = (row.problems[0] if row.problems else None) if row is not None else model_problem(mid, store)
            if problem:
                problems.append(f"{mid} {problem}")
        reason = "needs no checkpoint" if not ids else ("all checkpoints installed and verified" if not problems else problems[0])
        out.append({"profile": name, "description": profile.description, "ready": not problems, "reason": reason, "models": ids})
    return out


def require_selection(ids: Sequence[str], profile: str | None) -> None:
    if not ids and not profile:
        raise UsageError("name the checkpoints to fetch (ids from `vtryon models`) or a --profile")
