"""What a dataset layout is, and the helpers its reader shares with the others."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from sdmae.data.records import DatasetError, VideoRecord
from sdmae.data.video import _natural_key, is_video_source, read_label_image, video_info

if TYPE_CHECKING:
    from sdmae.data.devsets.writing import LabelledClip

__all__ = [
    "Layout",
    "check_labels",
    "frame_count",
    "load_npy",
    "mask_stack",
    "npy_masks",
    "require_dir",
    "sources",
    "warn_no_labels",
]


@dataclass(frozen=True)
class Layout:
    """One dataset layout: how to recognise, read and write its tree.

    Attributes
    ----------
    name : str
        The name users pass as ``layout=`` and ``--layout``.
    looks_for : str
        What :attr:`detect` looks for, listed when no layout matches.
    detect : callable (root) -> bool
        Whether ``root`` itself holds this layout.
    read : callable (root, split) -> list of VideoRecord
        The videos of ``split`` ("train", "test" or "validation").
    write : callable (folder, clips, fps)
        Writes ``clips`` ({"train": [...], "test": [...], "validation": [...]}
        of :class:`~sdmae.data.devsets.writing.LabelledClip`) into the empty ``folder``.
    splits : tuple of str
        The splits the layout has.
    unwrap : bool
        Whether an explicit ``layout=`` tolerates one wrapper folder above
        ``root`` ("Avenue Dataset/"), as detection always does.
    """

    name: str
    looks_for: str
    detect: Callable[[Path], bool]
    read: Callable[[Path, str], list[VideoRecord]]
    write: Callable[[Path, dict[str, list[LabelledClip]], float], None]
    splits: tuple[str, ...] = ("train", "test")
    unwrap: bool = True


def require_dir(path: Path, what: str) -> Path:
    """``path``, which must be a folder; ``what`` names the layout part in the error."""
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: folder not found: {path}")
    return path


def sources(folder: Path) -> list[Path]:
    """Video files and frame folders directly in ``folder``, natural order."""
    out = [p for p in folder.iterdir() if not p.name.startswith(".") and is_video_source(p)]
    return sorted(out, key=lambda p: _natural_key(p.name))


def frame_count(source: Path) -> tuple[int, float | None]:
    """(frame count, fps or None) of a video file or frame folder; a count is required."""
    info = video_info(source)
    if not info.num_frames:
        raise DatasetError(f"video {source}: cannot tell its frame count")
    return info.num_frames, info.fps


def check_labels(name: str, labels, num_frames: int, where) -> np.ndarray:
    """(T,) uint8 frame labels, 1 abnormal, checked to be numbers, one per frame of the video."""
    labels = np.asarray(labels).ravel()
    if not (labels.dtype == np.bool_ or np.issubdtype(labels.dtype, np.number)):
        # strings would compare unequal to 0 everywhere: every frame abnormal
        raise DatasetError(f"video {name!r}: labels in {where} must be numbers, got dtype {labels.dtype}")
    if len(labels) != num_frames:
        raise DatasetError(
            f"video {name!r}: {len(labels)} labels in {where} but the video has {num_frames} frames"
        )
    return (labels != 0).astype(np.uint8)


def load_npy(path: Path, mmap_mode: str | None = None) -> np.ndarray:
    """A numeric .npy array; pickled Python objects are refused (loading them could run code)."""
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e) or "Python objects" in str(e):
            # numpy's own message would suggest allow_pickle=True, i.e. running the file's code
            raise DatasetError(f"{path} is not a numeric .npy array: it holds pickled Python objects or is "
                               "no .npy file at all (pickles are never loaded: that could run code)") from None
        raise DatasetError(f"{path} is not a readable .npy array ({e})") from None
    except EOFError:
        raise DatasetError(f"{path} is not a readable .npy array (the file is empty)") from None


def mask_stack(files: list[Path]) -> np.ndarray:
    """(T, H, W) bool pixel masks, one image file a frame, non-zero abnormal."""
    return np.stack([read_label_image(f) != 0 for f in files])


def npy_masks(path: Path) -> np.ndarray:
    """(T, H, W) bool pixel masks from one .npy array, non-zero abnormal."""
    m = load_npy(path, mmap_mode="r")
    if m.ndim != 3:
        raise DatasetError(f"{path}: pixel masks must be (T, H, W), got shape {m.shape}")
    return np.asarray(m != 0)


def warn_no_labels(what: str, looked: str) -> None:
    """Warn that a test split has no ground truth; ``looked`` says where it was looked for."""
    warnings.warn(f"{what}: no ground truth found ({looked}); labels are None", stacklevel=3)
