"""Network definitions that load public checkpoints strictly.

Every architecture module named in :data:`ARCHITECTURES` provides:

- ``build(config: Mapping[str, Any]) -> torch.nn.Module``: the network at ``config``;
  no weights are loaded and no tensors are allocated when called under
  ``torch.device("meta")``.
- ``config_from_state_dict(state_dict: Mapping[str, Tensor]) -> dict``: the config read
  from tensor names and shapes (widths, class counts, depth), so a fine-tuned or
  reduced-width checkpoint builds the matching network.
- optionally ``released_to_module_keys(state_dict) -> dict``: the renaming from the keys
  the released file stores (after the manifest's wrapper rules) to the module's keys,
  for architectures whose released file names differ (OpenPose's Caffe layer names).
- optionally ``OPTIONAL_KEYS: tuple[str, ...]`` suffixes (``num_batches_tracked``) that a
  file may lack.
- optionally ``example_input(config) -> Tensor | tuple | dict``: a small input (batch 1, a
  few dozen pixels where the network allows) for ``vtryon verify-models --deep``, which runs
  one forward pass with it (a tuple is passed as positional, a dict as keyword arguments).

A registry value ``"pkg.module:attr"`` names an object inside the module (a class or
namespace with the same functions), for modules that define several architectures.

Modules are imported only when used, so ``vtryon --help`` never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# architecture name -> module path. Names are the ``arch`` field of manifests/models.toml.
ARCHITECTURES: dict[str, str] = {
    "schp": "vtryon.archs.schp",
    "graphonomy": "vtryon.archs.graphonomy",
    "u2net": "vtryon.archs.u2net",
    "openpose_body": "vtryon.archs.openpose",
    "hrnet_pose": "vtryon.archs.hrnet",
    "sam": "vtryon.archs.sam",
    "mobile_sam": "vtryon.archs.mobile_sam",
    "deeplabv3": "vtryon.archs.deeplabv3",
    "raft": "vtryon.archs.raft",
    "dpt_hybrid": "vtryon.archs.dpt_hybrid",
    "cpvton_gmm": "vtryon.archs.cpvton:GMM_ARCH",
    "cpvton_tom": "vtryon.archs.cpvton:TOM_ARCH",
    "vitonhd_seg": "vtryon.archs.vitonhd:SEG_ARCH",
    "vitonhd_gmm": "vtryon.archs.vitonhd:GMM_ARCH",
    "vitonhd_alias": "vtryon.archs.vitonhd:ALIAS_ARCH",
    "hrviton_tocg": "vtryon.archs.hrviton:TOCG_ARCH",
    "hrviton_gen": "vtryon.archs.hrviton:GEN_ARCH",
    "spandrel": "vtryon.archs.spandrel_models",
    "clip": "vtryon.archs.clip",
    "lpips_alex": "vtryon.archs.lpips_alex",
}


def arch_module(name: str) -> Any:
    """Import and return the module (or named object) that defines architecture ``name``."""
    try:
        path = ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise KeyError(f"unknown architecture {name!r} (known: {known})") from None
    module_path, _, attr = path.partition(":")
    module = importlib.import_module(module_path)
    return getattr(module, attr) if attr else module
