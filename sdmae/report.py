"""What a person looks at: score plots, anomaly-map overlays, CSV and JSON files.

Every file is written atomically, so an interrupted run leaves no half-written output.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .data import atomic_write, write_video


def write_json(path: str | os.PathLike, data: Any) -> Path:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return Path(path)


def write_scores_csv(path: str | os.PathLike, raw: np.ndarray, smoothed: np.ndarray,
                     labels: np.ndarray | None = None, normalized: np.ndarray | None = None,
                     alert: np.ndarray | None = None) -> Path:
    """One row per frame: frame, raw score, smoothed score, and where given the normalised
    score (0.5 at the alert threshold), the alert (1 inside an event) and the label."""
    extra = [(name, column) for name, column in (("normalized", normalized), ("alert", alert), ("label", labels))
             if column is not None]
    with atomic_write(path) as tmp:
        with open(tmp, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["frame", "score", "smoothed"] + [name for name, _ in extra])
            for t in range(len(raw)):
                row = [t, f"{raw[t]:.6g}", f"{smoothed[t]:.6g}"]
                out.writerow(row + [f"{column[t]:.4f}" if name == "normalized" else int(column[t])
                                    for name, column in extra])
    return Path(path)


def write_jsonl(path: str | os.PathLike, items: list[dict]) -> Path:
    """One JSON object per line."""
    with atomic_write(path) as tmp:
        tmp.write_text("".join(json.dumps(item) + "\n" for item in items))
    return Path(path)


def plot_scores(path: str | os.PathLike, smoothed: np.ndarray, labels: np.ndarray | None = None,
                raw: np.ndarray | None = None, title: str = "", threshold: float | None = None) -> Path:
    """Anomaly score over time, abnormal ground-truth frames shaded, the alert threshold dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 2.6))
    t = np.arange(len(smoothed))
    if labels is not None and labels.any():
        ax.fill_between(t, 0, 1, where=labels.astype(bool), transform=ax.get_xaxis_transform(),
                        color="tab:red", alpha=0.15, step="mid", label="abnormal (ground truth)")
    if raw is not None:
        ax.plot(t, raw, color="0.7", lw=0.8, label="raw")
    ax.plot(t, smoothed, color="tab:blue", lw=1.5, label="smoothed")
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", lw=1.0, ls="--", label="alert threshold")
    ax.set_xlabel("frame")
    ax.set_ylabel("anomaly score")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return Path(path)


def overlay(frame: np.ndarray, anomaly_map: np.ndarray, vmax: float) -> np.ndarray:
    """Blend a heat map over a frame.

    frame : (H, W, 3) uint8; anomaly_map : (h, w) float, resized to (H, W); vmax : map value shown as full red
    returns : (H, W, 3) uint8
    """
    from skimage.transform import resize

    heat = resize(anomaly_map.astype(np.float32), frame.shape[:2], order=1, preserve_range=True)
    alpha = np.clip(heat / max(vmax, 1e-12), 0, 1)[..., None] * 0.6
    red = np.array([255, 30, 0], np.float32)
    return (frame.astype(np.float32) * (1 - alpha) + red * alpha).astype(np.uint8)


def write_overlay_image(path: str | os.PathLike, frame: np.ndarray, anomaly_map: np.ndarray, vmax: float) -> Path:
    import imageio.v3 as iio

    with atomic_write(path) as tmp:
        iio.imwrite(tmp, overlay(frame, anomaly_map, vmax))
    return Path(path)


def write_overlay_video(path: str | os.PathLike, frames: Iterable[np.ndarray], maps: np.ndarray,
                        fps: float = 25.0) -> Path:
    """The video with its anomaly heat map (maps: (T, h, w)), encoded atomically."""
    vmax = float(np.quantile(maps, 0.999)) if maps.size else 1.0
    return write_video(path, (overlay(f, m, vmax) for f, m in zip(frames, maps)), fps=fps)
