"""Run the embedded pipeline once per person / garment / pair and share the results across tests."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from vtryon.imageio import load_image
from vtryon.state import TryOnState
from vtryon.steps import STEPS, load_backend
from vtryon.steps.base import RunContext

_CTX = RunContext()


def _run(state: TryOnState, steps: tuple[str, ...]) -> TryOnState:
    for step in steps:
        load_backend(step, "embedded")().run(state, _CTX)
    return state


@lru_cache(maxsize=None)
def person_state(path: Path) -> TryOnState:
    """Steps 01-02 on a person photo."""
    img = load_image(path)
    return _run(TryOnState(person=img, garment=img, person_path=path), STEPS[:2])


@lru_cache(maxsize=None)
def garment_state(path: Path) -> TryOnState:
    """Step 03 on a garment photo."""
    img = load_image(path)
    return _run(TryOnState(person=img, garment=img, garment_path=path), STEPS[2:3])


@lru_cache(maxsize=None)
def pair_state(person: Path, garment: Path) -> TryOnState:
    """Steps 04-08 on top of the cached 01-03."""
    p, g = person_state(person), garment_state(garment)
    st = TryOnState(person=p.person, garment=g.garment, person_path=person, garment_path=garment)
    st.parsing, st.keypoints, st.garment_mask = p.parsing, p.keypoints, g.garment_mask
    st.aux.update(p.aux)
    st.aux.update(g.aux)
    return _run(st, STEPS[3:])
