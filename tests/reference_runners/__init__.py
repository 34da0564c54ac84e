"""Fixture runners: how each network is called on a fixture's recorded inputs.

Each module in this package defines ``RUNNERS: dict[model_id, Callable[[model, Fixture],
dict[output_name, Tensor]]]`` (output names as in the fixture, without ``output.``).
Modules are discovered, so each network family keeps its own file.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable

RUNNERS: dict[str, Callable[[Any, Any], dict[str, Any]]] = {}

for _info in pkgutil.iter_modules(__path__):
    _mod = importlib.import_module(f"{__name__}.{_info.name}")
    for _id, _fn in getattr(_mod, "RUNNERS", {}).items():
        if _id in RUNNERS:
            raise RuntimeError(f"fixture runner for {_id} defined twice")
        RUNNERS[_id] = _fn
