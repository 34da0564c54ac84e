"""Read a TorchScript archive's parameters and buffers as data, without running it.

A ``torch.jit.save`` zip holds ``data.pkl`` (the module tree: one pickled object per module,
whose attributes are tensors, submodules and plain values), ``data/<n>`` (tensor bytes) and
``code/`` (the TorchScript source of each module class, with its ``__parameters__`` and
``__buffers__`` lists). ``torch.jit.load`` would compile and run that code; this module only
unpickles ``data.pkl`` with an unpickler that knows a handful of harmless globals (tensor
rebuilding, storage types, OrderedDict) and turns every ``__torch__.*`` class into an inert
attribute holder. The code files are read as text to learn which attributes are parameters
and buffers, so the result has exactly the keys of ``torch.jit.load(f).state_dict()``.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtryon.errors import CheckpointCorrupt, UnsafeCheckpoint

_STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool",
}
_CLASS_RE = re.compile(r"^class\s+(\w+)\s*\(\s*Module\s*\)\s*:", re.M)
_LIST_RE = re.compile(r"^\s+(__parameters__|__buffers__)\s*=\s*\[(.*?)\]", re.M)


class ScriptObject:
    """An inert stand-in for a pickled TorchScript class instance: it only stores its state."""

    qualname = ""

    def __init__(self, *args: Any) -> None:  # NEWOBJ passes no useful arguments
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.state = dict(state) if isinstance(state, dict) else {}


@dataclass
class ClassInfo:
    parameters: list[str] = field(default_factory=list)
    buffers: list[str] = field(default_factory=list)


def parse_class_infos(zf: zipfile.ZipFile) -> dict[str, ClassInfo]:
    """``qualified class name -> parameter and buffer names`` from the archive's code (as text)."""
    infos: dict[str, ClassInfo] = {}
    for name in zf.namelist():
        if "/code/" not in name or not name.endswith(".py"):
            continue
        module = name.split("/code/", 1)[1][: -len(".py")].replace("/", ".")
        text = zf.read(name).decode("utf-8", "replace")
        starts = [(m.start(), m.group(1)) for m in _CLASS_RE.finditer(text)]
        for i, (start, cls) in enumerate(starts):
            body = text[start : starts[i + 1][0] if i + 1 < len(starts) else len(text)]
            info = ClassInfo()
            for kind, items in _LIST_RE.findall(body):
                names = re.findall(r'"([^"]+)"', items)
                (info.parameters if kind == "__parameters__" else info.buffers).extend(names)
            infos[f"{module}.{cls}"] = info
    return infos


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, fh: Any, zf: zipfile.ZipFile, prefix: str, meta: bool, source: str) -> None:
        super().__init__(fh)
        self.zf, self.prefix, self.meta, self.source = zf, prefix, meta, source
        self.storages: dict[str, Any] = {}
        self.classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            qual = f"{module}.{name}"
            if qual not in self.classes:
                self.classes[qual] = type(name, (ScriptObject,), {"qualname": qual})
            return self.classes[qual]
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return self._rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, requires_grad, hooks, *rest: data
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch.jit._pickle" and name.startswith("build_"):
            return lambda *items: list(items[0]) if len(items) == 1 else list(items)
        if module == "torch.jit._pickle" and name == "restore_type_tag":
            return lambda value, type_str: value
        raise UnsafeCheckpoint(
            f"{self.source}: the TorchScript data refers to {module}.{name}, which is not plain tensor data; refused",
            hint="use the released file from the manifest's source (`vtryon download ID`)",
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointCorrupt(f"{self.source}: unknown persistent reference {str(pid)[:60]}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if key not in self.storages:
            self.storages[key] = self._read_storage(key, storage_type, numel)
        return self.storages[key]

    def _read_storage(self, key: str, storage_type: "_StorageType", numel: int) -> Any:
        import torch

        dtype = getattr(torch, storage_type.dtype)
        if self.meta:
            return ("meta", dtype, numel)
        member = f"{self.prefix}data/{key}"
        try:
            raw = bytearray(self.zf.read(member))
        except KeyError:
            raise CheckpointCorrupt(f"{self.source}: tensor storage {member} is missing from the archive") from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        if len(raw) < numel * itemsize:
            raise CheckpointCorrupt(f"{self.source}: tensor storage {member} is shorter than its {numel} elements")
        flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
        return flat[: numel * itemsize].view(dtype)

    def _rebuild_tensor(self, storage: Any, offset: int, size: Any, stride: Any, *rest: Any) -> Any:
        import torch

        if isinstance(storage, tuple) and storage[0] == "meta":
            return torch.empty_strided(tuple(size), tuple(stride), dtype=storage[1], device="meta")
        return storage.as_strided(tuple(size), tuple(stride), int(offset))


@dataclass(frozen=True)
class _StorageType:
    dtype: str


def _flatten(obj: ScriptObject, infos: dict[str, ClassInfo], prefix: str, out: dict[str, Any]) -> None:
    import torch

    info = infos.get(obj.qualname)
    keep = None if info is None else set(info.parameters) | set(info.buffers)
    for name, value in obj.state.items():
        if isinstance(value, torch.Tensor):
            if keep is None or name in keep:
                out[prefix + name] = value
        elif isinstance(value, ScriptObject):
            _flatten(value, infos, f"{prefix}{name}.", out)


def read_torchscript_state(path: Path, *, meta: bool = False) -> dict[str, Any]:
    """The archive's ``state_dict()`` (parameters and buffers by dotted name), read as data."""
    source = str(path)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise CheckpointCorrupt(f"{source} is not a readable zip archive ({exc})") from None
    with zf:
        data_pkl = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") <= 1]
        if not data_pkl:
            raise CheckpointCorrupt(f"{source}: TorchScript archive without data.pkl")
        prefix = data_pkl[0][: -len("data.pkl")]
        infos = parse_class_infos(zf)
        with zf.open(data_pkl[0]) as fh:
            try:
                root = _DataUnpickler(fh, zf, prefix, meta, source).load()
            except (UnsafeCheckpoint, CheckpointCorrupt):
                raise
            except Exception as exc:
                raise CheckpointCorrupt(f"{source}: the TorchScript data cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(root, ScriptObject):
        raise CheckpointCorrupt(f"{source}: the TorchScript archive's root is a {type(root).__name__}, not a module")
    out: dict[str, Any] = {}
    _flatten(root, infos, "", out)
    return out
