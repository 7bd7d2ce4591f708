"""CUHK Avenue: ``training_videos/NN.avi``, ``testing_videos/NN.avi``,
``[ground_truth_demo/]testing_label_mask/<n>_label.mat`` (``volLabel``, one mask a frame).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from sdmae.data.layouts.base import Layout, frame_count, require_dir, sources, warn_no_labels
from sdmae.data.records import DatasetError, VideoRecord
from sdmae.data.video import write_video


def detect(root: Path) -> bool:
    return (root / "training_videos").is_dir() or (root / "testing_videos").is_dir()


def _vol_label_frames(mat: Path) -> list[np.ndarray]:
    """The per-frame masks of an Avenue ``<n>_label.mat``, as stored (no copies)."""
    from scipy.io import loadmat

    try:
        data = loadmat(mat, variable_names=["volLabel"])
    except NotImplementedError as e:  # MATLAB v7.3 (HDF5)
        raise DatasetError(f"{mat}: MATLAB v7.3 files are not supported; re-save as v7") from e
    except Exception as e:  # truncated or not a .mat: MatReadError, ValueError, OSError, zlib.error ...
        raise DatasetError(f"{mat} is not a readable MATLAB file ({type(e).__name__}: {e})") from None
    if "volLabel" not in data:
        raise DatasetError(f"{mat}: no variable 'volLabel'")
    vol = data["volLabel"]
    if vol.dtype == object:  # 1xN cell of HxW masks
        return list(vol.ravel())
    if vol.ndim == 3:  # H x W x N numeric array
        return list(np.moveaxis(vol, 2, 0))
    raise DatasetError(f"{mat}: volLabel has unexpected shape {vol.shape}")


def _load_vol_label(mat: Path) -> np.ndarray:
    return np.stack([np.asarray(m) != 0 for m in _vol_label_frames(mat)])


def read(root: Path, split: str) -> list[VideoRecord]:
    sub = {"train": "training_videos", "test": "testing_videos"}[split]
    vdir = require_dir(root / sub, "avenue")
    label_dir = next(
        (
            d
            for d in (root / "testing_label_mask", root / "ground_truth_demo" / "testing_label_mask")
            if d.is_dir()
        ),
        None,
    )
    if split == "test" and label_dir is None:
        warn_no_labels(str(root), "testing_label_mask/ or ground_truth_demo/testing_label_mask/")
    records = []
    for src in sources(vdir):
        n, fps = frame_count(src)
        labels, loader = None, None
        if split == "test" and label_dir is not None:
            digits = re.sub(r"\D", "", src.stem)
            if not digits:
                raise DatasetError(f"video {src.name!r}: cannot tell its number for <n>_label.mat")
            mat = label_dir / f"{int(digits)}_label.mat"
            if not mat.is_file():
                raise FileNotFoundError(f"video {src.name!r}: label file not found: {mat}")
            # Frame t is abnormal iff its mask has a pixel; no (T, H, W) stack here.
            labels = np.array([np.any(m) for m in _vol_label_frames(mat)], np.uint8)
            if len(labels) != n:
                raise DatasetError(
                    f"video {src.stem!r}: {len(labels)} label masks in {mat.name} but the video "
                    f"has {n} frames"
                )
            loader = functools.partial(_load_vol_label, mat)
        records.append(VideoRecord(src.stem, src, n, fps, labels, "avenue", split, {}, loader))
    return records


def write(root: Path, clips: dict, fps: float) -> None:
    from scipy.io import savemat

    (root / "training_videos").mkdir()
    (root / "testing_videos").mkdir()
    gt = root / "ground_truth_demo" / "testing_label_mask"
    gt.mkdir(parents=True)
    for i, c in enumerate(clips["train"]):
        write_video(root / "training_videos" / f"{i + 1:02d}.avi", c.frames, fps)
    for i, c in enumerate(clips["test"]):
        write_video(root / "testing_videos" / f"{i + 1:02d}.avi", c.frames, fps)
        cell = np.empty((1, len(c.ids)), object)  # MATLAB 1xN cell of HxW masks
        for t, m in enumerate(c.ids):
            cell[0, t] = (m > 0).astype(np.uint8)
        savemat(gt / f"{i + 1}_label.mat", {"volLabel": cell}, do_compression=True)


AVENUE = Layout("avenue", "avenue (training_videos/ or testing_videos/)", detect, read, write)
