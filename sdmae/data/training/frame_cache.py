"""The training split decoded once, at model size, into a uint8 cache on disk.

A full-size training split does not fit in memory (ShanghaiTech is ~42 GB of
uint8 frames at 160x320), and every torchrun rank would hold its own copy.
The cache holds one ``.npy`` file per training video under a folder named by
a key of everything the frames depend on: the dataset folder, its layout, the
size, and the size and modification time of every source file. A second run,
or another preset at the same size, reuses it.

A folder under its key is always complete: it is built under a hidden
temporary name and renamed into place once its manifest is written, so a
crash while building leaves only a temporary folder, which the next build
removes. Samples are read with positional reads rather than a memory map:
an epoch touches every frame, and a map's touched pages would count in the
process's resident memory, growing with the dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sdmae.data.records import DatasetError, VideoRecord

CACHE_VERSION = 1
MANIFEST = "manifest.json"
_HEADER_BYTES = 128  # a fixed .npy header, so it can be written before the frame count is known


def default_cache_dir() -> Path:
    """``$SDMAE_CACHE_DIR``, else ``$XDG_CACHE_HOME/sdmae/frames``, else ``~/.cache/sdmae/frames``."""
    if os.environ.get("SDMAE_CACHE_DIR"):
        return Path(os.environ["SDMAE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sdmae" / "frames"


def cache_key(root: str | os.PathLike, records: Sequence[VideoRecord], size: tuple[int, int]) -> str:
    """What the cached frames depend on, hashed: any change to a source file or to a
    video's labels (which decide UBnormal's normal runs) gives a new key."""
    described = {
        "version": CACHE_VERSION,
        "root": str(Path(root).resolve()),
        "layout": records[0].layout if records else None,
        "split": "train",
        "size": [int(s) for s in size],
        "videos": [{"name": r.name, "source": str(r.source), "files": _file_stats(Path(r.source)),
                    "labels": None if r.labels is None else hashlib.sha256(
                        np.ascontiguousarray(r.labels, np.uint8).tobytes()).hexdigest()}
                   for r in records],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]


def _file_stats(source: Path) -> list:
    files = sorted(p for p in source.iterdir() if p.is_file()) if source.is_dir() else [source]
    stats = []
    for f in files:
        st = f.stat()
        stats.append([f.name, st.st_size, st.st_mtime_ns])
    return stats


@dataclass(frozen=True)
class CachedVideo:
    """Frames [start, stop) of one cached video file; ``video[indices]`` reads those frames.

    Holds a path, not an open file or a map: it pickles to DataLoader workers
    for a few bytes, and each read allocates only the frames asked for.
    """

    path: Path
    offset: int  # bytes before frame 0 of the file
    start: int
    stop: int
    height: int
    width: int

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.height, self.width, 3)

    def __getitem__(self, indices) -> np.ndarray:
        """Integer or integer array of frame indices (0-based in this run) -> (n, H, W, 3) uint8
        (a single index gives (H, W, 3))."""
        idx = np.asarray(indices, np.int64)
        flat = idx.reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"frame index out of range 0..{len(self) - 1} of {self.path}")
        frame_bytes = self.height * self.width * 3
        out = np.empty((flat.size, self.height, self.width, 3), np.uint8)
        with open(self.path, "rb", buffering=0) as f:
            for j, t in enumerate(flat.tolist()):
                got = os.preadv(f.fileno(), [memoryview(out[j]).cast("B")],
                                self.offset + (self.start + t) * frame_bytes)
                if got != frame_bytes:
                    raise DatasetError(f"frame cache file {self.path} is truncated (frame {self.start + t}); "
                                       f"delete {self.path.parent} and train again to rebuild it")
        return out.reshape(idx.shape + (self.height, self.width, 3))


class FrameCache:
    """The cached training split of one dataset at one size (see the module docstring)."""

    def __init__(self, folder: Path, manifest: dict):
        self.folder, self.manifest = folder, manifest

    @property
    def videos(self) -> list[CachedVideo]:
        """One :class:`CachedVideo` per normal run of every training video."""
        return [CachedVideo(self.folder / v["file"], v["offset"], a, b, v["height"], v["width"])
                for v in self.manifest["videos"] for a, b in v["runs"]]

    @classmethod
    def open(cls, folder: Path) -> "FrameCache":
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("version") != CACHE_VERSION:
            raise DatasetError(f"frame cache {folder} has version {manifest.get('version')}, this sdmae reads "
                               f"{CACHE_VERSION}; delete the folder to rebuild it")
        return cls(folder, manifest)


def open_or_build(root: str | os.PathLike, records: Sequence[VideoRecord], size: tuple[int, int],
                  cache_dir: str | os.PathLike, *, build: bool = True, progress: bool = True,
                  poll_seconds: float = 0.5) -> FrameCache:
    """The dataset's frame cache under ``cache_dir``, built first if it is missing.

    With ``build=False`` (torchrun ranks other than each node's first) wait until the
    builder's folder appears instead; torchrun stops the waiting ranks if the builder fails.
    """
    cache_dir = Path(cache_dir)
    folder = cache_dir / cache_key(root, records, size)
    if not (folder / MANIFEST).exists():
        if build:
            _build(folder, records, size, progress)
        else:
            while not (folder / MANIFEST).exists():
                time.sleep(poll_seconds)
    return FrameCache.open(folder)


def _build(folder: Path, records: Sequence[VideoRecord], size: tuple[int, int], progress: bool) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(folder.parent)
    _check_free_space(folder.parent, records, size)
    host = socket.gethostname()
    tmp = folder.with_name(f".{folder.name}.building-{host}-{os.getpid()}")
    tmp.mkdir()
    # one line whatever the progress setting: a build is rare, and the user learns where the disk space went
    print(f"sdmae: building the frame cache of {len(records)} training videos in {folder}", file=sys.stderr,
          flush=True)
    try:
        entries = []
        items = records
        if progress:
            from tqdm.auto import tqdm

            items = tqdm(records, desc="caching training videos", leave=False)
        for i, rec in enumerate(items):
            name = f"video_{i:05d}.npy"
            with _NpyFrameWriter(tmp / name) as writer:
                for chunk in decode_chunks(rec, size):
                    writer.append(chunk)
            if writer.frames == 0:
                raise DatasetError(f"training video {rec.source} has no frames")
            height, width, _ = writer.frame_shape
            entries.append({"file": name, "name": rec.name, "source": str(rec.source), "frames": writer.frames,
                            "height": height, "width": width, "offset": _HEADER_BYTES,
                            "runs": [list(r) for r in training_runs(rec, writer.frames)]})
        if not any(e["runs"] for e in entries):
            raise DatasetError(f"{folder}: the training split has no normal frames")
        manifest = {"version": CACHE_VERSION, "size": [int(s) for s in size], "videos": entries,
                    "built_by": {"host": host, "pid": os.getpid(), "rank": int(os.environ.get("RANK", "0"))},
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _fsync_folder(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / MANIFEST).exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished the same cache first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class _NpyFrameWriter:
    """Appends (n, h, w, 3) uint8 chunks to a .npy file whose shape is written last."""

    def __init__(self, path: Path):
        self.path, self.frame_shape, self.frames = path, None, 0

    def __enter__(self) -> "_NpyFrameWriter":
        self.file = open(self.path, "wb")
        self.file.write(_npy_header((0, 0, 0, 3)))
        return self

    def append(self, chunk: np.ndarray) -> None:
        if self.frame_shape is None:
            self.frame_shape = chunk.shape[1:]
        if chunk.dtype != np.uint8 or chunk.ndim != 4 or chunk.shape[1:] != self.frame_shape:
            raise DatasetError(f"{self.path}: frames of shape {chunk.shape[1:]} {chunk.dtype} after "
                               f"{self.frame_shape} uint8 ones; a video's frames must share one size")
        self.file.write(np.ascontiguousarray(chunk).tobytes())
        self.frames += len(chunk)

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None and self.frame_shape is not None:
                self.file.seek(0)
                self.file.write(_npy_header((self.frames, *self.frame_shape)))
                self.file.flush()
                os.fsync(self.file.fileno())
        finally:
            self.file.close()


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A version 1.0 .npy header for C-order uint8 of ``shape``, padded to _HEADER_BYTES."""
    text = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    pad = _HEADER_BYTES - 10 - len(text) - 1
    if pad < 0:
        raise ValueError(f"shape {shape} does not fit the cache's .npy header")
    return b"\x93NUMPY\x01\x00" + (_HEADER_BYTES - 10).to_bytes(2, "little") + (text + " " * pad + "\n").encode()


def _remove_abandoned_builds(cache_dir: Path) -> None:
    """Temporary folders of builds on this host whose process is gone (killed mid-build)."""
    host = socket.gethostname()
    for tmp in cache_dir.glob(".*.building-*"):
        owner, _, pid = tmp.name.rpartition("-")
        if owner.endswith(f".building-{host}") and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _check_free_space(cache_dir: Path, records: Sequence[VideoRecord], size: tuple[int, int]) -> None:
    need = sum(r.num_frames for r in records) * size[0] * size[1] * 3
    free = shutil.disk_usage(cache_dir).free
    if need > free:
        raise DatasetError(f"the frame cache needs about {need / 1e9:.1f} GB but {cache_dir} has "
                           f"{free / 1e9:.1f} GB free; choose another --cache-dir")


def _fsync_folder(folder: Path) -> None:
    """The manifest and the folder's entries on disk before the rename publishes them."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not sync folders
        pass
    finally:
        os.close(fd)


def decode_chunks(rec: VideoRecord, size: tuple[int, int], chunk: int = 64) -> Iterator[np.ndarray]:
    """A training video's frames as (n, h, w, 3) uint8 chunks at (at most) the model size,
    one resize call per ``chunk`` frames; never the whole video in memory."""
    batch = []
    for frame in rec.iter_frames():
        batch.append(frame)
        if len(batch) == chunk:
            yield shrink(np.stack(batch), size)
            batch = []
    if batch:
        yield shrink(np.stack(batch), size)


def shrink(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T, H, W, 3) uint8 -> the same, at most the model size (half-pixel bilinear, the
    convention of :func:`sdmae.kernels.prepare`), so motion gradients are computed at
    the model size in training as at test time."""
    if frames.shape[1] * frames.shape[2] <= size[0] * size[1]:
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).contiguous().numpy()


def training_runs(rec: VideoRecord, frames: int) -> list[tuple[int, int]]:
    """The [start, stop) runs of a training video to train on. Training is one-class:
    where a training video has frame labels (UBnormal's abnormal training videos), only
    its runs of normal frames, so no abnormal frame is ever a neighbour either."""
    if rec.labels is None or not rec.labels.any():
        return [(0, frames)]
    if len(rec.labels) != frames:
        raise DatasetError(f"training video {rec.source}: decoded {frames} frames but its labels have "
                           f"{len(rec.labels)}")
    return normal_runs(rec.labels)


def normal_runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """(T,) 0/1 frame labels -> [start, stop) of every maximal run of normal (0) frames."""
    from sdmae.events import runs

    return runs(np.asarray(labels) == 0)
