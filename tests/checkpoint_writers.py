"""Full-size random-weight checkpoints in the released layouts, for end-to-end tests through the pool.

A checkpoint written here has every tensor of the released file (names and shapes from
../shared/reference/layouts/<id>.json), inside the released container (the manifest entry's
``wrapper.keys``), under the manifest's file name at ``<models_dir>/<id>/<file>``. Its values
are the architecture's own PyTorch initialisation (seeded), so the networks run and produce
nonsense: these files test the chain's plumbing, never its numbers. A few tensors may be
adjusted (``USABLE_OUTPUTS``) so that a step 01-03 backend's output can feed the next step
instead of stopping the chain. The manifest table that registers a file carries its size and
sha256, so the pool verifies it like a downloaded one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
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


# ------------------------------------------------------------------ OpenPose drawing one person
#
# Random OpenPose weights find nobody, and a chain that needs both shoulders (VITON-HD) then
# rightly stops. ``openpose_draws_a_person`` rewrites the heatmap branch of stages 2-6 and the
# last PAF layer so the network draws one upright person whatever the photo: the heatmap
# branch starts from a constant map (Mconv1_stage2_L2: zero weights, bias 1) and convolves it
# 24 times with a per-part 7x7 kernel tilted towards one side (exp(beta * offset), summing to
# 1) with zero padding. That is the survival probability of a drifting random walk in the
# map, a smooth bump whose single maximum the tilt moves; the last layer keeps the top of each
# bump. The PAFs are constant unit vectors along the template's limbs. The template is laid
# out for the 18 x 23 cell map a 3:4 photo gives at OpenPose's default scale.

TILTED_LAYERS = 24  # Mconv2-5 of stage 2, Mconv1-5 of stages 3-6
SKELETON_MAP = (18, 23)  # (width, height) in cells of a 3:4 photo at scale 0.5 (138 x 184 px, padded to 144)
# OpenPose-18 parts at (x, y) cells of that map: the person faces the camera
SKELETON_CELLS: tuple[tuple[float, float], ...] = (
    (8.5, 4.5), (8.5, 7.0), (6.0, 7.5), (5.0, 10.5), (5.0, 13.5), (11.0, 7.5), (12.0, 10.5), (12.0, 13.5),
    (7.3, 13.0), (7.3, 16.0), (7.3, 19.0), (9.7, 13.0), (9.7, 16.0), (9.7, 19.0),
    (8.0, 4.0), (9.0, 4.0), (7.3, 4.3), (9.7, 4.3),
)


def _tilted_kernel(beta: float) -> np.ndarray:
    k = np.exp(beta * np.arange(-3, 4))
    return k / k.sum()


def _walk_survival(n: int, beta: float, layers: int = TILTED_LAYERS) -> np.ndarray:
    """The 1-D map after ``layers`` zero-padded correlations of a constant with the tilted kernel."""
    k = _tilted_kernel(beta)
    h = np.ones(n)
    for _ in range(layers):
        h = np.convolve(np.pad(h, 3), k[::-1], mode="valid")  # correlation, as Conv2d computes it
    return h


def _peak(h: np.ndarray) -> float:
    """Sub-cell position of the maximum (parabola through the top three cells)."""
    i = int(np.argmax(h))
    if 0 < i < len(h) - 1:
        a, b, c = h[i - 1 : i + 2]
        denom = a - 2 * b + c
        return i + (0.5 * (a - c) / denom if denom else 0.0)
    return float(i)


def _tilt_for(n: int, target: float) -> tuple[float, float]:
    """(beta, maximum value) placing the 1-D bump's maximum at ``target`` (bisection: the
    maximum moves left as beta grows)."""
    lo, hi = -0.6, 0.6
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _peak(_walk_survival(n, mid)) > target else (lo, mid)
    beta = (lo + hi) / 2
    return beta, float(_walk_survival(n, beta).max())


def openpose_draws_a_person(tensors: dict[str, torch.Tensor]) -> None:
    """Rewrite the released-name tensors of ``body_pose_model.pth`` in place (see above)."""
    from vtryon.steps.pose.openpose import LIMBS, PAF_CHANNELS

    n_parts, hidden = len(SKELETON_CELLS), tensors["Mconv2_stage2_L2.weight"].shape[0]
    kernels, peak_values = [], []
    for x, y in SKELETON_CELLS:
        bx, mx = _tilt_for(SKELETON_MAP[0], x)
        by, my = _tilt_for(SKELETON_MAP[1], y)
        kernels.append(torch.from_numpy(np.outer(_tilted_kernel(by), _tilted_kernel(bx))).float())
        peak_values.append(mx * my)

    def layer(name: str, weight: torch.Tensor, bias: torch.Tensor) -> None:
        assert tensors[f"{name}.weight"].shape == weight.shape and tensors[f"{name}.bias"].shape == bias.shape, name
        tensors[f"{name}.weight"], tensors[f"{name}.bias"] = weight, bias

    first = tensors["Mconv1_stage2_L2.weight"]
    layer("Mconv1_stage2_L2", torch.zeros_like(first), torch.ones(hidden))
    n_pafs = tensors["Mconv7_stage6_L1.bias"].shape[0]
    for t in range(2, 7):
        for i in range(1 if t > 2 else 2, 6):
            w = torch.zeros_like(tensors[f"Mconv{i}_stage{t}_L2.weight"])
            for part, kernel in enumerate(kernels):
                w[part, part + (n_pafs if i == 1 else 0)] = kernel  # Mconv1 reads cat([pafs, heatmaps, features])
            layer(f"Mconv{i}_stage{t}_L2", w, torch.zeros(hidden))
        layer(f"Mconv6_stage{t}_L2", torch.eye(hidden)[:, :, None, None], torch.zeros(hidden))
        last = torch.zeros_like(tensors[f"Mconv7_stage{t}_L2.weight"])
        bias = torch.zeros(last.shape[0])
        for part in range(n_parts):
            last[part, part] = 1.0
            if t == 6:  # heat = 4 * bump / its maximum - 3: only the top quarter of each bump survives the ReLU
                last[part, part] = 4.0 / peak_values[part]
                bias[part] = -3.0
        layer(f"Mconv7_stage{t}_L2", last, bias)
    pafs = torch.zeros(n_pafs)
    for (a, b), (cx, cy) in zip(LIMBS, PAF_CHANNELS):
        d = np.subtract(SKELETON_CELLS[b], SKELETON_CELLS[a])
        pafs[cx], pafs[cy] = torch.tensor(d / np.hypot(*d), dtype=torch.float32)
    layer("Mconv7_stage6_L1", torch.zeros_like(tensors["Mconv7_stage6_L1.weight"]), pafs)


# What each step 01-03 checkpoint needs so its backend gives the chain something to work with.
USABLE_OUTPUTS: dict[str, Adjust] = {**BACKGROUND_DOWN, "openpose_body": openpose_draws_a_person}


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


def write_released_random_checkpoint(
    model_id: str, models_dir: Path, adjust: Adjust | None = None, seed: int = 0
) -> str:
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
