"""Reading ../shared/reference: layouts, fixtures, and the seeded weight recipes.

A fixture holds ``weights.<key as in the released file>``, ``input`` / ``input.<name>`` and
``output`` / ``output.<name>``. Fixtures with ``"weights_stored": false`` hold a recipe
instead: specs walked in order with one seeded ``torch.Generator``; ``keep`` specs keep the
constructor's value; a sha256 per tensor proves the regeneration.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VTRYON_SHARED_DIR", ROOT.parent / "shared"))
LAYOUT_DIR = SHARED / "reference" / "layouts"
BUILTIN_FIXTURE_DIR = SHARED / "reference" / "fixtures"
FIXTURE_DIR = Path(os.environ.get("VTRYON_REFERENCE_DIR", BUILTIN_FIXTURE_DIR))
UNSUPPORTED_FILE = ROOT / "tests" / "reference_unsupported.toml"


def layout_ids() -> list[str]:
    ids = []
    for path in sorted(LAYOUT_DIR.glob("*.json")):
        if isinstance(json.loads(path.read_text()).get("tensors"), dict):
            ids.append(path.stem)  # facts-only files (ootdiffusion, catvton) have no tensors
    return ids


def load_layout(model_id: str) -> dict[str, Any]:
    return json.loads((LAYOUT_DIR / f"{model_id}.json").read_text())


def fixture_ids() -> list[str]:
    return sorted(p.stem for p in FIXTURE_DIR.glob("*.json") if (FIXTURE_DIR / f"{p.stem}.safetensors").exists())


def unsupported() -> dict[str, str]:
    import tomllib

    return dict(tomllib.loads(UNSUPPORTED_FILE.read_text()).get("unsupported", {}))


@dataclass
class Fixture:
    id: str
    meta: dict[str, Any]
    weights: dict[str, Any]  # released-file keys -> tensors (recipe regenerated)
    keep_keys: list[str]  # released-file keys whose value is the constructor's
    inputs: dict[str, Any]  # "input" or the part after "input."
    outputs: dict[str, Any]  # "output" or the part after "output."
    checksums: dict[str, str] = field(default_factory=dict)

    def tolerance(self, output: str) -> tuple[float, float]:
        """(atol, rtol) for ``output`` from the json; 1e-4 when none is given."""
        per_output = self.meta.get("suggested_tolerance") or {}
        full = "output" if output == "output" else f"output.{output}"
        for key in (full, output):
            if key in per_output:
                return float(per_output[key]["atol"]), float(per_output[key].get("rtol", 1e-4))
        rec = self.meta.get("tolerance_recommended") or self.meta.get("tolerance") or {}
        if isinstance(rec, dict) and "atol" in rec:
            return float(rec["atol"]), float(rec.get("rtol", 1e-4))
        return 1e-4, 1e-4


def _tensor_sha256(t: Any) -> str:
    return hashlib.sha256(t.detach().contiguous().cpu().numpy().tobytes()).hexdigest()


def regenerate_recipe(meta: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    import torch

    recipe = meta["weight_recipe"]
    g = torch.Generator().manual_seed(int(recipe.get("seed", meta.get("seed", 0))))
    weights: dict[str, Any] = {}
    keep: list[str] = []
    for key, shape, spec in recipe["specs"]:
        kind = spec[0]
        if kind == "normal":
            weights[key] = torch.randn(shape, generator=g, dtype=torch.float32) * spec[2] + spec[1]
        elif kind == "uniform":
            weights[key] = torch.rand(shape, generator=g, dtype=torch.float32) * (spec[2] - spec[1]) + spec[1]
        elif kind == "keep":
            keep.append(key)
        else:  # a recipe kind this harness does not know must fail loudly, not be skipped
            raise ValueError(f"{meta.get('model_id')}: unknown recipe spec {spec!r} for {key}")
    return weights, keep


def load_fixture(model_id: str) -> Fixture:
    from safetensors.torch import load_file

    meta = json.loads((FIXTURE_DIR / f"{model_id}.json").read_text())
    tensors = load_file(str(FIXTURE_DIR / f"{model_id}.safetensors"))
    weights = {k[len("weights."):]: v for k, v in tensors.items() if k.startswith("weights.")}
    if not weights and FIXTURE_DIR != BUILTIN_FIXTURE_DIR:
        # inputs/outputs only: the weights are those of the built-in fixture with the same id
        builtin = load_file(str(BUILTIN_FIXTURE_DIR / f"{model_id}.safetensors"))
        weights = {k[len("weights."):]: v for k, v in builtin.items() if k.startswith("weights.")}
        meta = {**json.loads((BUILTIN_FIXTURE_DIR / f"{model_id}.json").read_text()), **meta}
    keep: list[str] = []
    if meta.get("weights_stored") is False:
        generated, keep = regenerate_recipe(meta)
        generated.update(weights)  # the few stored tensors (spectral-norm u/v, real heads)
        weights = generated
        checks = {k: v["sha256"] for k, v in meta.get("weight_checksums", {}).items()}
        bad = [k for k, sha in checks.items() if k in weights and _tensor_sha256(weights[k]) != sha]
        if bad:
            raise AssertionError(f"{model_id}: regenerated weights differ from the recipe's sha256: {bad[:5]}")
    def strip(prefix: str) -> dict[str, Any]:
        out = {}
        for k, v in tensors.items():
            if k == prefix:
                out[prefix] = v
            elif k.startswith(prefix + "."):
                out[k[len(prefix) + 1:]] = v
        return out

    return Fixture(model_id, meta, weights, keep, strip("input"), strip("output"))
