"""A folder of your own videos: ``train/<video>``, ``test/<video>`` (files or frame folders),
optional labels ``test/<video>.npy|.txt`` or ``labels/<video>.npy|.txt`` and pixel masks
``masks/<video>.npy`` (T, H, W) or ``masks/<video>/`` (one image a frame).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from sdmae.data.layouts.base import Layout, check_labels, frame_count, load_npy, mask_stack, npy_masks, sources
from sdmae.data.records import DatasetError, VideoRecord
from sdmae.data.video import list_frame_files, write_video


def detect(root: Path) -> bool:
    return any((root / d).is_dir() for d in ("train", "test", "training", "testing"))


def _read_label_file(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return load_npy(path)
    try:
        tokens = [t for t in re.split(r"[\s,;]+", path.read_text()) if t]
        return np.array([float(t) for t in tokens])
    except ValueError as e:  # UnicodeDecodeError too
        raise DatasetError(f"{path}: labels must be numbers, one per frame ({e})") from None


def read(root: Path, split: str) -> list[VideoRecord]:
    sdir = next((root / d for d in (split, split + "ing") if (root / d).is_dir()), None)
    if sdir is None:
        raise FileNotFoundError(f"folder: folder not found: {root / split}")
    records, seen = [], {}
    for src in sources(sdir):
        name = src.stem if src.is_file() else src.name
        if name in seen:
            raise DatasetError(f"folder: two videos named {name!r}: {seen[name]} and {src}")
        seen[name] = src
        n, fps = frame_count(src)
        labels, loader = None, None
        if split == "test":
            for f in (
                sdir / f"{name}.npy",
                sdir / f"{name}.txt",
                root / "labels" / f"{name}.npy",
                root / "labels" / f"{name}.txt",
            ):
                if f.is_file():
                    labels = check_labels(name, _read_label_file(f), n, f)
                    break
            mnpy, mdir = root / "masks" / f"{name}.npy", root / "masks" / name
            if mnpy.is_file():
                loader = functools.partial(npy_masks, mnpy)
            elif mdir.is_dir() and list_frame_files(mdir):
                loader = functools.partial(mask_stack, list_frame_files(mdir))
        records.append(VideoRecord(name, src, n, fps, labels, "folder", split, {}, loader))
    return records


def write(root: Path, clips: dict, fps: float) -> None:
    for d in ("train", "test", "masks"):
        (root / d).mkdir()
    for i, c in enumerate(clips["train"]):
        write_video(root / "train" / f"cam_{i + 1:02d}.mp4", c.frames, fps)
    for i, c in enumerate(clips["test"]):
        name = f"cam_{i + 1:02d}"
        write_video(root / "test" / f"{name}.avi", c.frames, fps)
        np.save(root / "test" / f"{name}.npy", c.labels)
        np.save(root / "masks" / f"{name}.npy", c.ids > 0)


FOLDER = Layout("folder", "folder (train/ or test/)", detect, read, write)
