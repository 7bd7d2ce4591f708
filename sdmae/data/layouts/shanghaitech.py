"""ShanghaiTech Campus: ``training/videos/XX_YYY.avi``, ``testing/frames/XX_YYYY/NNN.jpg``,
``testing/test_frame_mask/*.npy`` (frame labels), ``testing/test_pixel_mask/*.npy`` (pixel masks).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from sdmae.data.layouts.base import (Layout, check_labels, frame_count, load_npy, npy_masks, require_dir, sources,
                                     warn_no_labels)
from sdmae.data.records import VideoRecord
from sdmae.data.video import write_frames, write_video


def detect(root: Path) -> bool:
    return any((root / p).is_dir() for p in ("training/videos", "testing/frames", "testing/test_frame_mask"))


def read(root: Path, split: str) -> list[VideoRecord]:
    if split == "train":
        base = root / "training"
        vdir = base / "videos" if (base / "videos").is_dir() else base / "frames"
        require_dir(vdir, "shanghaitech training videos (training/videos/)")
        return [
            VideoRecord(s.stem if s.is_file() else s.name, s, *frame_count(s), None, "shanghaitech", split)
            for s in sources(vdir)
        ]
    fdir = require_dir(root / "testing" / "frames", "shanghaitech test frames")
    ldir = root / "testing" / "test_frame_mask"
    pdir = root / "testing" / "test_pixel_mask"
    if not ldir.is_dir():
        warn_no_labels(str(root), "testing/test_frame_mask/")
    records = []
    for src in sources(fdir):
        name = src.stem if src.is_file() else src.name
        n, fps = frame_count(src)
        labels = None
        if ldir.is_dir():
            f = ldir / f"{name}.npy"
            if not f.is_file():
                raise FileNotFoundError(f"video {name!r}: frame labels not found: {f}")
            labels = check_labels(name, load_npy(f), n, f)
        pm = pdir / f"{name}.npy"
        loader = functools.partial(npy_masks, pm) if pm.is_file() else None
        records.append(VideoRecord(name, src, n, fps, labels, "shanghaitech", split, {}, loader))
    return records


def write(root: Path, clips: dict, fps: float) -> None:
    (root / "training" / "videos").mkdir(parents=True)
    for d in ("frames", "test_frame_mask", "test_pixel_mask"):
        (root / "testing" / d).mkdir(parents=True)
    for i, c in enumerate(clips["train"]):
        write_video(root / "training" / "videos" / f"01_{i + 1:03d}.avi", c.frames, fps)
    for i, c in enumerate(clips["test"]):
        name = f"01_{i + 1:04d}"
        write_frames(root / "testing" / "frames" / name, c.frames, "{:03d}.jpg")
        np.save(root / "testing" / "test_frame_mask" / f"{name}.npy", c.labels.astype(np.int64))
        np.save(root / "testing" / "test_pixel_mask" / f"{name}.npy", (c.ids > 0).astype(np.uint8))


SHANGHAITECH = Layout("shanghaitech", "shanghaitech (training/videos/ or testing/frames/)", detect, read, write)
