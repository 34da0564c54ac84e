"""Reading checkpoint files as untrusted data.

- safetensors: through ``safetensors`` (memory-mapped: tensors share the file's pages, no copy).
- ``.pth``/``.pt``/``.bin`` zip archives: ``torch.load(weights_only=True, mmap=True)``.
- legacy (pre-1.6, non-zip) torch files: ``torch.load(weights_only=True)`` (mmap needs the zip
  format). Never a fallback to unsafe loading: a file that needs code to unpickle raises
  :class:`UnsafeCheckpoint` and nothing of it runs.
- TorchScript archives (OpenAI CLIP's ``.pt``): :mod:`vtryon.models.torchscript_data` reads the
  tensors as data; the archive's code is parsed as text, never run.

Before any of that, :func:`sniff` tells what the bytes are, so a git-LFS pointer, an HTML
page saved under a checkpoint's name, or a truncated file is named as such.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vtryon.errors import CheckpointCorrupt, UnsafeCheckpoint

SAFETENSORS = "safetensors"
TORCH_ZIP = "torch-zip"
TORCH_LEGACY = "torch-legacy"
TORCHSCRIPT = "torchscript"
ONNX = "onnx"  # (diffusion engineer) OOTDiffusion's SCHP exports: files onnxruntime reads, never read_state_dict

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".pkl", ".pth.tar", ".tar")
_LFS_MAGIC = b"version https://git-lfs.github.com/spec"
_SAFETENSORS_HEADER_LIMIT = 100 * 2**20
_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "U16": "uint16", "U32": "uint32", "U64": "uint64",
}


def _head(path: Path, n: int = 512) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def describe_bad_content(path: Path) -> str | None:
    """A one-phrase diagnosis when the bytes are clearly not a checkpoint, else None."""
    try:
        size = path.stat().st_size
        head = _head(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if size == 0:
        return "is empty (0 bytes)"
    stripped = head.lstrip()
    if stripped.startswith(_LFS_MAGIC):
        text = head.decode("ascii", "replace")
        oid = next((line.split(":", 1)[1] for line in text.splitlines() if line.startswith("oid sha256:")), "")
        return (
            "is a git-LFS pointer file, not the checkpoint (the repository was cloned without `git lfs`)"
            + (f"; the real file has sha256 {oid[:16]}…" if oid else "")
        )
    lowered = stripped[:256].lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in lowered[:200]:
        return "is an HTML page saved under a checkpoint's name (a login, quota or error page, not the file)"
    if lowered.startswith(b"{") and (b'"error"' in lowered or b'"message"' in lowered):
        return "is a JSON error message from a server, not the checkpoint"
    return None


def sniff(path: Path) -> str:
    """The checkpoint format of ``path``; :class:`CheckpointCorrupt` when it is none or is cut short."""
    path = Path(path)
    bad = describe_bad_content(path)
    if bad:
        raise CheckpointCorrupt(f"{path} {bad}", hint=_refetch_hint(path))
    size = path.stat().st_size
    head = _head(path, 16)
    if head.startswith(b"PK\x03\x04"):
        if not zipfile.is_zipfile(path):
            raise CheckpointCorrupt(f"{path} is truncated: a zip checkpoint without its directory at the end", hint=_refetch_hint(path))
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return TORCHSCRIPT
        return TORCH_ZIP
    if len(head) >= 9 and head[8:9] == b"{":
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= _SAFETENSORS_HEADER_LIMIT:
            if 8 + n > size:
                raise CheckpointCorrupt(f"{path} is truncated: its safetensors header needs {8 + n} bytes, the file has {size}", hint=_refetch_hint(path))
            header = safetensors_header(path)
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
            if 8 + n + end > size:
                raise CheckpointCorrupt(
                    f"{path} is truncated: its tensors need {8 + n + end} bytes, the file has {size}", hint=_refetch_hint(path)
                )
            return SAFETENSORS
    if head[:1] == b"\x80":  # a pickle stream: torch's legacy format (or a bare pickle)
        return TORCH_LEGACY
    if path.suffix == ".onnx" and head[:1] == b"\x08":  # (diffusion engineer) ONNX ModelProto: field 1 (ir_version) first
        return ONNX
    shown = head[:8].hex()
    raise CheckpointCorrupt(f"{path} is not a checkpoint this loader knows (it starts with bytes {shown})", hint=_refetch_hint(path))


def _refetch_hint(path: Path) -> str:
    return "delete it and fetch it again with `vtryon download ID`, or point `vtryon models scan` at the right file"


def safetensors_header(path: Path) -> dict[str, Any]:
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        for key, value in header.items():
            if key != "__metadata__":
                _ = value["dtype"], value["shape"], value["data_offsets"]
        return header
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointCorrupt(f"{path}: the safetensors header is damaged ({exc})", hint=_refetch_hint(path)) from None


def _unsafe_message(exc: BaseException) -> str | None:
    """The forbidden global a weights-only unpickler refused, if that is why it failed."""
    import re

    text = str(exc)
    found = re.search(r"GLOBAL\s+([\w.]+)", text)
    if found:
        return f"it imports {found.group(1)}"
    for marker in ("Unsupported global", "Unsupported class", "Unsupported operand", "allowed global", "Trying to call reduce", "is blocked"):
        if marker in text:
            line = next(line for line in text.splitlines() if marker in line)
            return line.strip()[:160]
    return None


def read_state_dict(path: Path, *, meta: bool = False, fmt: str | None = None) -> Mapping[str, Any]:
    """The object stored in ``path`` (a dict of tensors, possibly wrapped), read as data only.

    ``meta=True`` gives tensors on the meta device (names, shapes, dtypes) without reading
    their bytes, for layout checks that must not allocate.
    """
    import torch

    path = Path(path)
    fmt = fmt or sniff(path)
    if fmt == SAFETENSORS:
        if meta:
            header = safetensors_header(path)
            return {
                k: torch.empty(v["shape"], dtype=getattr(torch, _SAFETENSORS_DTYPES.get(v["dtype"], "uint8")), device="meta")
                for k, v in header.items()
                if k != "__metadata__"
            }
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors' own validation (overlaps, bad offsets)
            raise CheckpointCorrupt(f"{path}: safetensors refused the file ({exc})", hint=_refetch_hint(path)) from None
    if fmt == TORCHSCRIPT:
        from vtryon.models.torchscript_data import read_torchscript_state

        return read_torchscript_state(path, meta=meta)
    kwargs: dict[str, Any] = {"map_location": "meta" if meta else "cpu"}
    if fmt == TORCH_ZIP and not meta:
        kwargs["mmap"] = True
    try:
        obj = torch.load(str(path), weights_only=True, **kwargs)  # never unpickle code
    except pickle.UnpicklingError as exc:
        unsafe = _unsafe_message(exc)
        if unsafe:
            raise UnsafeCheckpoint(
                f"{path} needs code execution to load ({unsafe}); vtryon loads only plain tensors and refused it",
                hint="use a safetensors copy or a file from the manifest's source (`vtryon download ID`)",
            ) from None
        raise CheckpointCorrupt(f"{path} cannot be unpickled: it is damaged or truncated ({_first_line(exc)})", hint=_refetch_hint(path)) from None
    except (EOFError, RuntimeError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointCorrupt(f"{path} cannot be read: it is damaged or truncated ({_first_line(exc)})", hint=_refetch_hint(path)) from None
    if not isinstance(obj, Mapping):
        raise CheckpointCorrupt(f"{path} holds a {type(obj).__name__}, not a dict of tensors")
    return obj


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
