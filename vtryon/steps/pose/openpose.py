"""02 pose with the CMU OpenPose body model: heatmaps + part affinity fields -> people -> the
most complete person as OpenPose-18 keypoints.

Inference and grouping follow Hzzone/pytorch-openpose ``Body.__call__``: BGR, each scale
resized to ``scale * 368 / height`` (bicubic), padded bottom/right with 128 to a multiple of 8,
``x / 256 - 0.5``; the outputs resized x8, unpadded and resized to the photo (bicubic) and
averaged over scales; peaks of the Gaussian-smoothed heatmaps (sigma 3, 4-neighbour maxima
above 0.1); limbs scored along the PAFs at 10 samples (each above 0.05 on 80% of them, mean
plus a distance prior above 0); people assembled limb by limb and kept with at least 4 parts
and a mean score of at least 0.4.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from vtryon.state import OPENPOSE18, Keypoints, TryOnState
from vtryon.steps.base import Backend, RunContext

BOXSIZE = 368
STRIDE = 8
PAD_VALUE = 128
SCALES = (0.5,)  # the original's default; CMU's full search is (0.5, 1.0, 1.5, 2.0)
PEAK_THRESHOLD = 0.1  # thre1
PAF_THRESHOLD = 0.05  # thre2
PAF_SAMPLES = 10  # mid_num
SMOOTH_SIGMA = 3.0

# Limbs as (part A, part B) OpenPose-18 indices and their (x, y) PAF channels. The last two
# (ear-shoulder) only join parts to existing people, never start one.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)
PAF_CHANNELS: tuple[tuple[int, int], ...] = (
    (12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9),
    (10, 11), (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19), (26, 27),
)
_STARTING_LIMBS = 17
N_PARTS = len(OPENPOSE18)


def _resize(a: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(a, size_wh, interpolation=cv2.INTER_CUBIC)


def openpose_maps(model: Any, bgr: np.ndarray, scales: Sequence[float] = SCALES) -> tuple[np.ndarray, np.ndarray]:
    """(heatmaps H x W x 19, pafs H x W x 38) at the photo's size, averaged over ``scales``."""
    import cv2
    import torch

    h, w = bgr.shape[:2]
    param = next(model.parameters())
    heat_sum: np.ndarray | None = None
    paf_sum: np.ndarray | None = None
    for s in scales:
        f = s * BOXSIZE / h
        resized = cv2.resize(bgr, (0, 0), fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
        rh, rw = resized.shape[:2]
        ph, pw = -rh % STRIDE, -rw % STRIDE
        padded = cv2.copyMakeBorder(resized, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
        x = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))[None].astype(np.float32) / 256 - 0.5)
        with torch.inference_mode():
            pafs, heats = model(x.to(param.device, param.dtype))
        maps = []
        for out in (heats, pafs):
            a = out[0].float().cpu().numpy().transpose(1, 2, 0)
            a = _resize(a, (a.shape[1] * STRIDE, a.shape[0] * STRIDE))[:rh, :rw]
            maps.append(_resize(a, (w, h)))
        # the original's `heatmap_avg += heatmap_avg + heatmap / n` doubles earlier scales; this is
        # the plain mean it intends (identical for the default single scale)
        heat_sum = maps[0] if heat_sum is None else heat_sum + maps[0]
        paf_sum = maps[1] if paf_sum is None else paf_sum + maps[1]
    assert heat_sum is not None and paf_sum is not None
    return heat_sum / len(scales), paf_sum / len(scales)


def smooth(heatmap: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(heatmap, sigma)`` (truncate 4, mirror-reflect border) in OpenCV."""
    import cv2

    k = 2 * int(4.0 * sigma + 0.5) + 1
    return cv2.GaussianBlur(heatmap.astype(np.float64), (k, k), sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def find_peaks(heatmaps: np.ndarray, threshold: float = PEAK_THRESHOLD) -> list[np.ndarray]:
    """Per part (the first 18 channels of H x W x C heatmaps): (n, 4) rows of x, y, score, id.

    A peak is a pixel of the smoothed map at least as high as its 4 neighbours (0 beyond the
    border) and above ``threshold``; its score is the unsmoothed value; ids run over all parts
    in row-major order within a part."""
    peaks: list[np.ndarray] = []
    next_id = 0
    for part in range(N_PARTS):
        raw = heatmaps[:, :, part]
        m = smooth(raw)
        padded = np.pad(m, 1)
        is_peak = (
            (m >= padded[:-2, 1:-1]) & (m >= padded[2:, 1:-1]) & (m >= padded[1:-1, :-2]) & (m >= padded[1:-1, 2:]) & (m > threshold)
        )
        ys, xs = np.nonzero(is_peak)
        ids = np.arange(next_id, next_id + len(xs))
        next_id += len(xs)
        peaks.append(np.stack([xs, ys, raw[ys, xs], ids], axis=1).astype(np.float64) if len(xs) else np.zeros((0, 4)))
    return peaks


def score_limb(pafs_xy: np.ndarray, a: np.ndarray, b: np.ndarray, image_height: int) -> float | None:
    """The PAF score of joining peak ``a`` to peak ``b`` (x, y), None when it fails the criteria."""
    vec = b[:2] - a[:2]
    norm = max(0.001, float(np.hypot(*vec)))
    unit = vec / norm
    xs = np.rint(np.linspace(a[0], b[0], PAF_SAMPLES)).astype(int)
    ys = np.rint(np.linspace(a[1], b[1], PAF_SAMPLES)).astype(int)
    along = pafs_xy[ys, xs, 0] * unit[0] + pafs_xy[ys, xs, 1] * unit[1]
    score = float(along.mean()) + min(0.5 * image_height / norm - 1, 0.0)
    if np.count_nonzero(along > PAF_THRESHOLD) > 0.8 * len(along) and score > 0:
        return score
    return None


def connect_limbs(peaks: list[np.ndarray], pafs: np.ndarray, image_height: int) -> list[np.ndarray | None]:
    """Per limb: (m, 3) rows of (peak id A, peak id B, score), each peak used at most once,
    best scores first; None when either part has no peak."""
    out: list[np.ndarray | None] = []
    for (pa, pb), (cx, cy) in zip(LIMBS, PAF_CHANNELS):
        cand_a, cand_b = peaks[pa], peaks[pb]
        if len(cand_a) == 0 or len(cand_b) == 0:
            out.append(None)
            continue
        field = pafs[:, :, [cx, cy]]
        scored = []
        for i, a in enumerate(cand_a):
            for j, b in enumerate(cand_b):
                s = score_limb(field, a, b, image_height)
                if s is not None:
                    scored.append((s, i, j))
        scored.sort(key=lambda t: -t[0])  # stable: ties keep the A-major order
        used_a: set[int] = set()
        used_b: set[int] = set()
        rows = []
        for s, i, j in scored:
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            rows.append((cand_a[i, 3], cand_b[j, 3], s))
            if len(rows) >= min(len(cand_a), len(cand_b)):
                break
        out.append(np.array(rows, np.float64).reshape(-1, 3))
    return out


def assemble_people(peaks: list[np.ndarray], connections: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """(candidates (N, 4): x, y, score, id; people (P, 20): 18 peak ids or -1, total score,
    part count), limb by limb as the original, dropping people with fewer than 4 parts or a
    mean score under 0.4."""
    candidates = np.concatenate([p for p in peaks] + [np.zeros((0, 4))], axis=0)
    people = np.zeros((0, N_PARTS + 2)) - 1
    for k, conn in enumerate(connections):
        if conn is None:
            continue
        ia, ib = LIMBS[k]
        for id_a, id_b, s in conn:
            hits = [r for r in range(len(people)) if people[r, ia] == id_a or people[r, ib] == id_b][:2]
            if len(hits) == 1:
                row = people[hits[0]]
                if row[ib] != id_b:
                    row[ib] = id_b
                    row[-1] += 1
                    row[-2] += candidates[int(id_b), 2] + s
            elif len(hits) == 2:
                r1, r2 = hits
                both = (people[r1, :N_PARTS] >= 0) & (people[r2, :N_PARTS] >= 0)
                if not both.any():  # disjoint: merge r2 into r1
                    people[r1, :N_PARTS] += people[r2, :N_PARTS] + 1
                    people[r1, -2:] += people[r2, -2:]
                    people[r1, -2] += s
                    people = np.delete(people, r2, axis=0)
                else:
                    people[r1, ib] = id_b
                    people[r1, -1] += 1
                    people[r1, -2] += candidates[int(id_b), 2] + s
            elif k < _STARTING_LIMBS:
                row = np.full(N_PARTS + 2, -1.0)
                row[ia], row[ib] = id_a, id_b
                row[-1] = 2
                row[-2] = candidates[int(id_a), 2] + candidates[int(id_b), 2] + s
                people = np.vstack([people, row])
    keep = (people[:, -1] >= 4) & (people[:, -2] / np.maximum(people[:, -1], 1e-9) >= 0.4)
    return candidates, people[keep]


def main_person(candidates: np.ndarray, people: np.ndarray) -> Keypoints:
    """The person with the most parts (then the highest score) as OpenPose-18 keypoints; the
    confidence is the heatmap value at the peak, clipped to [0, 1]. No person: all missing."""
    xy = np.zeros((N_PARTS, 2), np.float32)
    conf = np.zeros(N_PARTS, np.float32)
    if len(people):
        best = people[np.lexsort((-people[:, -2], -people[:, -1]))[0]]
        for part in range(N_PARTS):
            idx = int(best[part])
            if idx >= 0:
                xy[part] = candidates[idx, :2]
                conf[part] = np.clip(candidates[idx, 2], 0.0, 1.0)
    xy[conf <= 0] = 0
    return Keypoints(xy, conf)


def estimate(model: Any, rgb: np.ndarray, scales: Sequence[float] = SCALES) -> tuple[Keypoints, int]:
    """Keypoints of the main person in an RGB photo, and how many people were found."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    heatmaps, pafs = openpose_maps(model, bgr, scales)
    peaks = find_peaks(heatmaps)
    candidates, people = assemble_people(peaks, connect_limbs(peaks, pafs, rgb.shape[0]))
    return main_person(candidates, people), len(people)


class OpenPoseBody(Backend):
    step: ClassVar[str] = "pose"
    name: ClassVar[str] = "openpose"
    description: ClassVar[str] = "CMU OpenPose body (COCO-18 heatmaps + part affinity fields), most complete person"
    reads: ClassVar[tuple[str, ...]] = ("person",)
    writes: ClassVar[tuple[str, ...]] = ("keypoints",)
    models: ClassVar[tuple[str, ...]] = ("openpose_body",)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        model = ctx.models.load("openpose_body")
        scales = tuple(float(s) for s in ctx.options.get("openpose_scales", SCALES))
        state.keypoints, n_people = estimate(model, state.person, scales)
        state.aux["pose_people_found"] = n_people

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        from vtryon.visualize import draw_skeleton

        if state.keypoints is None:
            return {}
        return {"pose": draw_skeleton(state.person, state.keypoints)}
