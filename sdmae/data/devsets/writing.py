"""Write labelled clips to disk in the benchmarks' own layouts.

Both dataset generators (:mod:`sdmae.data.devsets.synthetic` and
:mod:`sdmae.data.devsets.footage`) produce :class:`LabelledClip` lists and hand them
to :func:`write_dataset`, which writes Avenue, ShanghaiTech, UCSD Ped1/Ped2,
UBnormal or plain-folder trees that :func:`sdmae.data.load_dataset` reads back.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdmae.data.video import write_frames, write_video

__all__ = ["LAYOUT_WRITERS", "LabelledClip", "write_dataset"]


@dataclass
class LabelledClip:
    """One video with pixel-level ground truth."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    ids: np.ndarray  # (T, H, W) uint8: anomaly id per pixel, 0 = normal
    events: list  # dicts: kind, id, start, end (visible frames, inclusive)

    @property
    def labels(self) -> np.ndarray:
        """(T,) uint8: 1 where any pixel is abnormal."""
        return (self.ids.reshape(len(self.ids), -1) > 0).any(axis=1).astype(np.uint8)


def _gray(frames: np.ndarray) -> np.ndarray:
    g = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(g + 0.5, 0, 255).astype(np.uint8)


def _ranges_1based(labels: np.ndarray) -> list[str]:
    from sdmae.events import runs

    return [f"{a + 1}:{b}" for a, b in runs(labels)]


def _write_avenue(tmp, clips, fps):
    from scipy.io import savemat

    (tmp / "training_videos").mkdir()
    (tmp / "testing_videos").mkdir()
    gt = tmp / "ground_truth_demo" / "testing_label_mask"
    gt.mkdir(parents=True)
    for i, c in enumerate(clips["train"]):
        write_video(tmp / "training_videos" / f"{i + 1:02d}.avi", c.frames, fps)
    for i, c in enumerate(clips["test"]):
        write_video(tmp / "testing_videos" / f"{i + 1:02d}.avi", c.frames, fps)
        cell = np.empty((1, len(c.ids)), object)  # MATLAB 1xN cell of HxW masks
        for t, m in enumerate(c.ids):
            cell[0, t] = (m > 0).astype(np.uint8)
        savemat(gt / f"{i + 1}_label.mat", {"volLabel": cell}, do_compression=True)


def _write_shanghaitech(tmp, clips, fps):
    (tmp / "training" / "videos").mkdir(parents=True)
    for d in ("frames", "test_frame_mask", "test_pixel_mask"):
        (tmp / "testing" / d).mkdir(parents=True)
    for i, c in enumerate(clips["train"]):
        write_video(tmp / "training" / "videos" / f"01_{i + 1:03d}.avi", c.frames, fps)
    for i, c in enumerate(clips["test"]):
        name = f"01_{i + 1:04d}"
        write_frames(tmp / "testing" / "frames" / name, c.frames, "{:03d}.jpg")
        np.save(tmp / "testing" / "test_frame_mask" / f"{name}.npy", c.labels.astype(np.int64))
        np.save(tmp / "testing" / "test_pixel_mask" / f"{name}.npy", (c.ids > 0).astype(np.uint8))


def _write_ucsd(tmp, clips, which):
    base = tmp / f"UCSD{which}"
    lines = ["TestVideoFile = {};"]
    for i, c in enumerate(clips["train"]):
        write_frames(base / "Train" / f"Train{i + 1:03d}", _gray(c.frames), "{:03d}.tif", start=1)
    for i, c in enumerate(clips["test"]):
        write_frames(base / "Test" / f"Test{i + 1:03d}", _gray(c.frames), "{:03d}.tif", start=1)
        write_frames(base / "Test" / f"Test{i + 1:03d}_gt", (c.ids > 0).astype(np.uint8) * 255, "{:03d}.bmp", start=1)
        lines.append(f"TestVideoFile{{end+1}}.gt_frame = [{', '.join(_ranges_1based(c.labels))}];")
    (base / "Test" / f"UCSD{which}.m").write_text("\n".join(lines) + "\n")


def _write_ubnormal(tmp, clips, fps):
    scene = tmp / "Scene1"
    scene.mkdir()
    scripts = tmp / "scripts"
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


def _write_folder(tmp, clips, fps):
    for d in ("train", "test", "masks"):
        (tmp / d).mkdir()
    for i, c in enumerate(clips["train"]):
        write_video(tmp / "train" / f"cam_{i + 1:02d}.mp4", c.frames, fps)
    for i, c in enumerate(clips["test"]):
        name = f"cam_{i + 1:02d}"
        write_video(tmp / "test" / f"{name}.avi", c.frames, fps)
        np.save(tmp / "test" / f"{name}.npy", c.labels)
        np.save(tmp / "masks" / f"{name}.npy", c.ids > 0)


LAYOUT_WRITERS = {
    "avenue": _write_avenue,
    "shanghaitech": _write_shanghaitech,
    "ped2": lambda tmp, clips, fps: _write_ucsd(tmp, clips, "ped2"),
    "ped1": lambda tmp, clips, fps: _write_ucsd(tmp, clips, "ped1"),
    "ubnormal": _write_ubnormal,
    "folder": _write_folder,
}


def write_dataset(root: str | os.PathLike, layout: str, clips: dict[str, list[LabelledClip]], fps: float,
                  params: dict, marker: str, maker: str) -> Path:
    """Write ``clips`` ({"train": [...], "test": [...], "validation": [...]}) to ``root``.

    The tree is built under a temporary name and renamed, so ``root`` is
    either absent or complete; ``params`` goes into the hidden ``marker``
    file, from which :func:`up_to_date` recognises the output later.
    ``maker`` names the generator in messages.
    """
    root = Path(root)
    ours = (root / marker).is_file()
    if root.exists() and any(root.iterdir()) and not ours:
        raise FileExistsError(f"{root} is not empty and was not written by {maker}")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.{secrets.token_hex(4)}.tmp")
    tmp.mkdir()
    try:
        LAYOUT_WRITERS[layout](tmp, clips, fps)
        (tmp / marker).write_text(json.dumps(params, indent=1))
        if root.exists():
            shutil.rmtree(root) if ours else root.rmdir()
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def up_to_date(root: str | os.PathLike, params: dict, marker: str, maker: str) -> bool:
    """Whether ``root`` already holds the output of ``maker`` for exactly ``params``.

    Raises FileExistsError for a non-empty folder that ``maker`` did not write.
    """
    root = Path(root)
    if not (root.exists() and any(root.iterdir())):
        return False
    if not (root / marker).is_file():
        raise FileExistsError(f"{root} is not empty and was not written by {maker}")
    return json.loads((root / marker).read_text()) == params
