"""Pictures of what each step did (--save-steps) and the contact sheet of them all."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vtryon.imageio import save_image
from vtryon.state import LIP_LABELS, OPENPOSE18_LIMBS, Keypoints, TryOnState
from vtryon.steps import STEP_NUMBERS

if TYPE_CHECKING:
    from vtryon.pipeline import Pipeline

# A distinct colour per LIP label (the LIP dataset's own palette).
LIP_PALETTE = np.array(
    [
        (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0), (0, 0, 85),
        (0, 119, 221), (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0),
        (0, 0, 255), (51, 170, 221), (0, 255, 255), (85, 255, 170), (170, 255, 85),
        (255, 255, 0), (255, 170, 0),
    ],
    np.uint8,
)
SHEET_TILE_HEIGHT = 384


def draw_parsing(image: np.ndarray, parsing: np.ndarray, alpha: float = 0.65) -> np.ndarray:
    colour = LIP_PALETTE[np.clip(parsing, 0, len(LIP_PALETTE) - 1)]
    out = (image.astype(np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha).astype(np.uint8)
    out[parsing == 0] = (image[parsing == 0] * 0.35).astype(np.uint8)
    present = [i for i in np.unique(parsing) if i > 0]
    y = 18
    for i in present:  # a small legend of the labels found
        cv2.rectangle(out, (6, y - 11), (18, y + 1), tuple(int(c) for c in LIP_PALETTE[i]), -1)
        cv2.putText(out, LIP_LABELS[i], (24, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        y += 16
    return out


def draw_skeleton(image: np.ndarray, kp: Keypoints, min_conf: float = 0.3) -> np.ndarray:
    out = (image * 0.6).astype(np.uint8)
    scale = max(image.shape[:2]) / 1024
    thick = max(2, int(4 * scale))
    for k, (a, b) in enumerate(OPENPOSE18_LIMBS):
        if kp.conf[a] >= min_conf and kp.conf[b] >= min_conf:
            hue = int(180 * k / len(OPENPOSE18_LIMBS))
            colour = cv2.cvtColor(np.uint8([[[hue, 255, 255]]]), cv2.COLOR_HSV2RGB)[0, 0].tolist()
            cv2.line(out, tuple(int(v) for v in kp.xy[a]), tuple(int(v) for v in kp.xy[b]), colour, thick, cv2.LINE_AA)
    for (x, y), c in zip(kp.xy, kp.conf):
        if c >= min_conf:
            cv2.circle(out, (int(x), int(y)), thick + 2, (255, 255, 255), -1, cv2.LINE_AA)
    return out


def draw_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = (mask > 127) if mask.dtype == np.uint8 else mask.astype(bool)
    out = (image * 0.25 + 40).astype(np.uint8)
    out[m] = image[m]
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (0, 255, 0), max(1, image.shape[0] // 400), cv2.LINE_AA)
    return out


def draw_points(image: np.ndarray, points: np.ndarray, names: tuple[str, ...], colour: tuple[int, int, int]) -> np.ndarray:
    out = image.copy()
    r = max(3, image.shape[0] // 170)
    for (x, y), name in zip(points, names):
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(out, (int(x), int(y)), r, colour, -1, cv2.LINE_AA)
            cv2.putText(out, name, (int(x) + r + 2, int(y) - r), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return out


def draw_warped(person: np.ndarray, warped: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The warped garment over a darkened person: where step 05 puts it."""
    out = (person * 0.35).astype(np.uint8)
    m = mask > 127
    out[m] = warped[m]
    return out


def draw_warp_grid(person: np.ndarray, map_xy: np.ndarray, step: int = 24) -> np.ndarray:
    """The garment's pixel grid as it lands on the person: iso-lines of the sampling map."""
    out = (person * 0.5).astype(np.uint8)
    valid = np.isfinite(map_xy[..., 0]) & (map_xy[..., 0] >= 0)
    gx = np.where(valid, map_xy[..., 0], -1e6)
    gy = np.where(valid, map_xy[..., 1], -1e6)
    lines = valid & (((np.mod(gx, step) < 1.5) | (np.mod(gy, step) < 1.5)))
    out[lines] = (255, 220, 0)
    return out


def label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 26), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def contact_sheet(tiles: list[tuple[str, np.ndarray]], columns: int = 4) -> np.ndarray:
    resized = []
    for name, img in tiles:
        h, w = img.shape[:2]
        s = SHEET_TILE_HEIGHT / h
        resized.append(label(cv2.resize(img, (max(1, int(w * s)), SHEET_TILE_HEIGHT), interpolation=cv2.INTER_AREA), name))
    tile_w = max(t.shape[1] for t in resized)
    rows = (len(resized) + columns - 1) // columns
    sheet = np.full((rows * SHEET_TILE_HEIGHT, min(columns, len(resized)) * tile_w, 3), 255, np.uint8)
    for i, t in enumerate(resized):
        r, c = divmod(i, columns)
        sheet[r * SHEET_TILE_HEIGHT:(r + 1) * SHEET_TILE_HEIGHT, c * tile_w:c * tile_w + t.shape[1]] = t
    return sheet


def write_step_pictures(state: TryOnState, pipeline: "Pipeline", folder: Path) -> list[Path]:
    """One PNG per picture each step offers, the inputs and the result, and contact_sheet.png."""
    folder = Path(folder)
    tiles: list[tuple[str, np.ndarray]] = [("person", state.person), ("garment", state.garment)]
    for planned in pipeline.steps:
        if planned.implicit_in:
            continue
        backend = pipeline.backend(planned)
        for name, img in backend.pictures(state).items():
            tiles.append((f"{STEP_NUMBERS[planned.step]:02d} {name}", img))
    written = []
    for name, img in tiles:
        written.append(save_image(img, folder / f"{name.replace(' ', '_')}.png"))
    written.append(save_image(contact_sheet(tiles), folder / "contact_sheet.png"))
    return written
