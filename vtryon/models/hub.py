"""huggingface_hub, offline unless the user asked for a download.

huggingface_hub reads ``HF_HUB_OFFLINE`` when it is imported, and libraries built on it
(diffusers, transformers) reach for the network when a file is missing. vtryon sets
``HF_HUB_OFFLINE=1`` before anything imports it, so a run never waits on a network call the user
did not ask for; only ``vtryon download`` turns the hub on, and only when the user did not set
``HF_HUB_OFFLINE`` themselves.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from vtryon.errors import DownloadError

_ENV = "HF_HUB_OFFLINE"
_USER_VALUE = os.environ.get(_ENV)  # what the user set, before vtryon touched it


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in ("1", "ON", "YES", "TRUE")


def offline_by_default() -> None:
    """Make huggingface_hub (imported now or later, by us or a library) work offline."""
    if _USER_VALUE is None:
        os.environ[_ENV] = "1"
        if "huggingface_hub.constants" in sys.modules:
            sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = True


def hf_module(online: bool = False) -> Any:
    """The huggingface_hub module; offline unless ``online`` (``vtryon download``)."""
    if not online:
        offline_by_default()
    elif _truthy(_USER_VALUE):
        raise DownloadError(
            "HF_HUB_OFFLINE is set in your environment, so Hugging Face downloads are off",
            hint="unset HF_HUB_OFFLINE and run `vtryon download` again",
        )
    else:
        os.environ[_ENV] = "0"
    import huggingface_hub
    import huggingface_hub.constants as constants

    constants.HF_HUB_OFFLINE = bool(not online and (_USER_VALUE is None or _truthy(_USER_VALUE)))
    return huggingface_hub
