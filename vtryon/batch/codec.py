"""What a step wrote, as one ``.npz`` file: arrays as arrays, everything else as JSON.

A value tree (a state field or an ``aux`` entry) is encoded into JSON in which every numpy
array is replaced by a reference into the npz, and the few other types JSON cannot hold
are tagged: tuples, numpy scalars (their dtype matters: float32 arithmetic differs from
float64), paths, dicts with non-string keys, and the dataclasses the steps put in the state.

Nothing is pickled. A dataclass is written only if its class is in :data:`DATACLASSES`
(an explicit list; each is rebuilt from its fields), so reading a work folder never runs
code named by the file. A step that stores another kind of object stops the batch with
:class:`StateNotSerializable` naming the entry and its type, rather than losing it.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import math
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from vtryon.errors import VtryonError

FORMAT = 1
META_KEY = "__meta__"

# The dataclasses the steps keep in the state, by the name written to the file.
# Add a class here (name -> "module:Class") when a backend stores a new one.
DATACLASSES: dict[str, str] = {
    "Keypoints": "vtryon.state:Keypoints",
    "Warp": "vtryon.state:Warp",
    "StepRecord": "vtryon.state:StepRecord",
    "GarmentLandmarks": "vtryon.vision.garment_landmarks:GarmentLandmarks",
    "SleeveAxis": "vtryon.vision.garment_landmarks:SleeveAxis",
    "BodyAnchors": "vtryon.vision.fit_warp:BodyAnchors",
    "Frame": "vtryon.vision.tryon_inputs:Frame",
    "CPVTONAgnostic": "vtryon.vision.tryon_inputs:CPVTONAgnostic",
}


class StateNotSerializable(VtryonError):
    """A step put an object into the state that the work folder cannot store without pickling."""


def _class(name: str) -> type:
    module, _, attr = DATACLASSES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def _registered_name(value: Any) -> str | None:
    cls = type(value)
    for name, target in DATACLASSES.items():
        module, _, attr = target.partition(":")
        if cls.__name__ == attr and cls.__module__ == module:
            return name
    return None


class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise StateNotSerializable(f"{where}: an object array cannot be stored without pickling")
            key = f"a{len(self.arrays)}"
            self.arrays[key] = value
            return {"__nd__": key}
        if isinstance(value, np.generic):  # a numpy scalar keeps its dtype
            return {"__np__": value.dtype.str, "v": self.encode(value.item(), where)}
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            return {"__float__": repr(value)}  # nan, inf, -inf
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value):
                return {"__dict__": {k: self.encode(v, f"{where}.{k}") for k, v in value.items()}}
            return {"__items__": [[self.encode(k, where), self.encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
        if isinstance(value, PurePath):
            return {"__path__": str(value)}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            name = _registered_name(value)
            if name is None:
                raise StateNotSerializable(
                    f"{where}: {type(value).__module__}.{type(value).__qualname__} is not a dataclass the batch can store",
                    hint="add it to vtryon.batch.codec.DATACLASSES",
                )
            fields = {f.name: self.encode(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value) if f.init}
            return {"__dc__": name, "fields": fields}
        raise StateNotSerializable(
            f"{where}: a {type(value).__module__}.{type(value).__qualname__} cannot be stored in the work folder",
            hint="store numpy arrays, numbers, strings, lists, dicts or a dataclass listed in vtryon.batch.codec.DATACLASSES",
        )


def _decode(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    if "__nd__" in node:
        return arrays[node["__nd__"]]
    if "__np__" in node:
        return np.dtype(node["__np__"]).type(_decode(node["v"], arrays))
    if "__float__" in node:
        return float(node["__float__"])
    if "__tuple__" in node:
        return tuple(_decode(v, arrays) for v in node["__tuple__"])
    if "__dict__" in node:
        return {k: _decode(v, arrays) for k, v in node["__dict__"].items()}
    if "__items__" in node:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in node["__items__"]}
    if "__path__" in node:
        return Path(node["__path__"])
    if "__dc__" in node:
        name = node["__dc__"]
        if name not in DATACLASSES:
            raise ValueError(f"unknown dataclass {name!r} in a work file")
        return _class(name)(**{k: _decode(v, arrays) for k, v in node["fields"].items()})
    raise ValueError(f"unrecognised node in a work file: {sorted(node)}")


def dumps(values: dict[str, Any], meta: dict[str, Any] | None = None) -> bytes:
    """``values`` (name -> value) and JSON-able ``meta`` as the bytes of one npz file."""
    enc = _Encoder()
    tree = {name: enc.encode(value, name) for name, value in values.items()}
    header = json.dumps({"format": FORMAT, "meta": meta or {}, "values": tree}, allow_nan=False).encode("utf-8")
    buf = io.BytesIO()
    np.savez(buf, **{META_KEY: np.frombuffer(header, np.uint8)}, **enc.arrays)
    return buf.getvalue()


def load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(values, meta) of a file written from :func:`dumps`. Raises ValueError/OSError if damaged."""
    with np.load(path, allow_pickle=False) as npz:
        header = json.loads(bytes(npz[META_KEY]).decode("utf-8"))
        if header.get("format") != FORMAT:
            raise ValueError(f"{path}: work file format {header.get('format')!r}, expected {FORMAT}")
        arrays = {k: npz[k] for k in npz.files if k != META_KEY}
    return {k: _decode(v, arrays) for k, v in header["values"].items()}, header["meta"]
