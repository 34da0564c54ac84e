"""Full-size random-weight checkpoints in the released layouts, for end-to-end tests through the pool.

A checkpoint written here has every tensor of the released file (names and shapes from
../shared/reference/layouts/<id>.json), inside the released container (the manifest entry's
``wrapper.keys``), under the manifest's file name at ``<models_dir>/<id>/<file>``. Its values
are the architecture's own PyTorch initialisation (seeded), so the networks run and produce
nonsense: these files test the chain's plumbing, never its numbers. The manifest table that
registers a file carries its size and sha256, so the pool verifies it like a downloaded one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from loader_support import toml_entry
from reference_support import load_layout

# adjust(tensors) edits a checkpoint's tensors (released names) before it is saved
Adjust = Callable[[dict[str, torch.Tensor]], None]


def _lower_class_zero(key: str, value: float) -> Adjust:
    def adjust(tensors: dict[str, torch.Tensor]) -> None:
        tensors[key][0] = value

    return adjust


# With random weights a parser or cloth segmenter may call every pixel background, and the
# backend then rightly stops (NoPersonFound, NoGarmentFound). Lowering the bias of class 0
# of the final classifier keeps some foreground, as the parsing tests do.
BACKGROUND_DOWN: dict[str, Adjust] = {
    "schp_lip": _lower_class_zero("module.fushion.3.bias", -5.0),
    "schp_atr": _lower_class_zero("module.fushion.3.bias", -5.0),
    "graphonomy_cihp": _lower_class_zero("semantic.bias", -10.0),
    "cloth_segm_u2net": _lower_class_zero("module.outconv.bias", -5.0),
}


def random_released_tensors(model_id: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every tensor of ``model_id``'s released file (released names and shapes), seeded random."""
    from vtryon.archs import arch_module
    from vtryon.models.build import module_state_dict, resolve_config
    from vtryon.models.manifest import builtin_manifest

    entry = builtin_manifest()[model_id]
    layout = load_layout(model_id)["tensors"]
    file_key = module_state_dict(entry.arch, {k: k for k in layout}, entry.wrapper)  # module key -> file key
    meta = {mk: torch.empty(layout[fk], device="meta") for mk, fk in file_key.items()}
    config = resolve_config(entry.arch, meta, entry.config)
    torch.manual_seed(seed)
    module_sd = arch_module(entry.arch).build(config).state_dict()
    module_of = {fk: mk for mk, fk in file_key.items()}
    released = {}
    for fk in layout:  # a key the renaming drops is an alias of another (RAFT's norm3)
        released[fk] = module_sd[module_of.get(fk) or module_of[fk.replace(".norm3.", ".downsample.1.")]].clone()
    return released


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_table(model_id: str, path: Path) -> str:
    """The ``[models.<id>]`` table registering ``path`` as ``model_id``'s file (size, sha256)."""
    from vtryon.models.manifest import builtin_manifest

    entry = builtin_manifest()[model_id]
    fields: dict[str, Any] = {"step": entry.step, "arch": entry.arch, "file": entry.file}
    for name in ("wrapper", "config"):
        if isinstance(entry.raw.get(name), Mapping) and entry.raw[name]:
            fields[name] = dict(entry.raw[name])
    fields["wrapper"] = fields.get("wrapper", {})
    fields |= {"size": path.stat().st_size, "sha256": sha256_file(path)}
    return toml_entry(model_id, **fields)


def write_released_random_checkpoint(model_id: str, models_dir: Path, adjust: Adjust | None = None, seed: int = 0) -> str:
    """Write ``<models_dir>/<id>/<file>`` (released container included); return its manifest table."""
    from vtryon.models.manifest import builtin_manifest

    entry = builtin_manifest()[model_id]
    tensors = random_released_tensors(model_id, seed)
    if adjust is not None:
        adjust(tensors)
    container = {entry.wrapper.keys[0]: tensors} if entry.wrapper.keys else tensors
    path = models_dir / model_id / entry.file
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(container, path)
    del tensors, container
    return manifest_table(model_id, path)


def write_extra_manifest(path: Path, tables: Iterable[str]) -> Path:
    path.write_text("\n".join(tables), encoding="utf-8")
    return path


def write_random_checkpoints(ids: list[str], models_dir: Path, adjust: Mapping[str, Adjust] | None = None) -> Path:
    """Full-size random-weight checkpoints for ``ids`` in ``models_dir`` and the extra manifest
    ``<models_dir>/random-weights.toml`` registering them; ``adjust`` by id (e.g. BACKGROUND_DOWN)."""
    adjust = adjust or {}
    tables = [write_released_random_checkpoint(mid, models_dir, adjust.get(mid)) for mid in ids]
    return write_extra_manifest(models_dir / "random-weights.toml", tables)
