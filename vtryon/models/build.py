"""From a bare state dict to a ready network: the one path every learned model takes.

``file -> unwrap (manifest rules) -> released_to_module_keys (arch) -> config -> build on
the meta device -> load_state_dict(strict=True, assign=True)``. The same function serves
real checkpoints, the checkpoints tests write, and the reference fixtures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vtryon.errors import CheckpointMismatch
from vtryon.models.unwrap import WrapperSpec, unwrap_state_dict

DEFAULT_OPTIONAL_SUFFIXES = ("num_batches_tracked",)
_SHOW = 5  # keys listed per kind in a mismatch message


def module_state_dict(arch: str, raw: Mapping[str, Any], wrapper: WrapperSpec, *, source: str = "checkpoint") -> dict[str, Any]:
    """Unwrap ``raw`` with the manifest's rules and rename to the module's keys."""
    from vtryon.archs import arch_module

    state = unwrap_state_dict(raw, wrapper, source=source)
    mod = arch_module(arch)
    rename = getattr(mod, "released_to_module_keys", None)
    return dict(rename(state)) if rename else state


def resolve_config(arch: str, state: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config read from tensor shapes, overridden by the manifest's explicit ``config``."""
    from vtryon.archs import arch_module

    mod = arch_module(arch)
    try:
        inferred = dict(mod.config_from_state_dict(state))
    except Exception as exc:  # tensors of another layout: say so instead of a KeyError
        if config:  # the manifest fixes the config: the strict check will list what differs
            return dict(config)
        raise CheckpointMismatch(
            f"the tensors do not fit architecture {arch!r}: its config cannot be read from them "
            f"({type(exc).__name__}: {exc})",
            hint="is it the right file for this model? `vtryon verify-models` checks every installed file",
        ) from None
    inferred.update(config or {})
    return inferred


def build_meta(arch: str, config: Mapping[str, Any]) -> Any:
    """The network at ``config`` on the meta device: names and shapes, no memory."""
    import torch

    from vtryon.archs import arch_module

    with torch.device("meta"):
        return arch_module(arch).build(config)


def key_mismatch(expected: Mapping[str, Any], found: Mapping[str, Any], optional_suffixes: tuple[str, ...] = DEFAULT_OPTIONAL_SUFFIXES) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mis-shaped) between the module's and the file's tensors.

    Values may be tensors or shapes (lists); keys ending with an optional suffix may be absent.
    """

    def shape(v: Any) -> tuple[int, ...]:
        return tuple(v.shape) if hasattr(v, "shape") else tuple(v)

    missing = [k for k in expected if k not in found and not k.endswith(optional_suffixes)]
    unexpected = [k for k in found if k not in expected]
    misshaped = [
        f"{k}: file {list(shape(found[k]))} vs network {list(shape(expected[k]))}"
        for k in expected
        if k in found and shape(found[k]) != shape(expected[k])
    ]
    return missing, unexpected, misshaped


def describe_mismatch(missing: list[str], unexpected: list[str], misshaped: list[str]) -> str:
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if keys:
            more = f" and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
            parts.append(f"{len(keys)} {label} ({'; '.join(keys[:_SHOW])}{more})")
    return ", ".join(parts)


def load_into(arch: str, state: Mapping[str, Any], config: Mapping[str, Any], *, source: str = "checkpoint") -> Any:
    """Build ``arch`` on the meta device and fill it from ``state`` strictly, without copying."""
    import torch

    from vtryon.archs import arch_module

    mod = arch_module(arch)
    direct = getattr(mod, "from_state_dict", None)
    if direct is not None:  # a library builds and loads it (strictly) itself, e.g. spandrel
        return direct(state, config).eval()
    model = build_meta(arch, config)
    optional = tuple(getattr(mod, "OPTIONAL_KEYS", DEFAULT_OPTIONAL_SUFFIXES))
    expected = model.state_dict()
    missing, unexpected, misshaped = key_mismatch(expected, state, optional)
    if missing or unexpected or misshaped:
        raise CheckpointMismatch(
            f"{source} does not fit architecture {arch!r}: {describe_mismatch(missing, unexpected, misshaped)}",
            hint="is it the right file for this model? `vtryon verify-models` checks every installed file",
        )
    full = dict(state)
    for key in expected:
        if key not in full:  # optional counters the file lacks
            full[key] = torch.zeros((), dtype=torch.long)
    model.load_state_dict(full, strict=True, assign=True)
    materialize = getattr(mod, "materialize", None)
    if materialize is not None:  # non-persistent buffers computed from the config
        materialize(model)
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointMismatch(f"{source}: architecture {arch!r} left tensors unset after loading: {left[:_SHOW]}")
    return model.eval()


def build_from_state_dict(
    arch: str,
    raw: Mapping[str, Any],
    *,
    wrapper: WrapperSpec | None = None,
    config: Mapping[str, Any] | None = None,
    source: str = "checkpoint",
) -> Any:
    """Unwrap, rename, infer the config and load strictly: the released file to a network in eval mode."""
    state = module_state_dict(arch, raw, wrapper or WrapperSpec(), source=source)
    return load_into(arch, state, resolve_config(arch, state, config), source=source)
