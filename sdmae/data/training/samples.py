"""Training samples: the training split decoded once, and the samples cut from it.

:class:`TrainFrames` gives every training video as uint8 at (at most) the
model size, from memory or from the disk cache; :class:`TrainSamples` turns
sample i into the model's inputs, its 4-channel target (clean frame t +
anomaly map) and its token weights, pasting a moving object or speeding the
clip up for pseudo-anomalies.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from sdmae import kernels
from sdmae.config import Config
from sdmae.data.layouts import load_dataset
from sdmae.data.records import DatasetError
from sdmae.data.training.anomalies import ObjectBank, maybe_paste
from sdmae.data.training.frame_cache import (CachedVideo, decode_chunks, default_cache_dir, normal_runs,
                                             open_or_build, training_runs)
from sdmae.target import make_target

__all__ = ["TrainFrames", "TrainSamples", "normal_runs"]


class TrainFrames:
    """The training videos as uint8 at (at most) the model size, each frame decoded once.

    ``videos`` holds, per normal run of every training video, something that
    ``len()`` and integer-array indexing work on: a (T, H, W, 3) array in memory,
    or a :class:`~sdmae.data.training.frame_cache.CachedVideo` that reads from the disk cache.
    """

    def __init__(self, videos: Sequence[np.ndarray | CachedVideo]):
        self.videos = list(videos)
        self.lengths = [len(clip) for clip in self.videos]  # frames trained on: a prefix of each video
        self.held: list[tuple[int, int, int]] = []  # (video, start, stop) kept out of training
        self._index()

    def _index(self) -> None:
        self.index = np.array([(v, t) for v, n in enumerate(self.lengths) for t in range(n)],
                              dtype=np.int64).reshape(-1, 2)  # (S, 2) sample -> (video, frame)

    def hold_back(self, fraction: float) -> list[tuple[int, int, int]]:
        """Keep ``fraction`` of the frames out of training, for calibration
        (:func:`sdmae.calibration.held_back`): no sample is cut from them, nor takes one
        as a neighbour. Returns the held-back (video, start, stop) stretches."""
        from sdmae.calibration import held_back

        self.lengths = [len(clip) for clip in self.videos]
        self.held = held_back(self.lengths, fraction)
        for v, start, _ in self.held:
            self.lengths[v] = start
        self._index()
        return self.held

    def held_frames(self, v: int, start: int, stop: int) -> np.ndarray:
        """(stop - start, h, w, 3) uint8 frames of video ``v``."""
        return np.asarray(self.videos[v][np.arange(start, stop)])

    @classmethod
    def from_dataset(cls, root: str | os.PathLike, layout: str | None, size: tuple[int, int],
                     progress: bool = True) -> "TrainFrames":
        """Decode a dataset's training split into memory (small datasets, tests, examples)."""
        videos = []
        for rec in _progress(load_dataset(root, layout, split="train"), progress, "decoding training videos"):
            chunks = list(decode_chunks(rec, size))
            if not chunks:
                raise DatasetError(f"training video {rec.source} has no frames")
            video = np.concatenate(chunks)
            videos += [video[a:b] for a, b in training_runs(rec, len(video))]
        if not videos:
            raise DatasetError(f"{root}: the training split has no normal frames")
        return cls(videos)

    @classmethod
    def from_cache(cls, root: str | os.PathLike, layout: str | None, size: tuple[int, int],
                   cache_dir: str | os.PathLike | None = None, *, build: bool = True,
                   progress: bool = True) -> "TrainFrames":
        """The training split from its disk cache (:mod:`sdmae.data.training.frame_cache`), built
        first if missing; memory then stays flat whatever the dataset's length.

        ``cache_dir`` defaults to :func:`~sdmae.data.training.frame_cache.default_cache_dir`. With
        ``build=False`` wait for another process (torchrun's builder rank) to build it.
        """
        records = load_dataset(root, layout, split="train")
        cache = open_or_build(root, records, size, cache_dir or default_cache_dir(), build=build,
                              progress=progress)
        return cls(cache.videos)

    def __len__(self) -> int:
        return len(self.index)


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False)


class TrainSamples(Dataset):
    """Sample i: frame t of one training video with its neighbours, ready for the model.

    Returns a dict of tensors: ``inputs`` (9, h, w), ``target`` (4, h, w) (clean
    frame t in [-1, 1] + anomaly mask), ``weights`` (L,), ``anomaly`` () 0/1.
    """

    def __init__(self, frames: TrainFrames, cfg: Config, bank: ObjectBank | None, anomalies: bool = True):
        self.frames, self.cfg, self.bank = frames, cfg, bank
        self.anomalies = anomalies and bank is not None and cfg.train.anomaly_probability > 0
        self.paste = True  # switched off for the student stage
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """``epoch``: the (stage, epoch) key of :func:`sdmae.train.epoch_key`; sample i's
        draws are seeded by (seed, key, i), its speed-up's by (seed, key, i, 1)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        m, tc = self.cfg.model, self.cfg.train
        v, t = self.frames.index[i]
        video = self.frames.videos[v]
        k = m.frame_offset
        stride = 1
        if self.paste and tc.speed_probability > 0:
            rng = np.random.default_rng([tc.seed, self.epoch, int(i), 1])
            if rng.random() < tc.speed_probability:
                stride = int(rng.choice(tc.speed_factors))
        # (2k+1, H, W, 3): frames t-k..t+k, or every stride-th frame around t when sped up
        last = self.frames.lengths[v] - 1
        clip = video[np.clip(t + stride * np.arange(-k, k + 1), 0, last)]
        mask = _moving_at_centre(clip, k) if stride > 1 else np.zeros(clip.shape[1:3], np.float32)
        if self.paste and tc.zoom_probability > 0:
            rng = np.random.default_rng([tc.seed, self.epoch, int(i), 2])
            if rng.random() < tc.zoom_probability:
                clip, mask = _zoom(clip, mask, rng.uniform(1.0, tc.zoom_max), rng)
        pasted = stride > 1
        if self.anomalies and self.paste:
            rng = np.random.default_rng([tc.seed, self.epoch, int(i)])
            style = dict(grey=True, blur=tc.object_blur, max_area=tc.object_max_area) \
                if tc.object_style == "grey" else {}
            clip_in, object_mask, with_object = maybe_paste(clip, self.bank, rng,
                                                            probability=tc.anomaly_probability, **style)
            mask, pasted = np.maximum(mask, object_mask), pasted or with_object
        else:
            clip_in = clip
        prep = kernels.prepare(clip_in, [k], m.input_size, m.patch, k, m.grad_step)
        inputs, gradients = prep.inputs[0], prep.gradients[0]
        if pasted:
            # Overlook the anomaly: the target is the clean frame; the pasted object
            # weighs heavily in the loss through the gradients under it.
            clean_inputs = kernels.prepare(clip, [k], m.input_size, m.patch, k, m.grad_step).inputs[0]
            mask_small = _resize_mask(mask, m.input_size)
            if tc.anomaly_gradient == "floor":  # as strong as the strongest motion in the frame
                gradients = np.maximum(gradients, max(128.0, float(gradients.max())) * mask_small[None])
            else:
                gradients = gradients + 255.0 * mask_small[None]
            weights = kernels.token_weights(np.ascontiguousarray(gradients[None], np.float32), m.patch)[0]
        else:
            clean_inputs = inputs
            mask_small = np.zeros(m.input_size, np.float32)
            weights = prep.weights[0]
        target = make_target(clean_inputs, m.map_normal, mask_small)  # (4, h, w)
        return {"inputs": torch.from_numpy(inputs), "target": torch.from_numpy(target),
                "weights": torch.from_numpy(weights), "anomaly": torch.tensor(float(pasted)),
                "index": torch.tensor(int(i))}


def _zoom(clip: np.ndarray, mask: np.ndarray, factor: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """The same random window, 1/factor of the frame's sides, of every frame and of the
    mask (prepare then scales it to the model size): people nearer the camera, larger
    and faster in pixels, as a fixed camera's perspective shows them."""
    h, w = clip.shape[1:3]
    ch, cw = max(1, round(h / factor)), max(1, round(w / factor))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return (np.ascontiguousarray(clip[:, y0:y0 + ch, x0:x0 + cw]),
            np.ascontiguousarray(mask[y0:y0 + ch, x0:x0 + cw]))


def _moving_at_centre(clip: np.ndarray, k: int, threshold: float = 20.0) -> np.ndarray:
    """Where frame k of a sped-up clip differs from both its neighbours (the movers
    at their frame-k positions, not their ghosts) -> (H, W) float32 0/1 mask."""
    from scipy import ndimage as ndi

    f = clip.astype(np.int16)
    before = np.abs(f[k] - f[k - 1]).max(axis=-1)
    after = np.abs(f[k] - f[k + 1]).max(axis=-1)
    moving = ndi.binary_opening(np.minimum(before, after) > threshold)
    return ndi.binary_dilation(moving, iterations=1).astype(np.float32)


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 in [0, 1] -> (h, w) float32, half-pixel bilinear."""
    if mask.shape == tuple(size):
        return mask.astype(np.float32)
    x = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None], size=size, mode="bilinear",
                      align_corners=False)
    return x[0, 0].numpy()
