"""Model-free frame scores that a detector has to beat, computed the way it sees frames.

``frame_difference`` is the mean of the method's own motion gradient,
``|x(t-1) - x(t+1)|``, over every pixel and channel at the model's input size
(:func:`sdmae.kernels.prepare`): abnormal events in surveillance footage
mostly add motion, so this number alone detects many of them. A detector
that does not beat it clearly has learnt nothing beyond "more moves".
"""

from __future__ import annotations

import numpy as np

from . import kernels

__all__ = ["frame_difference"]


def frame_difference(frames: np.ndarray, size: tuple[int, int], patch: int = 1, step: int = 1,
                     batch: int = 64) -> np.ndarray:
    """Mean absolute difference of frames t - step and t + step, at the model size.

    Parameters
    ----------
    frames : (T, H, W, 3) ndarray of uint8
    size : (h, w)
        Size the frames are resized to first (bilinear, as the model's input).
    patch : int
        Any divisor of h and w (the token weights ``prepare`` also computes are unused).
    step : int
        Frame distance of the difference (clamped at the ends).
    batch : int
        Frames prepared at a time (memory).

    Returns
    -------
    (T,) ndarray of float64, in grey levels (0-255)
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    out = np.empty(len(frames), np.float64)
    for start in range(0, len(frames), batch):
        centres = np.arange(start, min(start + batch, len(frames)))
        prep = kernels.prepare(frames, centres, size, patch, step, step)
        out[centres] = np.asarray(prep.gradients).mean(axis=(1, 2, 3), dtype=np.float64)
    return out
