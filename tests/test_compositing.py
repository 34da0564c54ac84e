"""Layering rules of the embedded compositing, on synthetic scenes where the answer is known."""

from __future__ import annotations

import numpy as np

from vtryon.state import LIP
from vtryon.vision.compositing import compose_upper
from vtryon.vision.garment_landmarks import SLEEVE_L, TORSO


def _scene(depth_arm: float | None):
    h, w = 200, 160
    person = np.full((h, w, 3), 200, np.uint8)
    parsing = np.zeros((h, w), np.uint8)
    parsing[40:180, 40:120] = LIP["upper-clothes"]
    person[40:180, 40:120] = (30, 30, 160)  # old blue top
    parsing[60:140, 60:75] = LIP["right-arm"]  # an arm crossing the chest
    person[60:140, 60:75] = (210, 160, 130)
    garment = np.zeros((h, w, 3), np.uint8)
    garment[...] = (220, 40, 40)  # new red garment everywhere it is placed
    mask = np.zeros((h, w), np.uint8)
    mask[40:180, 40:120] = 255
    parts = np.zeros((h, w), np.uint8)
    parts[40:180, 40:120] = TORSO
    parts[60:140, 55:80] = SLEEVE_L  # the arm lies under the garment's sleeve part
    depth = None
    if depth_arm is not None:
        depth = np.full((h, w), 0.5, np.float32)
        depth[60:140, 60:75] = depth_arm
    skin = parsing == LIP["right-arm"]
    out = compose_upper(
        person, parsing, garment, mask, parts, skin, np.zeros((h, w), bool), {},
        (np.array([40.0, 40.0]), np.array([120.0, 40.0])), 80.0, None, depth=depth,
    )
    return person, out


def _is_garment(px: np.ndarray) -> bool:
    """The new red garment, up to the person's shading (a few percent)."""
    return px[0] > 180 and px[1] < 70 and px[2] < 70


def test_sleeves_cover_arms_without_depth():
    person, out = _scene(None)
    assert _is_garment(out.image[100, 67])


def test_an_arm_nearer_than_the_torso_stays_in_front_of_the_sleeve():
    person, out = _scene(0.9)
    assert tuple(out.image[100, 67]) == tuple(person[100, 67])


def test_an_arm_level_with_the_torso_goes_under_the_sleeve():
    person, out = _scene(0.52)
    assert _is_garment(out.image[100, 67])


def test_outside_the_change_the_photo_is_exact():
    person, out = _scene(None)
    assert np.array_equal(out.image[~out.changed], person[~out.changed])
    assert (out.image[5, 5] == person[5, 5]).all()
