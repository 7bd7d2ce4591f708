"""The target the teacher reconstructs, for training and for scoring alike.

Four channels at the model size: frame t's RGB as the model sees it (the
centre of prepare's nine input channels, in [-1, 1]) and the anomaly map,
``map_normal`` where nothing is abnormal and 1 where a pseudo-anomaly was
pasted. Training builds it per sample (:mod:`sdmae.data.training`); scoring
builds it per batch with no anomaly (:class:`sdmae.detector.Detector`), so the
score measures the distance from "normal". Kept apart from both, so that
inference does not import training code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .reference import CENTRE_FRAME


def make_target(inputs: Any, map_normal: float, anomaly: Any = None, *, out: Any = None) -> Any:
    """(..., 9, h, w) inputs -> (..., 4, h, w) target, NumPy or torch as given.

    inputs : (..., 9, h, w) float32, prepare's inputs (of the clean clip, where an
        object was pasted: the target overlooks it)
    map_normal : the map channel where nothing is abnormal (``ModelConfig.map_normal``:
        -1 "signed", 0 "unit")
    anomaly : (..., h, w) float32 in [0, 1], where a pseudo-anomaly is; None: nowhere
    out : (..., 4, h, w) float32 of the same kind to write into (a loop over batches
        reuses one)
    """
    if out is None:
        shape = (*inputs.shape[:-3], 4, *inputs.shape[-2:])
        out = inputs.new_empty(shape) if torch.is_tensor(inputs) else np.empty(shape, inputs.dtype)
    out[..., :3, :, :] = inputs[..., CENTRE_FRAME, :, :]
    out[..., 3, :, :] = map_normal if anomaly is None else map_normal + (1.0 - map_normal) * anomaly
    return out
