"""UCSD Ped1 and Ped2: ``UCSDped2/{Train,Test}/...NNN/*.tif`` (grayscale frames),
``Test/TestNNN_gt/*.bmp`` (pixel masks), abnormal frame ranges in ``Test/UCSDped2.m``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from sdmae.data.layouts.base import Layout, frame_count, mask_stack, require_dir, sources, warn_no_labels
from sdmae.data.records import DatasetError, VideoRecord
from sdmae.data.video import list_frame_files, write_frames


def detect(root: Path, which: str) -> bool:
    """Whether UCSD``which`` is at or below ``root``; a tree with both is ambiguous, an error."""
    found = _candidates(root)
    if len(found) == 2:
        raise DatasetError(f"{root} holds both UCSDped1 and UCSDped2: pass layout='ped1' or 'ped2'")
    return which in found


def _candidates(root: Path) -> dict[str, Path]:
    """``{"ped1": path, "ped2": path}`` for the UCSD folders found at or below root."""
    found = {}
    for which in ("ped1", "ped2"):
        folder = f"UCSD{which}"
        for cand in (root, root / folder, *sorted(root.glob(f"*/{folder}"))):
            if cand.name.lower() == folder.lower() and cand.is_dir():
                found[which] = cand
                break
    if not found and (root / "Test").is_dir() and (root / "Train").is_dir():
        # A renamed UCSDpedN folder: its .m file says which.
        ms = list((root / "Test").glob("UCSDped*.m"))
        if len(ms) == 1:
            found["ped" + ms[0].stem[-1]] = root
    return found


def _parse_m(path: Path) -> list[list[tuple[int, int]]]:
    """Per test video, its 1-based inclusive abnormal frame ranges."""
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.split("%", 1)[0]  # MATLAB comment
        m = re.search(r"gt_frame\s*=\s*\[([^\]]*)\]", line)
        if not m:
            continue
        ranges = []
        for tok in re.split(r"[,\s;]+", m.group(1).strip()):
            if not tok:
                continue
            a, _, b = tok.partition(":")
            try:
                ranges.append((int(a), int(b or a)))
            except ValueError:
                raise DatasetError(f"{path}: gt_frame range {tok!r} is not first:last frame numbers") from None
        entries.append(ranges)
    return entries


def read(root: Path, split: str, which: str) -> list[VideoRecord]:
    found = _candidates(root)
    if which not in found:
        raise FileNotFoundError(f"{which}: folder UCSD{which} not found at or below {root}")
    base = found[which]
    sub = {"train": "Train", "test": "Test"}[split]
    sdir = require_dir(base / sub, which)
    videos = [s for s in sources(sdir) if s.is_dir() and not s.name.endswith("_gt")]
    if not videos:
        raise DatasetError(f"{which}: no frame folders in {sdir}")
    records = []
    for src in videos:
        n, _ = frame_count(src)
        gt = sdir / f"{src.name}_gt"
        loader = None
        if split == "test" and gt.is_dir() and list_frame_files(gt):
            loader = functools.partial(mask_stack, list_frame_files(gt))
        records.append(VideoRecord(src.name, src, n, None, None, which, split, {}, loader))
    if split == "train":
        return records
    ms = sorted(sdir.glob("UCSDped*.m"))
    if ms:
        entries = _parse_m(ms[0])
        if len(entries) != len(records):
            raise DatasetError(
                f"{ms[0]}: {len(entries)} gt_frame entries but {sdir} has {len(records)} videos"
            )
        for rec, ranges in zip(records, entries):
            labels = np.zeros(rec.num_frames, np.uint8)
            for a, b in ranges:
                if not 1 <= a <= b <= rec.num_frames:
                    raise DatasetError(
                        f"video {rec.name!r}: gt_frame range {a}:{b} in {ms[0].name} does not fit "
                        f"its {rec.num_frames} frames"
                    )
                labels[a - 1 : b] = 1
            rec.labels = labels
    elif all(r.has_masks for r in records):
        for rec in records:  # no .m file: frame labels from the pixel masks
            rec.labels = rec.masks().reshape(rec.num_frames, -1).any(axis=1).astype(np.uint8)
    else:
        warn_no_labels(str(sdir), f"{sdir}/UCSDped*.m or TestNNN_gt/ for every video")
    return records


def _gray(frames: np.ndarray) -> np.ndarray:
    g = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(g + 0.5, 0, 255).astype(np.uint8)


def _ranges_1based(labels: np.ndarray) -> list[str]:
    from sdmae.events import runs

    return [f"{a + 1}:{b}" for a, b in runs(labels)]


def write(root: Path, clips: dict, fps: float, which: str) -> None:
    # fps unused: UCSD ships frame folders, which have no frame rate
    base = root / f"UCSD{which}"
    lines = ["TestVideoFile = {};"]
    for i, c in enumerate(clips["train"]):
        write_frames(base / "Train" / f"Train{i + 1:03d}", _gray(c.frames), "{:03d}.tif", start=1)
    for i, c in enumerate(clips["test"]):
        write_frames(base / "Test" / f"Test{i + 1:03d}", _gray(c.frames), "{:03d}.tif", start=1)
        write_frames(base / "Test" / f"Test{i + 1:03d}_gt", (c.ids > 0).astype(np.uint8) * 255, "{:03d}.bmp", start=1)
        lines.append(f"TestVideoFile{{end+1}}.gt_frame = [{', '.join(_ranges_1based(c.labels))}];")
    (base / "Test" / f"UCSD{which}.m").write_text("\n".join(lines) + "\n")


def _layout(which: str) -> Layout:
    # An explicit layout needs no unwrapping: the reader finds UCSDpedN/ below the root itself.
    return Layout(which, "ped1/ped2 (UCSDped1/ or UCSDped2/ with Train/ and Test/)",
                  functools.partial(detect, which=which), functools.partial(read, which=which),
                  functools.partial(write, which=which), unwrap=False)


PED2, PED1 = _layout("ped2"), _layout("ped1")
