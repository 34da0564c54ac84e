"""The benchmark's PNG chart, drawn with OpenCV (no plotting library needed): horizontal
grouped bars per panel, the value written at the end of each bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

WIDTH = 1000
ROW = 22
LABEL_W = 260
PALETTE = [(70, 130, 180), (230, 140, 40), (90, 170, 90), (200, 80, 80), (140, 100, 190)]  # RGB


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"


def _panel(title: str, labels: list[str], series: dict[str, list[float | None]], unit: str) -> np.ndarray:
    import cv2

    n_series = max(1, len(series))
    height = 50 + len(labels) * (ROW * n_series + 8) + 26
    img = np.full((height, WIDTH, 3), 255, np.uint8)
    cv2.putText(img, title, (10, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.65, (0, 0, 0), 1, cv2.LINE_AA)
    values = [v for vs in series.values() for v in vs if v is not None]
    top = max(values) if values else 1.0
    span = WIDTH - LABEL_W - 110
    y = 44
    for i, label in enumerate(labels):
        cv2.putText(img, label[:34], (10, y + ROW * n_series // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for j, (name, vs) in enumerate(series.items()):
            v = vs[i]
            y0 = y + j * ROW
            colour = PALETTE[j % len(PALETTE)][::-1]  # OpenCV draws BGR; the image is written as RGB below
            if v is None:
                cv2.putText(img, "n/a", (LABEL_W, y0 + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (120, 120, 120), 1, cv2.LINE_AA)
                continue
            w = max(1, int(span * v / top)) if top > 0 else 1
            cv2.rectangle(img, (LABEL_W, y0 + 3), (LABEL_W + w, y0 + ROW - 3), colour, -1)
            text = f"{_fmt(v)} {unit}"
            cv2.putText(img, text, (LABEL_W + w + 6, y0 + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        y += ROW * n_series + 8
    x = LABEL_W
    for j, name in enumerate(series):  # legend
        colour = PALETTE[j % len(PALETTE)][::-1]
        cv2.rectangle(img, (x, height - 20), (x + 14, height - 8), colour, -1)
        cv2.putText(img, name, (x + 20, height - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        x += 30 + 8 * len(name)
    cv2.line(img, (0, height - 1), (WIDTH, height - 1), (200, 200, 200), 1)
    return img


def draw(result: dict[str, Any], path: Path) -> Path:
    """The chart of a benchmark result (``run_bench``'s dict) as a PNG."""
    from vtryon.imageio import save_image

    panels = []
    steps = result.get("steps", {}).get("steps", {})
    if steps:
        names = list(steps)
        panels.append(_panel(f"{result['profile']} on {result['device']}: time per step", names,
                             {"cold": [steps[s]["cold_s"] for s in names], "warm": [steps[s]["warm_s"] for s in names]}, "s"))
        panels.append(_panel("peak RSS per step", names,
                             {"cold": [steps[s]["cold_peak_rss_mb"] for s in names], "warm": [steps[s]["warm_peak_rss_mb"] for s in names]}, "MB"))
    modes = [m for m in result.get("throughput", []) if "pairs_per_minute" in m]
    if modes:
        panels.append(_panel(f"throughput, {modes[0]['pairs']} pairs", [m["mode"] for m in modes],
                             {"pairs/min": [m["pairs_per_minute"] for m in modes]}, "/min"))
    tiers = result.get("offload_tiers", {}).get("runs", [])
    if tiers:
        labels = sorted({t["offload"] for t in tiers}, key=["none", "model", "sequential"].index)
        kinds = sorted({t["mode"] for t in tiers})
        panels.append(_panel("offload tiers: pairs per minute", labels,
                             {k: [next((t["pairs_per_minute"] for t in tiers if t["offload"] == o and t["mode"] == k), None) for o in labels] for k in kinds}, "/min"))
        panels.append(_panel("offload tiers: peak RSS", labels,
                             {k: [next((t["peak_rss_mb"] for t in tiers if t["offload"] == o and t["mode"] == k), None) for o in labels] for k in kinds}, "MB"))
    ckpts = [c for c in result.get("checkpoints", {}).get("files", []) if c.get("loader_read_mb_s")]
    if ckpts:
        panels.append(_panel("checkpoint read, page cache warm", [c["model"] for c in ckpts],
                             {"raw read": [c["raw_read_mb_s"] for c in ckpts], "loader": [c["loader_read_mb_s"] for c in ckpts]}, "MB/s"))
    if not panels:
        panels.append(_panel("nothing measured", [], {}, ""))
    image = np.concatenate(panels, axis=0)
    return save_image(image[..., ::-1].copy(), path)  # the panels are BGR
