"""How a released checkpoint wraps its tensors, and how to get the bare state dict out.

The manifest entry's ``wrapper`` table says it; see :class:`WrapperSpec`. The same rules
are applied to a real file, to the checkpoints the tests write, and to the reference
fixtures, so a test that passes on a fixture proves the rule that will meet the real file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vtryon.errors import CheckpointMismatch


@dataclass(frozen=True)
class WrapperSpec:
    """Unwrapping rules for one released checkpoint.

    keys: top-level keys tried in order (``("params_ema", "params")``); the first present
        one holds the state dict. Empty: the file is the state dict. When none is present
        and the file holds no nested dict, the file itself is the state dict (as the original
        loaders of SwinIR and Real-ESRGAN allow).
    strip_prefix: a prefix every key carries (``"module."`` from DataParallel); required
        on every key when set, so a file of another layout is not silently accepted.
    replace: ``(old, new)`` substring replacements applied to every key, in order
        (HR-VITON's released names).
    drop: keys that the file holds but the network does not use (CLIP's
        ``input_resolution``); dropped if present.
    """

    keys: tuple[str, ...] = ()
    strip_prefix: str = ""
    replace: tuple[tuple[str, str], ...] = ()
    drop: tuple[str, ...] = field(default=())

    @classmethod
    def from_manifest(cls, table: Mapping[str, Any] | None) -> "WrapperSpec":
        table = table or {}
        keys = table.get("keys", ())
        if isinstance(keys, str):
            keys = (keys,)
        return cls(
            keys=tuple(keys),
            strip_prefix=str(table.get("strip_prefix", "")),
            replace=tuple((str(a), str(b)) for a, b in table.get("replace", ())),
            drop=tuple(table.get("drop", ())),
        )


def unwrap_state_dict(obj: Mapping[str, Any], spec: WrapperSpec, *, source: str = "checkpoint") -> dict[str, Any]:
    """Return the bare ``{name: tensor}`` dict that ``obj`` wraps according to ``spec``."""
    if not isinstance(obj, Mapping):
        raise CheckpointMismatch(f"{source}: expected a dict of tensors, found {type(obj).__name__}")
    state: Mapping[str, Any] = obj
    if spec.keys:
        key = next((k for k in spec.keys if k in obj), None)
        if key is not None:
            state = obj[key]
            if not isinstance(state, Mapping):
                raise CheckpointMismatch(f"{source}: {key!r} holds {type(state).__name__}, not a dict of tensors")
        elif any(isinstance(v, Mapping) for v in obj.values()):
            found = ", ".join(sorted(map(str, obj))[:8])
            raise CheckpointMismatch(
                f"{source}: none of the top-level keys {list(spec.keys)} is in the file (it has: {found})"
            )
        # else: no container key and no nested dict: these are the tensors themselves (a file saved
        # without its wrapper, or a layout listing the wrapped tensors). The original loaders
        # (SwinIR's, RealESRGANer's) accept that too; the strict check that follows still applies.
    out: dict[str, Any] = {}
    for name, value in state.items():
        name = str(name)
        if name in spec.drop:
            continue
        if spec.strip_prefix:
            if not name.startswith(spec.strip_prefix):
                raise CheckpointMismatch(
                    f"{source}: key {name!r} lacks the prefix {spec.strip_prefix!r} this checkpoint's layout has"
                )
            name = name[len(spec.strip_prefix):]
        for old, new in spec.replace:
            name = name.replace(old, new)
        out[name] = value
    return out
