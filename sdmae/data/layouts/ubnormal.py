"""UBnormal: ``Scene*/<video>.mp4``, ``Scene*/<video>_annotations/`` (object tracks and
object-id masks), the official split files ``*_video_names.txt``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from sdmae.data.layouts.base import Layout
from sdmae.data.records import DatasetError, VideoRecord, tracks_array
from sdmae.data.video import (VIDEO_EXTENSIONS, _natural_key, list_frame_files, read_label_image, video_info,
                              write_frames, write_video)


def detect(root: Path) -> bool:
    return any(scene.is_dir() and any(p.suffix.lower() in VIDEO_EXTENSIONS for p in scene.iterdir())
               for scene in root.glob("Scene*"))


_SPLIT_FILES = {
    "train": ("abnormal_train_video_names.txt", "normal_training_video_names.txt"),
    "validation": ("abnormal_validation_video_names.txt", "normal_validation_video_names.txt"),
    "test": ("abnormal_test_video_names.txt", "normal_test_video_names.txt"),
}


def _parse_tracks_txt(path: Path) -> list[tuple[int, int, int]]:
    out = []
    for line in path.read_text().splitlines():
        toks = [t for t in re.split(r"[,\s]+", line.strip()) if t]
        if len(toks) < 3:
            continue
        try:
            out.append(tuple(int(float(t)) for t in toks[:3]))
        except ValueError:
            continue  # header line
    return out


def _gt_files(ann: Path, name: str, num_frames: int) -> dict[int, Path]:
    """Frame index -> object-id mask image, wherever the annotation folder keeps them."""
    cands = [ann / f"{name}_gt", *sorted(p for p in ann.iterdir() if p.is_dir()), ann]
    files = next((list_frame_files(d) for d in cands if d.is_dir() and list_frame_files(d)), [])
    if not files:
        return {}
    nums = []
    for f in files:
        m = re.search(r"\d+", f.name)
        nums.append(int(m.group()) if m else -1)
    if len(set(nums)) == len(files) and min(nums) >= 0:
        shift = 1 if min(nums) >= 1 and max(nums) == num_frames else 0  # 1-based names
        return {k - shift: f for k, f in zip(nums, files)}
    return dict(enumerate(files))


def _annotated_frames(rec: VideoRecord) -> Iterator[tuple[int, np.ndarray, set[int]]]:
    """(frame, abnormal-pixel mask, abnormal ids present) for annotated frames."""
    tracks, files = rec.meta["object_tracks"], rec.meta["gt_files"]
    for t in sorted(files):
        if not 0 <= t < rec.num_frames:
            continue
        active = {i for i, a, b in tracks if a <= t <= b}
        if not active:
            continue
        ids = read_label_image(files[t])
        present = active & set(np.unique(ids).tolist())
        if present:
            yield t, np.isin(ids, list(present)), present
        elif rec.meta["ids_in_masks"] is False:
            yield t, ids != 0, set()  # masks without ids: any object in range


def _masks(rec: VideoRecord) -> np.ndarray:
    out = np.zeros((rec.num_frames, *rec.meta["size"]), bool)
    for t, m, _ in _annotated_frames(rec):
        if m.shape != out.shape[1:]:
            raise DatasetError(
                f"video {rec.name!r}: mask of frame {t} is {m.shape[0]}x{m.shape[1]}, video "
                f"frames are {out.shape[1]}x{out.shape[2]}"
            )
        out[t] = m
    return out


def _tracks(rec: VideoRecord) -> np.ndarray:
    rows = []
    for t, m, present in _annotated_frames(rec):
        if present:
            ids = read_label_image(rec.meta["gt_files"][t])
            for i in present:
                ys, xs = np.nonzero(ids == i)
                rows.append([i, t, xs.min(), ys.min(), xs.max(), ys.max()])
        else:
            ys, xs = np.nonzero(m)
            rows.append([0, t, xs.min(), ys.min(), xs.max(), ys.max()])
    return tracks_array(rows)


def _ids_in_masks(files: dict[int, Path], tracks) -> bool:
    """Whether the mask pixel values are the object ids of tracks.txt (sampled)."""
    for i, a, b in tracks:
        t = next((k for k in range((a + b) // 2, b + 1) if k in files), None)
        if t is not None:
            return i in np.unique(read_label_image(files[t]))
    return True


def _find_split_files(root: Path, split: str) -> list[Path]:
    names = _SPLIT_FILES[split]
    for d in (root, root / "scripts", *sorted(root.glob("*/scripts"))):
        found = [d / n for n in names if (d / n).is_file()]
        if found:
            return found
    raise FileNotFoundError(
        f"ubnormal: split files {', '.join(names)} not found in {root} or {root / 'scripts'}"
    )


def read(root: Path, split: str) -> list[VideoRecord]:
    scenes = sorted((p for p in root.glob("Scene*") if p.is_dir()), key=lambda p: _natural_key(p.name))
    if not scenes:
        raise FileNotFoundError(f"ubnormal: no Scene*/ folders in {root}")
    index = {
        p.stem: p
        for s in scenes
        for p in s.iterdir()
        if p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(".")
    }
    names = []
    for f in _find_split_files(root, split):
        for line in f.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                names.append(Path(line).stem if Path(line).suffix in VIDEO_EXTENSIONS else line)
    records = []
    for name in names:
        if name not in index:
            raise FileNotFoundError(f"ubnormal: video {name!r} (listed for {split}) not found in Scene*/")
        src = index[name]
        info = video_info(src)
        n = info.num_frames
        ann = src.parent / f"{name}_annotations"
        meta = {"size": info.size, "object_tracks": [], "gt_files": {}, "annotations": None}
        labels = np.zeros(n, np.uint8)
        if ann.is_dir():
            txt = ann / f"{name}_tracks.txt"
            if not txt.is_file():
                txt = next(iter(sorted(ann.glob("*tracks*.txt"))), None)
            if txt is None:
                raise FileNotFoundError(f"ubnormal: video {name!r}: no *_tracks.txt in {ann}")
            tracks = _parse_tracks_txt(txt)
            for i, a, b in tracks:
                if a < 0 or a > b or a >= n:
                    raise DatasetError(
                        f"video {name!r}: track {i} frames {a}..{b} in {txt.name} do not fit its "
                        f"{n} frames"
                    )
                labels[a : b + 1] = 1
            files = _gt_files(ann, name, n)
            meta.update(
                object_tracks=tracks,
                gt_files=files,
                annotations=ann,
                ids_in_masks=_ids_in_masks(files, tracks),
            )
        rec = VideoRecord(name, src, n, info.fps, labels, "ubnormal", split, meta)
        if meta["gt_files"]:
            rec._mask_loader = functools.partial(_masks, rec)
            rec._track_loader = functools.partial(_tracks, rec)
        elif not meta["object_tracks"]:  # normal video: empty ground truth
            rec._mask_loader = functools.partial(np.zeros, (n, *info.size), bool)
            rec._track_loader = functools.partial(np.zeros, (0, 6), np.float64)
        records.append(rec)
    return records


def write(root: Path, clips: dict, fps: float) -> None:
    scene = root / "Scene1"
    scene.mkdir()
    scripts = root / "scripts"
    scripts.mkdir()
    names = {"train": [], "validation": [], "test": []}
    for i, c in enumerate(clips["train"]):
        name = f"normal_scene_1_scenario_{i + 1}"
        write_video(scene / f"{name}.mp4", c.frames, fps)
        names["train"].append(name)
    abnormal = [("test", c) for c in clips["test"]] + [("validation", c) for c in clips["validation"]]
    for i, (split, c) in enumerate(abnormal):
        name = f"abnormal_scene_1_scenario_{i + 1}"
        write_video(scene / f"{name}.mp4", c.frames, fps)
        ann = scene / f"{name}_annotations"
        ann.mkdir()
        (ann / f"{name}_tracks.txt").write_text("".join(f"{e['id']},{e['start']},{e['end']}\n" for e in c.events))
        write_frames(ann / f"{name}_gt", c.ids, "{:04d}_gt.png")
        names[split].append(name)
    files = {
        "normal_training_video_names.txt": names["train"],
        "abnormal_train_video_names.txt": [],
        "abnormal_validation_video_names.txt": names["validation"],
        "normal_validation_video_names.txt": [],
        "abnormal_test_video_names.txt": names["test"],
        "normal_test_video_names.txt": [],
    }
    for fname, lst in files.items():
        (scripts / fname).write_text("".join(n + "\n" for n in lst))


UBNORMAL = Layout("ubnormal", "ubnormal (Scene*/ folders with videos)", detect, read, write,
                  splits=("train", "test", "validation"))
