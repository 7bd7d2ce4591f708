"""One video of a dataset, whatever its layout, and the ground truth it carries.

:class:`VideoRecord` is what every layout's reader returns; :class:`DatasetError`
what it raises for a tree it cannot read; :func:`tracks_from_masks` derives the
ground-truth tracks of RBDC/TBDC from pixel masks where a dataset has no tracks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from scipy import ndimage

from sdmae.data.video import iter_frames, read_video
from sdmae.errors import SdmaeError

__all__ = ["DatasetError", "VideoRecord", "tracks_array", "tracks_from_masks"]


class DatasetError(SdmaeError):
    """A dataset tree that cannot be read as asked (layout, labels, counts)."""


@dataclass(eq=False)
class VideoRecord:
    """One video of a dataset, uniform across layouts.

    Attributes
    ----------
    name : str
        Video name as the dataset spells it (``"01"``, ``"01_0014"``, ``"Test001"``).
    source : Path
        Video file or frame folder; pass it to :func:`~sdmae.data.read_video`.
    num_frames : int
        Frame count (the labels, masks and tracks are aligned to it).
    fps : float or None
        Frame rate, None for frame folders.
    labels : (T,) ndarray of uint8 or None
        1 for abnormal frames; None where the dataset gives none (training
        videos of most layouts, unlabelled test videos of ``folder``).
    layout, split : str
        Where the record comes from.
    meta : dict
        Layout-specific extras (e.g. UBnormal ``object_tracks``).
    """

    name: str
    source: Path
    num_frames: int
    fps: float | None = None
    labels: np.ndarray | None = None
    layout: str = "folder"
    split: str = "test"
    meta: dict = field(default_factory=dict, repr=False)
    _mask_loader: Callable[[], np.ndarray] | None = field(default=None, repr=False)
    _track_loader: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    @property
    def has_masks(self) -> bool:
        """Whether :meth:`masks` returns pixel masks (without loading them)."""
        return self._mask_loader is not None

    @property
    def has_tracks(self) -> bool:
        """Whether :meth:`tracks` returns ground-truth tracks (without loading them)."""
        return self._track_loader is not None or self._mask_loader is not None

    def masks(self) -> np.ndarray | None:
        """Pixel-level ground truth, loaded now (not cached).

        Returns
        -------
        masks : (T, H, W) ndarray of bool, or None
            True on abnormal pixels; None when the dataset has no masks for
            this video.
        """
        if self._mask_loader is None:
            return None
        m = self._mask_loader()
        if len(m) != self.num_frames:
            raise DatasetError(
                f"video {self.name!r}: {len(m)} mask frames but {self.num_frames} video frames"
            )
        return m

    def tracks(self) -> np.ndarray | None:
        """Ground-truth anomaly tracks for RBDC/TBDC.

        Returns
        -------
        tracks : (M, 6) ndarray of float64, or None
            Rows ``[track_id, frame, x0, y0, x1, y1]``: inclusive pixel boxes,
            0-based frames, sorted by track then frame. From the dataset's
            object tracks where it has them (UBnormal), else derived from the
            pixel masks by :func:`tracks_from_masks`; None without masks.
        """
        if self._track_loader is not None:
            return self._track_loader()
        m = self.masks()
        return None if m is None else tracks_from_masks(m)

    def frames(self, max_frames: int | None = None) -> np.ndarray:
        """Decode the video whole: (T, H, W, 3) ndarray of uint8."""
        return read_video(self.source, max_frames)

    def iter_frames(self) -> Iterator[np.ndarray]:
        """Stream the frames, (H, W, 3) uint8 each."""
        return iter_frames(self.source)


def tracks_array(rows: list) -> np.ndarray:
    """Rows ``[track_id, frame, x0, y0, x1, y1]`` as (M, 6) float64, sorted by track then frame."""
    if not rows:
        return np.zeros((0, 6), np.float64)
    a = np.asarray(rows, np.float64)
    return a[np.lexsort((a[:, 1], a[:, 0]))]


def tracks_from_masks(
    masks: np.ndarray, min_area: int = 1, merge_distance: int = 3, max_gap: int = 2
) -> np.ndarray:
    """Link the connected regions of binary masks into tracks.

    Each frame's 8-connected components are regions; pieces closer than
    ``2 * merge_distance`` pixels (an object cut by an occluder) form one
    region. Regions, largest first, continue the nearest track (box centres)
    whose last box, grown by its own size per elapsed frame, they touch, so
    fast objects that do not overlap from frame to frame stay one track.
    Unmatched regions start new tracks.

    Parameters
    ----------
    masks : (T, H, W) ndarray of bool or integer
        Non-zero on abnormal pixels.
    min_area : int
        Regions with fewer pixels are ignored (annotation specks).
    merge_distance : int
        Dilation radius, in pixels, used to group nearby pieces; 0 disables.
    max_gap : int
        A track survives this many frames without a region (occlusion).

    Returns
    -------
    tracks : (M, 6) ndarray of float64
        ``[track_id, frame, x0, y0, x1, y1]``, inclusive pixel boxes.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (T, H, W), got shape {masks.shape}")
    eight = np.ones((3, 3), bool)
    rows, active, next_id = [], {}, 0  # active: track id -> (last frame, box)
    for t in range(len(masks)):
        m = masks[t] != 0
        if not m.any():
            continue
        grouped = ndimage.binary_dilation(m, eight, merge_distance) if merge_distance > 0 else m
        lab, n = ndimage.label(grouped, structure=eight)
        lab = lab * m  # group ids on the original pixels only
        area = np.bincount(lab.ravel(), minlength=n + 1)
        regions = [
            (area[c], (sl[0].start, sl[1].start, sl[0].stop - 1, sl[1].stop - 1))  # y0, x0, y1, x1
            for c, sl in enumerate(ndimage.find_objects(lab), start=1)
            if sl is not None and area[c] >= min_area
        ]
        regions.sort(key=lambda r: -r[0])
        taken = set()
        for _, (y0, x0, y1, x1) in regions:
            best = None
            for tid, (tl, (py0, px0, py1, px1)) in active.items():
                if tid in taken or t - tl > max_gap + 1:
                    continue
                grow = max(py1 - py0 + 1, px1 - px0 + 1) * (t - tl) + 1
                if y0 <= py1 + grow and py0 - grow <= y1 and x0 <= px1 + grow and px0 - grow <= x1:
                    d = np.hypot((y0 + y1 - py0 - py1) / 2, (x0 + x1 - px0 - px1) / 2)
                    if best is None or d < best[0]:
                        best = (d, tid)
            if best is None:
                tid, next_id = next_id, next_id + 1
            else:
                tid = best[1]
            taken.add(tid)
            active[tid] = (t, (y0, x0, y1, x1))
            rows.append([tid, t, x0, y0, x1, y1])
    return tracks_array(rows)
