"""Dataset layouts: benchmarks exactly as distributed, or a folder of your own videos.

:func:`load_dataset` turns a dataset root into a list of :class:`VideoRecord`,
one per video, with frame labels read (and checked against the frame count)
up front and pixel masks / ground-truth tracks loaded lazily on request.

Layouts (``layout=``):

``avenue``        CUHK Avenue: ``training_videos/NN.avi``, ``testing_videos/NN.avi``,
                  ``[ground_truth_demo/]testing_label_mask/<n>_label.mat`` (``volLabel``).
``shanghaitech``  ``training/videos/XX_YYY.avi``, ``testing/frames/XX_YYYY/NNN.jpg``,
                  ``testing/test_frame_mask/*.npy``, ``testing/test_pixel_mask/*.npy``.
``ped2``/``ped1`` UCSD: ``UCSDped2/{Train,Test}/...NNN/*.tif``, ``Test/TestNNN_gt/*.bmp``,
                  frame ranges from ``Test/UCSDped2.m``.
``ubnormal``      ``Scene*/<video>.mp4``, ``Scene*/<video>_annotations/`` (tracks and
                  object-id masks), official split files ``*_video_names.txt``.
``folder``        ``train/<video>``, ``test/<video>`` (files or frame folders), optional
                  labels ``test/<video>.npy|.txt`` or ``labels/<video>.npy|.txt`` and
                  masks ``masks/<video>.npy`` (T, H, W).
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from scipy import ndimage

from sdmae.data.video import (
    VIDEO_EXTENSIONS,
    _natural_key,
    is_video_source,
    iter_frames,
    list_frame_files,
    read_label_image,
    read_video,
    video_info,
)
from sdmae.errors import SdmaeError

__all__ = [
    "LAYOUTS",
    "DatasetError",
    "VideoRecord",
    "detect_layout",
    "load_dataset",
    "tracks_from_masks",
]

LAYOUTS = ("avenue", "shanghaitech", "ped2", "ped1", "ubnormal", "folder")
_SPLITS = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "validation": "validation",
    "val": "validation",
}


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


# --------------------------------------------------------------------------- tracks


def _as_tracks(rows: list) -> np.ndarray:
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
    return _as_tracks(rows)


# --------------------------------------------------------------------------- helpers


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: folder not found: {path}")
    return path


def _sources(folder: Path) -> list[Path]:
    """Video files and frame folders directly in ``folder``, natural order."""
    out = [p for p in folder.iterdir() if not p.name.startswith(".") and is_video_source(p)]
    return sorted(out, key=lambda p: _natural_key(p.name))


def _count(source: Path) -> tuple[int, float | None]:
    info = video_info(source)
    if not info.num_frames:
        raise DatasetError(f"video {source}: cannot tell its frame count")
    return info.num_frames, info.fps


def _check_labels(name: str, labels, num_frames: int, where) -> np.ndarray:
    labels = np.asarray(labels).ravel()
    if not (labels.dtype == np.bool_ or np.issubdtype(labels.dtype, np.number)):
        # strings would compare unequal to 0 everywhere: every frame abnormal
        raise DatasetError(f"video {name!r}: labels in {where} must be numbers, got dtype {labels.dtype}")
    if len(labels) != num_frames:
        raise DatasetError(
            f"video {name!r}: {len(labels)} labels in {where} but the video has {num_frames} frames"
        )
    return (labels != 0).astype(np.uint8)


def _load_npy(path: Path, mmap_mode: str | None = None) -> np.ndarray:
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


def _read_label_file(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return _load_npy(path)
    try:
        tokens = [t for t in re.split(r"[\s,;]+", path.read_text()) if t]
        return np.array([float(t) for t in tokens])
    except ValueError as e:  # UnicodeDecodeError too
        raise DatasetError(f"{path}: labels must be numbers, one per frame ({e})") from None


def _mask_stack(files: list[Path]) -> np.ndarray:
    return np.stack([read_label_image(f) != 0 for f in files])


def _npy_masks(path: Path) -> np.ndarray:
    m = _load_npy(path, mmap_mode="r")
    if m.ndim != 3:
        raise DatasetError(f"{path}: pixel masks must be (T, H, W), got shape {m.shape}")
    return np.asarray(m != 0)


def _no_labels_warning(what: str, looked: str) -> None:
    warnings.warn(f"{what}: no ground truth found ({looked}); labels are None", stacklevel=3)


# --------------------------------------------------------------------------- Avenue


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


def _read_avenue(root: Path, split: str) -> list[VideoRecord]:
    sub = {"train": "training_videos", "test": "testing_videos"}[split]
    vdir = _require_dir(root / sub, "avenue")
    label_dir = next(
        (
            d
            for d in (root / "testing_label_mask", root / "ground_truth_demo" / "testing_label_mask")
            if d.is_dir()
        ),
        None,
    )
    if split == "test" and label_dir is None:
        _no_labels_warning(str(root), "testing_label_mask/ or ground_truth_demo/testing_label_mask/")
    records = []
    for src in _sources(vdir):
        n, fps = _count(src)
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


# --------------------------------------------------------------------------- ShanghaiTech


def _read_shanghaitech(root: Path, split: str) -> list[VideoRecord]:
    if split == "train":
        base = root / "training"
        vdir = base / "videos" if (base / "videos").is_dir() else base / "frames"
        _require_dir(vdir, "shanghaitech training videos (training/videos/)")
        return [
            VideoRecord(s.stem if s.is_file() else s.name, s, *_count(s), None, "shanghaitech", split)
            for s in _sources(vdir)
        ]
    fdir = _require_dir(root / "testing" / "frames", "shanghaitech test frames")
    ldir = root / "testing" / "test_frame_mask"
    pdir = root / "testing" / "test_pixel_mask"
    if not ldir.is_dir():
        _no_labels_warning(str(root), "testing/test_frame_mask/")
    records = []
    for src in _sources(fdir):
        name = src.stem if src.is_file() else src.name
        n, fps = _count(src)
        labels = None
        if ldir.is_dir():
            f = ldir / f"{name}.npy"
            if not f.is_file():
                raise FileNotFoundError(f"video {name!r}: frame labels not found: {f}")
            labels = _check_labels(name, _load_npy(f), n, f)
        pm = pdir / f"{name}.npy"
        loader = functools.partial(_npy_masks, pm) if pm.is_file() else None
        records.append(VideoRecord(name, src, n, fps, labels, "shanghaitech", split, {}, loader))
    return records


# --------------------------------------------------------------------------- UCSD


def _ucsd_candidates(root: Path) -> dict[str, Path]:
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


def _parse_ucsd_m(path: Path) -> list[list[tuple[int, int]]]:
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


def _read_ucsd(root: Path, split: str, which: str) -> list[VideoRecord]:
    found = _ucsd_candidates(root)
    if which not in found:
        raise FileNotFoundError(f"{which}: folder UCSD{which} not found at or below {root}")
    base = found[which]
    sub = {"train": "Train", "test": "Test"}[split]
    sdir = _require_dir(base / sub, which)
    videos = [s for s in _sources(sdir) if s.is_dir() and not s.name.endswith("_gt")]
    if not videos:
        raise DatasetError(f"{which}: no frame folders in {sdir}")
    records = []
    for src in videos:
        n, _ = _count(src)
        gt = sdir / f"{src.name}_gt"
        loader = None
        if split == "test" and gt.is_dir() and list_frame_files(gt):
            loader = functools.partial(_mask_stack, list_frame_files(gt))
        records.append(VideoRecord(src.name, src, n, None, None, which, split, {}, loader))
    if split == "train":
        return records
    ms = sorted(sdir.glob("UCSDped*.m"))
    if ms:
        entries = _parse_ucsd_m(ms[0])
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
        _no_labels_warning(str(sdir), f"{sdir}/UCSDped*.m or TestNNN_gt/ for every video")
    return records


# --------------------------------------------------------------------------- UBnormal

_UBNORMAL_SPLIT_FILES = {
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


def _ubnormal_gt_files(ann: Path, name: str, num_frames: int) -> dict[int, Path]:
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


def _ubnormal_frames(rec: VideoRecord) -> Iterator[tuple[int, np.ndarray, set[int]]]:
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


def _ubnormal_masks(rec: VideoRecord) -> np.ndarray:
    out = np.zeros((rec.num_frames, *rec.meta["size"]), bool)
    for t, m, _ in _ubnormal_frames(rec):
        if m.shape != out.shape[1:]:
            raise DatasetError(
                f"video {rec.name!r}: mask of frame {t} is {m.shape[0]}x{m.shape[1]}, video "
                f"frames are {out.shape[1]}x{out.shape[2]}"
            )
        out[t] = m
    return out


def _ubnormal_tracks(rec: VideoRecord) -> np.ndarray:
    rows = []
    for t, m, present in _ubnormal_frames(rec):
        if present:
            ids = read_label_image(rec.meta["gt_files"][t])
            for i in present:
                ys, xs = np.nonzero(ids == i)
                rows.append([i, t, xs.min(), ys.min(), xs.max(), ys.max()])
        else:
            ys, xs = np.nonzero(m)
            rows.append([0, t, xs.min(), ys.min(), xs.max(), ys.max()])
    return _as_tracks(rows)


def _ubnormal_ids_in_masks(files: dict[int, Path], tracks) -> bool:
    """Whether the mask pixel values are the object ids of tracks.txt (sampled)."""
    for i, a, b in tracks:
        t = next((k for k in range((a + b) // 2, b + 1) if k in files), None)
        if t is not None:
            return i in np.unique(read_label_image(files[t]))
    return True


def _find_split_files(root: Path, split: str) -> list[Path]:
    names = _UBNORMAL_SPLIT_FILES[split]
    for d in (root, root / "scripts", *sorted(root.glob("*/scripts"))):
        found = [d / n for n in names if (d / n).is_file()]
        if found:
            return found
    raise FileNotFoundError(
        f"ubnormal: split files {', '.join(names)} not found in {root} or {root / 'scripts'}"
    )


def _read_ubnormal(root: Path, split: str) -> list[VideoRecord]:
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
            files = _ubnormal_gt_files(ann, name, n)
            meta.update(
                object_tracks=tracks,
                gt_files=files,
                annotations=ann,
                ids_in_masks=_ubnormal_ids_in_masks(files, tracks),
            )
        rec = VideoRecord(name, src, n, info.fps, labels, "ubnormal", split, meta)
        if meta["gt_files"]:
            rec._mask_loader = functools.partial(_ubnormal_masks, rec)
            rec._track_loader = functools.partial(_ubnormal_tracks, rec)
        elif not meta["object_tracks"]:  # normal video: empty ground truth
            rec._mask_loader = functools.partial(np.zeros, (n, *info.size), bool)
            rec._track_loader = functools.partial(np.zeros, (0, 6), np.float64)
        records.append(rec)
    return records


# --------------------------------------------------------------------------- folder


def _read_folder(root: Path, split: str) -> list[VideoRecord]:
    sdir = next((root / d for d in (split, split + "ing") if (root / d).is_dir()), None)
    if sdir is None:
        raise FileNotFoundError(f"folder: folder not found: {root / split}")
    records, seen = [], {}
    for src in _sources(sdir):
        name = src.stem if src.is_file() else src.name
        if name in seen:
            raise DatasetError(f"folder: two videos named {name!r}: {seen[name]} and {src}")
        seen[name] = src
        n, fps = _count(src)
        labels, loader = None, None
        if split == "test":
            for f in (
                sdir / f"{name}.npy",
                sdir / f"{name}.txt",
                root / "labels" / f"{name}.npy",
                root / "labels" / f"{name}.txt",
            ):
                if f.is_file():
                    labels = _check_labels(name, _read_label_file(f), n, f)
                    break
            mnpy, mdir = root / "masks" / f"{name}.npy", root / "masks" / name
            if mnpy.is_file():
                loader = functools.partial(_npy_masks, mnpy)
            elif mdir.is_dir() and list_frame_files(mdir):
                loader = functools.partial(_mask_stack, list_frame_files(mdir))
        records.append(VideoRecord(name, src, n, fps, labels, "folder", split, {}, loader))
    return records


# --------------------------------------------------------------------------- entry points

_LOOKED_FOR = (
    "avenue (training_videos/ or testing_videos/), "
    "shanghaitech (training/videos/ or testing/frames/), "
    "ped1/ped2 (UCSDped1/ or UCSDped2/ with Train/ and Test/), "
    "ubnormal (Scene*/ folders with videos), "
    "folder (train/ or test/)"
)


def _detect_here(root: Path) -> str | None:
    if (root / "training_videos").is_dir() or (root / "testing_videos").is_dir():
        return "avenue"
    if any((root / p).is_dir() for p in ("training/videos", "testing/frames", "testing/test_frame_mask")):
        return "shanghaitech"
    ucsd = _ucsd_candidates(root)
    if len(ucsd) == 2:
        raise DatasetError(f"{root} holds both UCSDped1 and UCSDped2: pass layout='ped1' or 'ped2'")
    if ucsd:
        return next(iter(ucsd))
    for scene in root.glob("Scene*"):
        if scene.is_dir() and any(p.suffix.lower() in VIDEO_EXTENSIONS for p in scene.iterdir()):
            return "ubnormal"
    if any((root / d).is_dir() for d in ("train", "test", "training", "testing")):
        return "folder"
    return None


def _resolve(root: Path) -> tuple[str, Path]:
    layout = _detect_here(root)
    if layout is not None:
        return layout, root
    # Archives often unpack into one wrapper folder ("Avenue Dataset/").
    subs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subs) == 1 and (layout := _detect_here(subs[0])) is not None:
        return layout, subs[0]
    raise DatasetError(f"cannot tell the dataset layout of {root}; looked for: {_LOOKED_FOR}")


def detect_layout(root: str | os.PathLike) -> str:
    """Name the layout of a dataset tree.

    Parameters
    ----------
    root : str or PathLike

    Returns
    -------
    layout : str
        One of :data:`LAYOUTS`.

    Raises
    ------
    DatasetError
        Nothing matches (the message lists what was looked for), or the tree
        is ambiguous (both UCSD pedestrian sets).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root}")
    return _resolve(root)[0]


def load_dataset(
    root: str | os.PathLike, layout: str | None = None, split: str = "test"
) -> list[VideoRecord]:
    """Read a dataset tree as distributed, without preprocessing.

    Parameters
    ----------
    root : str or PathLike
        Dataset root (see the module docstring for each layout); one wrapper
        folder above it is tolerated.
    layout : str, optional
        One of :data:`LAYOUTS`; detected with :func:`detect_layout` when None.
    split : {"train", "test", "validation"}
        ``"validation"`` exists for UBnormal only.

    Returns
    -------
    records : list of VideoRecord
        In the dataset's natural order. Test labels are read and checked
        against frame counts now; masks and tracks load on request.

    Raises
    ------
    FileNotFoundError
        Missing root, split folder, label file or listed video.
    DatasetError
        Unknown layout or split, no videos, or a label count that differs
        from the frame count (the message names the video and both counts).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root}")
    if split not in _SPLITS:
        raise DatasetError(f"unknown split {split!r}; use 'train', 'test' or 'validation'")
    split = _SPLITS[split]
    if layout is None:
        layout, root = _resolve(root)
    elif layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    elif layout in ("avenue", "shanghaitech", "folder") and _detect_here(root) is None:
        # Tolerate one wrapper folder ("Avenue Dataset/"), as detection does.
        subs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if len(subs) == 1 and _detect_here(subs[0]) == layout:
            root = subs[0]
    if split == "validation" and layout != "ubnormal":
        raise DatasetError(f"layout {layout!r} has no validation split; use 'train' or 'test'")
    if layout == "avenue":
        records = _read_avenue(root, split)
    elif layout == "shanghaitech":
        records = _read_shanghaitech(root, split)
    elif layout in ("ped1", "ped2"):
        records = _read_ucsd(root, split, layout)
    elif layout == "ubnormal":
        records = _read_ubnormal(root, split)
    else:
        records = _read_folder(root, split)
    if not records:
        raise DatasetError(f"{layout}: no {split} videos found in {root}")
    return records
