"""Super-resolution and face-restoration networks through spandrel.

spandrel (MIT) detects the architecture from a state dict's tensor names and shapes, reads
the hyperparameters from the shapes and defines the networks: Real-ESRGAN's RRDBNet
(x4plus, and x2plus with its pixel-unshuffled input), SRVGGNetCompact (realesr-general),
SwinIR and GFPGAN v1 clean are all in its main registry. Architectures with restrictive
licences live in the separate ``spandrel_extra_arches`` package, which vtryon does not use.

What this module adds to spandrel:

- a config that names the detected architecture, the network class and its hyperparameters,
  so the network can be built on the meta device (layout tests, no memory) and filled with
  ``load_state_dict(strict=True, assign=True)`` without a random initialisation;
- pins: a manifest ``config = { architecture = "ESRGAN", scale = 4 }`` makes a file of
  another architecture or scale fail instead of loading as something else;
- widths spandrel hard-codes read from the shapes instead: GFPGAN's whole config (spandrel
  assumes the 512 release) and ESRGAN's dense-block growth width (spandrel assumes 32), so
  reduced-width checkpoints such as the reference fixtures load through the same networks;
- :func:`info`: scale, fp16/bf16 safety, size requirements of a loaded network.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from vtryon.errors import CheckpointMismatch

INFO_ATTR = "vtryon_spandrel"


@dataclass(frozen=True)
class SpandrelInfo:
    """What spandrel's descriptor says about a network, kept on the loaded module."""

    architecture: str
    scale: int
    purpose: str  # "SR", "FaceSR", "Restoration"
    supports_half: bool
    supports_bfloat16: bool
    input_channels: int
    output_channels: int
    size_minimum: int
    size_multiple_of: int
    tiling: str  # "supported", "discouraged", "internal"


def _shadow(state: Mapping[str, Any]) -> dict[str, Any]:
    """Meta tensors with the shapes and dtypes of ``state`` (tensors, shapes or lists)."""
    import torch

    out = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            out[key] = torch.empty(value.shape, dtype=value.dtype, device="meta")
        else:  # a shape (layout tests pass torch.Size values)
            dtype = torch.int64 if key.endswith("relative_position_index") else torch.float32
            out[key] = torch.empty(tuple(value), dtype=dtype, device="meta")
    return out


def _detect(shadow: Mapping[str, Any]) -> Any:
    """The spandrel ArchSupport whose detector accepts ``shadow`` (in spandrel's order)."""
    from spandrel import MAIN_REGISTRY

    for support in MAIN_REGISTRY.architectures("detection"):
        if support.detect(shadow):
            return support
    sample = ", ".join(list(shadow)[:4])
    raise CheckpointMismatch(
        f"spandrel knows no architecture with these tensors ({sample}, ...)",
        hint="is it a super-resolution or face-restoration checkpoint spandrel supports?",
    )


class _LinspaceOnCPU:
    """SwinIR's constructor reads its drop-path schedule with ``.item()``, which a meta tensor
    cannot answer; while building on the meta device, ``torch.linspace`` runs on the CPU."""

    def __enter__(self) -> "_LinspaceOnCPU":
        import torch
        from torch.overrides import TorchFunctionMode

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
                kwargs = dict(kwargs or {})
                if func is torch.linspace:
                    kwargs["device"] = "cpu"
                return func(*args, **kwargs)

        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._mode.__exit__(*exc)


# --- GFPGAN: hyperparameters from the shapes ---------------------------------------------


def _gfpgan_hyperparameters(shadow: Mapping[str, Any]) -> dict[str, Any]:
    n_rgb = len([k for k in shadow if k.startswith("toRGB.") and k.endswith(".weight")])
    log_size = n_rgb + 2
    num_style_feat = int(shadow["stylegan_decoder.style_mlp.1.weight"].shape[0])
    num_mlp = len([k for k in shadow if k.startswith("stylegan_decoder.style_mlp.") and k.endswith(".weight")])
    # decoder widths: channels["4"] = int(512 * narrow); channels["64"] = int(256 * cm * narrow)
    narrow = shadow["stylegan_decoder.constant_input.weight"].shape[1] / 512
    channel_multiplier = 2
    if log_size >= 6:  # the first conv of the 64x64 level (style_convs.6) gives channels["64"]
        c64 = shadow["stylegan_decoder.style_convs.6.modulated_conv.weight"].shape[1]
        channel_multiplier = max(1, round(c64 / (256 * narrow)))
    lin_out = int(shadow["final_linear.weight"].shape[0])
    different_w = lin_out == (2 * log_size - 2) * num_style_feat
    sft_half = shadow["condition_scale.0.2.weight"].shape[0] == shadow["condition_scale.0.0.weight"].shape[0]
    return {
        "out_size": 2**log_size,
        "num_style_feat": num_style_feat,
        "channel_multiplier": channel_multiplier,
        "decoder_load_path": None,
        "fix_decoder": False,
        "num_mlp": num_mlp,
        "input_is_latent": True,  # not in the tensors; GFPGAN v1.3/1.4 (clean) use latents directly
        "different_w": different_w,
        "narrow": narrow,
        "sft_half": sft_half,
    }


def _gfpgan_config(shadow: Mapping[str, Any]) -> dict[str, Any]:
    hp = _gfpgan_hyperparameters(shadow)
    info = SpandrelInfo("GFPGAN", 1, "FaceSR", False, True, 3, 3, hp["out_size"], 1, "supported")
    return {"class": "spandrel.architectures.GFPGAN:GFPGAN", "hyperparameters": hp, "info": asdict(info)}


# --- ESRGAN: the dense-block growth width ------------------------------------------------

_RDB_CONV = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_RDB_1X1 = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv1x1\.weight$")
SPANDREL_ESRGAN_GROWTH = 32  # gc that spandrel's RRDBNet builds (the released files' width)


def _esrgan_growth(shadow: Mapping[str, Any]) -> int:
    return int(shadow["model.1.sub.0.RDB1.conv1.0.weight"].shape[0])


def _esrgan_as_growth32(shadow: Mapping[str, Any]) -> dict[str, Any]:
    """The same tensors with the dense-block convs reshaped to growth 32, so spandrel's own
    reader infers every other hyperparameter (scale, blocks, unshuffle) unchanged."""
    import torch

    gc = SPANDREL_ESRGAN_GROWTH
    out = dict(shadow)
    for key, value in shadow.items():
        m = _RDB_CONV.match(key)
        if m:
            j, kind = int(m.group(3)), m.group(4)
            nf = int(shadow["model.0.weight"].shape[0])
            cout = nf if j == 5 else gc
            shape = (cout,) if kind == "bias" else (cout, nf + (j - 1) * gc, *value.shape[2:])
            out[key] = torch.empty(shape, dtype=value.dtype, device="meta")
        elif _RDB_1X1.match(key):
            out[key] = torch.empty((gc, *value.shape[1:]), dtype=value.dtype, device="meta")
    return out


def _set_esrgan_growth(model: Any, gc: int) -> None:
    """Replace spandrel's RRDB blocks by the same blocks at growth width ``gc``."""
    from spandrel.architectures.__arch_helpers import block  # spandrel's ESRGAN building blocks

    hp = model.hyperparameters
    body = model.model[1].sub  # ShortcutBlock(sequential(RRDB x num_blocks, lr conv))
    for i in range(hp["num_blocks"]):
        body[i] = block.RRDB(
            nf=hp["num_filters"], kernel_size=3, gc=gc, stride=1, bias=True, pad_type="zero",
            norm_type=hp["norm"], act_type=hp["act"], mode="CNA", plus=hp["plus"],
        )


# --- the architecture contract ----------------------------------------------------------


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def config_from_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Detect the architecture with spandrel and read its hyperparameters from the shapes.

    Returns ``{"detected": {"architecture", "scale"}, "class", "hyperparameters", "info"}``;
    a manifest may add the pins ``architecture`` and ``scale``.
    """
    import torch

    shadow = _shadow(state_dict)
    support = _detect(shadow)
    arch_id = str(support.architecture.id)
    extra: dict[str, Any] = {}
    if arch_id == "GFPGAN":
        config = _gfpgan_config(shadow)
    else:
        readable = shadow
        if arch_id == "ESRGAN" and _esrgan_growth(shadow) != SPANDREL_ESRGAN_GROWTH:
            extra["grow_channels"] = _esrgan_growth(shadow)
            readable = _esrgan_as_growth32(shadow)
        with torch.device("meta"), _LinspaceOnCPU():
            try:
                desc = support.architecture.load(dict(readable))
            except RuntimeError as exc:  # strict loading inside spandrel failed
                raise CheckpointMismatch(f"spandrel {arch_id}: the tensors do not fit the network ({exc})") from None
        model = desc.model
        hp = getattr(model, "hyperparameters", None)
        if hp is None:
            raise CheckpointMismatch(f"spandrel {arch_id} does not record its hyperparameters; vtryon cannot build it")
        info = SpandrelInfo(
            arch_id,
            int(desc.scale),
            str(desc.purpose),
            bool(desc.supports_half),
            bool(desc.supports_bfloat16),
            int(desc.input_channels),
            int(desc.output_channels),
            int(desc.size_requirements.minimum),
            int(desc.size_requirements.multiple_of),
            desc.tiling.name.lower(),
        )
        config = {"class": _class_path(type(model)), "hyperparameters": dict(hp), "info": asdict(info), **extra}
    config["detected"] = {"architecture": arch_id, "scale": config["info"]["scale"]}
    return config


def _check_pins(config: Mapping[str, Any], source: str = "checkpoint") -> None:
    detected = config.get("detected", {})
    for pin in ("architecture", "scale"):
        if pin in config and detected.get(pin) != config[pin]:
            raise CheckpointMismatch(
                f"{source}: expected a {pin} of {config[pin]!r}, the tensors are a {detected.get(pin)!r} network",
                hint="the file is another model than its manifest entry names; `vtryon verify-models` checks every installed file",
            )


def build(config: Mapping[str, Any]) -> Any:
    """The spandrel network class at ``config["hyperparameters"]`` (no weights loaded)."""
    _check_pins(config)
    module_path, _, qualname = str(config["class"]).partition(":")
    if not module_path.startswith("spandrel."):
        raise CheckpointMismatch(f"refusing to build {config['class']!r}: not a spandrel network class")
    cls: Any = importlib.import_module(module_path)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    with _LinspaceOnCPU():
        model = cls(**config["hyperparameters"])
        if config.get("grow_channels"):
            _set_esrgan_growth(model, int(config["grow_channels"]))
    setattr(model, INFO_ATTR, SpandrelInfo(**config["info"]))
    return model


def released_to_module_keys(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Real-ESRGAN files use BasicSR's names (``conv_first``, ``body.N.rdbK``); spandrel's
    RRDBNet stores the original ESRGAN sequence (``model.0``, ``model.1.sub.N.RDBK``).
    Rename with spandrel's own table; every other architecture keeps its names."""
    keys = set(state_dict)
    if {"conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight"} <= keys:
        from spandrel.architectures.ESRGAN import _to_old_arch  # spandrel's renaming table

        return dict(_to_old_arch(dict(state_dict)))
    return dict(state_dict)


def from_state_dict(state: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
    """Build the detected network on the meta device and fill it strictly from ``state``.

    ``config`` normally comes from :func:`config_from_state_dict` of the same tensors (plus
    the manifest's pins); without a detected architecture it is read from ``state`` here.
    Either way a network that does not fit the tensors fails the strict load.
    """
    import torch

    from vtryon.models.build import describe_mismatch, key_mismatch

    fresh = dict(config) if {"class", "hyperparameters", "detected", "info"} <= set(config) else config_from_state_dict(state)
    pins = {k: config[k] for k in ("architecture", "scale") if k in config}
    full = {**fresh, **pins}
    _check_pins(full)
    with torch.device("meta"):
        model = build(full)
    missing, unexpected, misshaped = key_mismatch(model.state_dict(), state, ())
    if missing or unexpected or misshaped:
        raise CheckpointMismatch(
            f"the tensors do not fit spandrel's {fresh['detected']['architecture']} network: "
            + describe_mismatch(missing, unexpected, misshaped)
        )
    model.load_state_dict(dict(state), strict=True, assign=True)
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:  # buffers the constructor computes and the file lacks: let spandrel build it on the CPU
        from spandrel import ModelLoader

        model = ModelLoader().load_from_state_dict(dict(state)).model
        setattr(model, INFO_ATTR, SpandrelInfo(**fresh["info"]))
    return model


def info(model: Any) -> SpandrelInfo:
    """The descriptor facts of a network this module loaded."""
    found = getattr(model, INFO_ATTR, None)
    if found is None:
        raise TypeError(f"{type(model).__name__} was not loaded through vtryon.archs.spandrel_models")
    return found


__all__ = ["SpandrelInfo", "build", "config_from_state_dict", "from_state_dict", "info", "released_to_module_keys"]
