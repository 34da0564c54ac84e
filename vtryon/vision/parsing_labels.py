"""Human-parsing label sets and their mapping into the LIP-20 schema of ``state.parsing``.

ATR (18 classes, SCHP's ATR model) and CIHP (20 classes, Graphonomy) are mapped into LIP-20
(:data:`vtryon.state.LIP_LABELS`). CIHP's label set is LIP's, index for index. ATR differs:

- ATR has no glove, coat, socks or jumpsuits: those LIP classes are never produced from ATR.
- ATR "Belt" has no LIP class; a belt sits on the waistband, so it becomes "pants" (the garment
  it is worn on) rather than background, which would cut a hole in the person.
- ATR "Bag" is not part of the person: LIP annotates bags as background, so it becomes background.
- Left/right are the person's own in both sets.
"""

from __future__ import annotations

import numpy as np

from vtryon.state import LIP, LIP_LABELS

ATR_LABELS: tuple[str, ...] = (
    "background", "hat", "hair", "sunglasses", "upper-clothes", "skirt", "pants", "dress", "belt",
    "left-shoe", "right-shoe", "face", "left-leg", "right-leg", "left-arm", "right-arm", "bag", "scarf",
)
CIHP_LABELS: tuple[str, ...] = LIP_LABELS

# ATR labels whose LIP class has another name (everything else maps by name)
_ATR_RENAMED = {"belt": "pants", "bag": "background"}

ATR_TO_LIP: np.ndarray = np.array([LIP[_ATR_RENAMED.get(name, name)] for name in ATR_LABELS], dtype=np.uint8)
CIHP_TO_LIP: np.ndarray = np.array([LIP[name] for name in CIHP_LABELS], dtype=np.uint8)
LIP_TO_LIP: np.ndarray = np.arange(len(LIP_LABELS), dtype=np.uint8)

# Horizontal flip of a LIP/CIHP map swaps these classes (Graphonomy's flip_cihp).
LIP_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (LIP["left-arm"], LIP["right-arm"]), (LIP["left-leg"], LIP["right-leg"]), (LIP["left-shoe"], LIP["right-shoe"]),
)


def to_lip(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Map a label map of another set into LIP-20 with a lookup ``table`` (uint8 result)."""
    labels = np.asarray(labels)
    if labels.size and int(labels.max()) >= len(table):
        raise ValueError(f"label {int(labels.max())} outside the {len(table)}-class set")
    return table[labels].astype(np.uint8)


def require_person(parsing: np.ndarray, person_path: object, model: str) -> np.ndarray:
    """``parsing``, unless the model labelled everything background: then NoPersonFound."""
    if not parsing.any():
        from vtryon.errors import NoPersonFound

        raise NoPersonFound(
            f"person image {person_path}: {model} found no person",
            hint="use a photo showing the person's upper body, facing the camera",
        )
    return parsing


def flip_permutation(n_classes: int = len(LIP_LABELS)) -> list[int]:
    """Channel order that turns the logits of a flipped image into those of the original."""
    perm = list(range(n_classes))
    for a, b in LIP_FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm



def parsing_pictures(person: np.ndarray, parsing: np.ndarray | None) -> dict[str, np.ndarray]:
    """The pictures a parsing backend shows: the labels over the photo, and the bare colour map."""
    if parsing is None:
        return {}
    from vtryon.visualize import LIP_PALETTE, draw_parsing

    return {"parsing": draw_parsing(person, parsing), "parsing_labels": LIP_PALETTE[np.asarray(parsing, dtype=np.intp)]}
