"""The shared model pool: every learned model a step uses comes from here.

``load(id)``: find the file (:class:`~vtryon.models.store.ModelStore`), check its size and
sha256 (hashes cached by path, size and mtime), read it as data (safetensors memory-mapped,
``torch.load(weights_only=True, mmap=True)``, TorchScript as data), unwrap it per the manifest,
build the architecture on the meta device and fill it with ``load_state_dict(strict=True,
assign=True)`` (:mod:`vtryon.models.build`), cast it to the precision and move it to the
device tensor by tensor (never two full copies), and keep it: a model two steps share loads
once.

Offload, applied by the pipeline per step: ``none`` keeps models resident; ``model`` moves a
step's models to the CPU after the step and back to the device when a step needs them;
``sequential`` frees them after the step. ``held_bytes()`` accounts what the pool holds per
device; with ``budget_bytes`` the least recently used models not needed by the current step
are freed when a load would exceed it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtryon.errors import CheckpointMissing, UsageError
from vtryon.models.manifest import ManifestLike, ModelEntry
from vtryon.models.store import ModelStore
from vtryon.models.verify import PREFIX, UNRECORDED, check_file, raise_for

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
OFFLOADS = ("none", "model", "sequential")


def missing_error(entry: ModelEntry, store: ModelStore) -> CheckpointMissing:
    """The one-line error for a checkpoint that is not installed: the file, where we looked, the fix."""
    if entry.sources:
        hint = f"run `vtryon download {entry.id}`"
    elif entry.manual:
        hint = f"no automatic download for it: {entry.manual}"
    else:
        hint = f"put {entry.file} in {store.target(entry).parent} or register it with `vtryon models scan DIR`"
    return CheckpointMissing(
        f"checkpoint {entry.id} ({entry.file}) is not installed; looked in {store.where_looked(entry)}", hint=hint
    )


def resolve_dtype(entry: ModelEntry, device: str, precision: str) -> Any:
    """fp32 on CPU; fp16/bf16 on accelerators when the network tolerates it; ``precision`` overrides."""
    import torch

    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r} is not one of: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    kind = torch.device(device).type
    if kind == "cpu":
        return torch.float32
    caps = entry.capabilities
    if caps.fp16:
        return torch.float16
    if caps.bf16 and (kind != "cuda" or torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float32


def module_bytes(model: Any) -> dict[str, int]:
    """Bytes of a module's parameters and buffers, per device (shared tensors counted once)."""
    out: dict[str, int] = {}
    seen: set[int] = set()
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_meta or id(t) in seen:
            continue
        seen.add(id(t))
        key = str(t.device)
        out[key] = out.get(key, 0) + t.numel() * t.element_size()
    return out


@dataclass
class _Held:
    model: Any
    entry: ModelEntry
    path: Path
    dtype: Any


class ModelPool:
    """Verified, strictly loaded, cached models on one device (see the module docstring)."""

    def __init__(
        self,
        device: str = "cpu",
        precision: str = "auto",
        offload: str = "none",
        models_dir: Path | str | None = None,
        manifest: ManifestLike = None,
        budget_bytes: int | None = None,
    ) -> None:
        from vtryon.models.hub import offline_by_default

        if offload not in OFFLOADS:
            raise UsageError(f"--offload {offload!r} is not one of: {', '.join(OFFLOADS)}")
        if precision not in PRECISIONS:
            raise UsageError(f"--precision {precision!r} is not one of: {', '.join(PRECISIONS)}")
        offline_by_default()
        self.device = device
        self.precision = precision
        self.offload = offload
        self.budget_bytes = budget_bytes
        self.store = ModelStore(models_dir, manifest)
        self._held: OrderedDict[str, _Held] = OrderedDict()  # least recently used first
        self._paths: dict[str, Path] = {}
        self._active: set[str] = set()
        self.loads = 0  # files read so far (a shared model counts once)

    # -- files -------------------------------------------------------------------------------
    def entry(self, model_id: str) -> ModelEntry:
        return self.store.entry(model_id)

    def path(self, model_id: str) -> Path:
        """The verified file (or folder) of ``model_id``; raises CheckpointMissing/CheckpointCorrupt."""
        entry = self.entry(model_id)
        if entry.id in self._paths:
            return self._paths[entry.id]
        path = self.store.locate(entry)
        if path is None:
            raise missing_error(entry, self.store)
        check = check_file(entry, path, self.store)
        raise_for(check)
        if check.hash_status in (UNRECORDED, PREFIX):  # record the full hash: later checks compare all of it
            self._trust_first_use(entry, path, check.sha256)
        self._paths[entry.id] = path
        return path

    def _trust_first_use(self, entry: ModelEntry, path: Path, sha256: str | None) -> None:
        """No published hash and none recorded: record this file's, so a later change is caught."""
        try:
            if entry.is_folder:
                files = {
                    str(p.relative_to(path)): {"size": p.stat().st_size, "sha256": self.store.hashes.sha256(p)}
                    for p in sorted(path.rglob("*"))
                    if p.is_file()
                }
                self.store.lock.record(entry.id, {"file": entry.file, "files": files, "source": f"first use of {path}"})
            else:
                self.store.lock.record(
                    entry.id, {"file": entry.file, "size": path.stat().st_size, "sha256": sha256, "source": f"first use of {path}"}
                )
            log.info("%s: no published sha256; recorded this file's in %s (trust on first use)", entry.id, self.store.lock.path)
        except OSError as exc:
            log.warning("%s: could not record its sha256 in %s: %s", entry.id, self.store.lock.path, exc)

    # -- models ------------------------------------------------------------------------------
    def load(self, model_id: str) -> Any:
        """The network of ``model_id``: verified, unwrapped, strict, eval, on device and dtype, cached."""
        entry = self.entry(model_id)
        held = self._held.get(entry.id)
        if held is not None:
            self._held.move_to_end(entry.id)
            self._to_device(held)
            return held.model
        if not entry.arch:
            raise UsageError(
                f"{entry.id} is a {'folder' if entry.is_folder else 'file'} its library reads itself; use ctx.models.path({entry.id!r})"
            )
        path = self.path(entry.id)
        model = self._read_and_build(entry, path)
        dtype = resolve_dtype(entry, self.device, self.precision)
        model.to(device=self.device, dtype=dtype)  # tensor by tensor: the old one is freed as it goes
        model.requires_grad_(False)
        self.loads += 1
        self._held[entry.id] = _Held(model, entry, path, dtype)
        self._evict_for_budget(keep={entry.id})
        return model

    def _read_and_build(self, entry: ModelEntry, path: Path) -> Any:
        from vtryon.models.build import build_from_state_dict
        from vtryon.models.checkpoint_io import read_state_dict

        raw = read_state_dict(path)
        try:
            return build_from_state_dict(entry.arch, raw, wrapper=entry.wrapper, config=entry.config, source=str(path))
        finally:
            del raw  # the module now owns the (memory-mapped) tensors

    def _to_device(self, held: _Held) -> None:
        target = _canonical(self.device)
        first = next(iter(list(held.model.parameters()) + list(held.model.buffers())), None)
        if first is not None and not _same_device(first.device, target):
            held.model.to(device=self.device)

    def release(self, model_id: str) -> None:
        """Free a model (the next load reads the file again)."""
        entry = self.entry(model_id)
        if self._held.pop(entry.id, None) is not None:
            _empty_device_cache(self.device)

    def clear(self) -> None:
        self._held.clear()
        _empty_device_cache(self.device)

    def held_bytes(self) -> dict[str, int]:
        """Bytes of the weights the pool holds, per device."""
        total: dict[str, int] = {}
        for held in self._held.values():
            for device, n in module_bytes(held.model).items():
                total[device] = total.get(device, 0) + n
        return total

    def held_ids(self) -> list[str]:
        return list(self._held)

    # -- offload, applied by the pipeline ------------------------------------------------------
    def begin_step(self, step: str, model_ids: Iterable[str]) -> None:
        """A step starts: its models that were offloaded go back to the device."""
        self._active = {self.entry(m).id for m in model_ids}
        for mid in self._active:
            held = self._held.get(mid)
            if held is not None:
                self._held.move_to_end(mid)
                self._to_device(held)

    def end_step(self, step: str, model_ids: Iterable[str], offload: str | None = None) -> None:
        """A step ended: keep (none), park on the CPU (model) or free (sequential) its models."""
        policy = offload or self.offload
        if policy not in OFFLOADS:
            raise UsageError(f"--offload {policy!r} is not one of: {', '.join(OFFLOADS)}")
        ids = [self.entry(m).id for m in model_ids]
        if policy == "model":
            for mid in ids:
                held = self._held.get(mid)
                if held is not None and _canonical(self.device).type != "cpu":
                    held.model.to(device="cpu")
            _empty_device_cache(self.device)
        elif policy == "sequential":
            for mid in ids:
                self._held.pop(mid, None)
            _empty_device_cache(self.device)
        self._active = set()

    def _evict_for_budget(self, keep: set[str]) -> None:
        if self.budget_bytes is None:
            return
        protected = keep | self._active
        for mid in list(self._held):  # least recently used first
            if sum(self.held_bytes().values()) <= self.budget_bytes:
                return
            if mid not in protected:
                log.info("memory budget: freeing %s", mid)
                del self._held[mid]
        if sum(self.held_bytes().values()) > self.budget_bytes:
            log.warning("memory budget %d bytes exceeded by the models the current step needs", self.budget_bytes)


def _canonical(device: str) -> Any:
    import torch

    d = torch.device(device)
    if d.type == "cuda" and d.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return d


def _same_device(a: Any, b: Any) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _empty_device_cache(device: str) -> None:
    import gc

    gc.collect()
    try:
        import torch

        kind = torch.device(device).type
        if kind == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
        elif kind == "mps" and torch.backends.mps.is_available():
            torch.mps.empty_cache()
    except Exception:  # an accelerator runtime that cannot empty its cache is no reason to fail
        pass
