"""Video I/O: decode files, frame folders and streams to uint8 RGB; write videos.

Every reader returns frames as ``(H, W, 3) ndarray of uint8`` in RGB order,
whatever the source stores (grayscale TIFFs, RGBA PNGs, YUV video). Video
files and network streams go through PyAV (FFmpeg); frame folders through
Pillow. Nothing is extracted to disk.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import shutil
import threading
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import av
import numpy as np
from PIL import Image

from sdmae.data.io import atomic_write
from sdmae.errors import SdmaeError

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "CorruptFrameWarning",
    "VideoError",
    "VideoInfo",
    "is_video_source",
    "iter_frames",
    "list_frame_files",
    "prefetch",
    "read_image",
    "read_label_image",
    "read_video",
    "to_rgb",
    "video_info",
    "write_frames",
    "write_video",
]

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".webm", ".wmv")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
T = TypeVar("T")


class VideoError(SdmaeError):
    """A video or frame folder that cannot be decoded (corrupt, truncated, mixed sizes)."""


class CorruptFrameWarning(UserWarning):
    """A frame decoded from damaged data (e.g. the last frame of a cut-short file).

    The frame is kept, so frame numbers stay those of the file, but its pixels,
    and the scores of the frames around it, are unreliable. Make it an error
    with ``warnings.simplefilter("error", CorruptFrameWarning)``.
    """


@dataclass(frozen=True)
class VideoInfo:
    """What a source holds, read as cheaply as the format allows.

    Attributes
    ----------
    num_frames : int or None
        Frame count; None for live streams. For video files it comes from the
        container header when present, else from counting packets.
    fps : float or None
        Frame rate; None for frame folders.
    height, width : int
        Frame size in pixels.
    """

    num_frames: int | None
    fps: float | None
    height: int
    width: int

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return (self.height, self.width)


# --------------------------------------------------------------------------- helpers


def _is_url(source) -> bool:
    return isinstance(source, str) and "://" in source


def _natural_key(name: str) -> list:
    # "9.jpg" < "10.jpg": compare digit runs as integers. re.split with a group
    # alternates str/int starting with a str, so keys always compare.
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", name)]


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """Image files of a frame folder in frame order.

    Sorted numerically (``9.jpg`` before ``10.jpg``); hidden files such as
    macOS ``._001.tif`` and ``.DS_Store`` and files of other types are ignored.

    Parameters
    ----------
    folder : str or PathLike

    Returns
    -------
    files : list of Path
    """
    folder = Path(folder)
    files = [
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    ]
    return sorted(files, key=lambda p: _natural_key(p.name))


def is_video_source(path: str | os.PathLike) -> bool:
    """True for a video file (by extension) or a folder holding image frames."""
    path = Path(path)
    if path.name.startswith("."):
        return False
    if path.is_file():
        return path.suffix.lower() in VIDEO_EXTENSIONS
    if path.is_dir():
        return any(
            not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
            for p in path.iterdir()
        )
    return False


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Convert one decoded image to RGB uint8.

    Parameters
    ----------
    image : (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4) ndarray
        Grayscale (with optional alpha), RGB or RGBA; bool, any integer type
        or float (floats with maximum <= 1 are taken as [0, 1]). Alpha is
        dropped.

    Returns
    -------
    rgb : (H, W, 3) ndarray of uint8
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] in (2, 4):
        a = a[..., : a.shape[2] - 1]  # drop alpha
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise ValueError(f"expected an (H, W) or (H, W, 1-4) image, got shape {a.shape}")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        # 16-bit scans (TIFF): full range maps onto 0..255.
        a = ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        scale = 255.0 if a.size and np.nanmax(a) <= 1.0 else 1.0
        a = np.clip(np.nan_to_num(a) * scale + 0.5, 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a)


def _open_image(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        if im.mode in ("P", "PA"):
            im = im.convert("RGBA")
        elif im.mode not in ("1", "L", "LA", "RGB", "RGBA", "I", "I;16", "F"):
            im = im.convert("RGB")  # CMYK, YCbCr, I;16B, ...
        return np.asarray(im)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file as RGB.

    Returns
    -------
    rgb : (H, W, 3) ndarray of uint8
    """
    return to_rgb(_open_image(Path(path)))


def read_label_image(path: str | os.PathLike) -> np.ndarray:
    """Read a mask or label image keeping its raw values (e.g. object ids).

    Parameters
    ----------
    path : str or PathLike
        Grayscale, palette (indices are kept) or RGB image.

    Returns
    -------
    labels : (H, W) ndarray of an integer type (or bool)
        The single channel; for RGB, the first channel when all three are
        equal, else the packed value ``R * 65536 + G * 256 + B``.
    """
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("1", "L", "P", "I", "I;16", "RGB", "RGBA", "LA"):
                im = im.convert("RGB")
            a = np.asarray(im)
    except (OSError, Image.DecompressionBombError) as e:
        raise VideoError(f"{path}: cannot read the label image ({e})") from e
    if a.ndim == 3:
        if a.shape[2] == 2:  # LA
            return a[..., 0]
        rgb = a[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., 0]
        rgb = rgb.astype(np.int32)
        return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return a


def _check_exists(source) -> Path:
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such video file or frame folder: {path}")
    return path


# --------------------------------------------------------------------------- reading


def _iter_folder(folder: Path, files: list[Path], max_frames: int | None) -> Iterator[np.ndarray]:
    def read(item: tuple[int, Path]) -> np.ndarray:
        i, f = item
        try:
            return read_image(f)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise VideoError(f"{folder}: cannot decode frame {i} ({f.name}): {e}") from e

    first = None
    with closing(ordered_map(read, enumerate(files[:max_frames]), DECODE_THREADS)) as frames:
        for (i, f), frame in zip(enumerate(files), frames):
            if first is None:
                first = (frame.shape, f.name)
            elif frame.shape != first[0]:
                (h0, w0, _), (h, w, _) = first[0], frame.shape
                raise VideoError(
                    f"{folder}: frame {i} ({f.name}) is {h}x{w} but frame 0 ({first[1]}) is "
                    f"{h0}x{w0}; all frames of a video must have one size"
                )
            yield frame


def _expected_frames(container, stream) -> tuple[int | None, int]:
    """Frame count the header promises and the slack allowed for it."""
    if stream.frames:
        return int(stream.frames), 0  # an exact count (AVI index, MP4 sample table)
    rate = stream.average_rate or stream.guessed_rate
    if rate and stream.duration and stream.time_base:
        return round(float(stream.duration * stream.time_base * rate)), 1
    if rate and container.duration and len(container.streams) == 1:
        return round(container.duration / av.time_base * float(rate)), 1  # Matroska
    return None, 0


def _decode_threads() -> int:
    """Threads that convert (or read) frames beside the decoder: none on a small
    machine, where the model needs every core; up to 4 where cores are plenty (a
    GPU's host), so that one video's decoding keeps up with the model."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(4, cores // 4)


DECODE_THREADS = _decode_threads()

R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], threads: int) -> Iterator[R]:
    """``map(fn, items)`` with ``threads`` workers, in order, at most 2 * ``threads``
    items ahead; ``threads`` 0 runs it in the caller's thread. ``fn`` must release
    the GIL to gain (PyAV's colour conversion and Pillow's decoders do). An exception
    of ``fn`` is raised at its item. Close the iterator to stop early."""
    if threads < 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="sdmae-decode") as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > 2 * threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB. The colour conversion costs more than
    decoding itself (MPEG-4 at 360x640: ~2,500 frames/s decoded, ~800 converted), and
    it releases the GIL: :data:`DECODE_THREADS` run it beside the decoder."""
    return frame.to_ndarray(format="rgb24")


def _iter_container(source: str, max_frames: int | None) -> Iterator[np.ndarray]:
    n = 0
    try:
        container = av.open(source)
    except av.FFmpegError as e:
        raise VideoError(f"{source}: cannot open video, decoding stopped at frame 0: {e}") from e
    with container:
        if not container.streams.video:
            raise VideoError(f"{source}: no video stream, decoding stopped at frame 0")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        expected, slack = _expected_frames(container, stream)
        size = None
        if max_frames == 0:
            return
        # The demuxer flags a packet it could read only in part (a cut-short file);
        # the decoder may still make a frame of it, silently, so look at the packets.
        corrupt = set()

        def decoded() -> Iterator[tuple[av.VideoFrame, bool]]:
            for packet in container.demux(stream):
                if packet.is_corrupt:
                    corrupt.add(packet.pts if packet.pts is not None else packet.dts)
                for frame in packet.decode():
                    yield frame, frame.pts in corrupt

        def convert(item: tuple[av.VideoFrame, bool]) -> tuple[np.ndarray, bool]:
            return frame_to_rgb(item[0]), item[1]

        try:
            with closing(ordered_map(convert, decoded(), DECODE_THREADS)) as frames:
                for rgb, damaged in frames:
                    if size is None:
                        size = rgb.shape
                    elif rgb.shape != size:
                        raise VideoError(
                            f"{source}: frame {n} is {rgb.shape[0]}x{rgb.shape[1]} but frame 0 is "
                            f"{size[0]}x{size[1]}"
                        )
                    if damaged:
                        warnings.warn(
                            f"{source}: frame {n} was decoded from damaged data (truncated or corrupt "
                            "file); it is kept, so frame numbers stay the file's, but it and the scores "
                            "around it are unreliable",
                            CorruptFrameWarning,
                            stacklevel=2,
                        )
                    yield rgb
                    n += 1
                    if max_frames is not None and n >= max_frames:
                        return
        except av.FFmpegError as e:
            raise VideoError(f"{source}: decoding stopped at frame {n}: {e}") from e
        # A truncated file decodes silently to fewer frames than its header says.
        if expected is not None and n < expected - slack:
            raise VideoError(
                f"{source}: decoding stopped at frame {n} but the header declares {expected} "
                "frames (truncated or corrupt file)"
            )
        if n == 0:
            raise VideoError(f"{source}: no frame could be decoded (decoding stopped at frame 0)")


def iter_frames(source, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Stream the frames of a video without holding it in memory.

    Parameters
    ----------
    source : str, PathLike or ndarray
        A video file (``.avi``, ``.mp4``, ``.mkv``, anything FFmpeg reads), a
        folder of image frames (``.jpg .jpeg .png .tif .tiff .bmp``, numeric
        order), a stream URL PyAV can open (``rtsp://...``, ``http://...``),
        or an already decoded ``(T, H, W[, C])`` array.
    max_frames : int, optional
        Stop after this many frames.

    Yields
    ------
    frame : (H, W, 3) ndarray of uint8
        RGB.

    Raises
    ------
    FileNotFoundError
        The path does not exist (raised at call time, not on first ``next``).
    VideoError
        Corrupt or truncated file (the message names the file and the frame
        where decoding stopped), or frames of different sizes in a folder.

    Warns
    -----
    CorruptFrameWarning
        A frame decoded from data the file holds only in part (typically the
        last frame of a cut-short AVI); the warning names the file and the
        frame, which is kept so that frame numbers stay the file's.
    """
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    if isinstance(source, np.ndarray):
        if source.ndim not in (3, 4):
            raise ValueError(f"expected a (T, H, W[, C]) array, got shape {source.shape}")
        return (to_rgb(f) for f in source[:max_frames])
    if _is_url(source):
        return _iter_container(source, max_frames)
    path = _check_exists(source)
    if path.is_dir():
        files = list_frame_files(path)
        if not files:
            raise VideoError(f"{path}: no image frames ({' '.join(IMAGE_EXTENSIONS)}) in folder")
        return _iter_folder(path, files, max_frames)
    return _iter_container(str(path), max_frames)


class _Raised:
    """An exception of the prefetch worker, carried to the consumer's thread."""

    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


def prefetch(items: Iterable[T], depth: int = 16) -> Iterator[T]:
    """Iterate ``items`` in a worker thread, up to ``depth`` items ahead.

    Scoring uses it so that decoding the next frames overlaps the model's
    forward pass (PyAV and the image readers release the GIL while they work).
    Items come out in order; an exception of ``items`` is raised at the item
    where it happened. Leaving the loop early stops the worker, which closes
    ``items`` (a generator must be closed in the thread that runs it).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Raised(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="sdmae-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join(timeout=5.0)


def read_video(source, max_frames: int | None = None) -> np.ndarray:
    """Decode a short video whole.

    Parameters
    ----------
    source : str, PathLike or ndarray
        See :func:`iter_frames`.
    max_frames : int, optional
        Keep only the first ``max_frames`` frames.

    Returns
    -------
    frames : (T, H, W, 3) ndarray of uint8
    """
    frames = list(iter_frames(source, max_frames))
    if not frames:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.stack(frames)


def video_info(source) -> VideoInfo:
    """Frame count, frame rate and size, without decoding where possible.

    Parameters
    ----------
    source : str, PathLike or ndarray
        See :func:`iter_frames`.

    Returns
    -------
    info : VideoInfo
    """
    if isinstance(source, np.ndarray):
        return VideoInfo(len(source), None, source.shape[1], source.shape[2])
    if not _is_url(source):
        path = _check_exists(source)
        if path.is_dir():
            files = list_frame_files(path)
            if not files:
                raise VideoError(f"{path}: no image frames in folder")
            try:
                with Image.open(files[0]) as im:  # reads the header only
                    w, h = im.size
            except OSError as e:
                raise VideoError(f"{path}: cannot decode frame 0 ({files[0].name}): {e}") from e
            return VideoInfo(len(files), None, h, w)
        source = str(path)
    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise VideoError(f"{source}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            h, w = stream.codec_context.height, stream.codec_context.width
            n = int(stream.frames) or None
            if n is None and not _is_url(source):
                # Matroska and friends store no count: count packets, no decoding.
                n = sum(1 for p in container.demux(stream) if p.size > 0)
    except av.FFmpegError as e:
        raise VideoError(f"{source}: cannot read video header: {e}") from e
    return VideoInfo(n, fps, h, w)


# --------------------------------------------------------------------------- writing


def _frame_list_check(frame: np.ndarray, size, i: int, what: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise TypeError(f"{what}: frame {i} has dtype {frame.dtype}, expected uint8")
    if size is not None and frame.shape != size:
        raise ValueError(f"{what}: frame {i} has shape {frame.shape}, frame 0 had {size}")
    return frame


def _default_codec(suffix: str) -> str:
    if suffix == ".avi":
        # Intra-only: every frame is a keyframe, so counts and seeking are exact.
        return "mjpeg"
    if "libx264" in av.codecs_available:
        return "libx264"
    return "mpeg4"


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    codec: str | None = None,
) -> Path:
    """Encode frames to a video file, atomically (temp file, then rename).

    Parameters
    ----------
    path : str or PathLike
        Destination; the container follows the extension (``.avi``, ``.mp4``,
        ``.mkv`` ...). The parent directory must exist.
    frames : (T, H, W, 3) ndarray of uint8, or iterable of (H, W, 3) / (H, W) uint8
        RGB (or grayscale) frames; an iterable is encoded as it is consumed.
    fps : float
        Frame rate.
    codec : str, optional
        FFmpeg encoder name. Default: ``mjpeg`` for ``.avi`` (high quality,
        intra-only), else ``libx264`` (CRF 18) or ``mpeg4`` when unavailable.

    Returns
    -------
    path : Path
    """
    path = Path(path)
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    codec = codec or _default_codec(path.suffix.lower())
    rate = Fraction(fps).limit_denominator(1001)
    it = iter(frames)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError(f"{path}: no frames to write") from None
    first = _frame_list_check(first, None, 0, str(path))
    size = first.shape
    h, w = size[:2]
    with atomic_write(path) as tmp, av.open(str(tmp), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = w, h
        if codec == "mjpeg":
            stream.pix_fmt = "yuvj444p"
            stream.codec_context.qmin, stream.codec_context.qmax = 1, 3  # near-lossless
        elif codec in ("libx264", "h264"):
            # 4:2:0 needs even sizes; 4:4:4 keeps odd sizes (and colours) intact.
            stream.pix_fmt = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"
            stream.options = {"crf": "18", "preset": "veryfast"}
        else:
            stream.pix_fmt = "yuv420p"
            stream.bit_rate = max(1_000_000, int(h * w * float(rate) * 2))
        i = 0
        frame = first
        while True:
            rgb = to_rgb(frame)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
            i += 1
            try:
                frame = _frame_list_check(next(it), size, i, str(path))
            except StopIteration:
                break
        for packet in stream.encode(None):  # flush delayed (B-)frames
            container.mux(packet)
    return path


def write_frames(
    folder: str | os.PathLike,
    frames: Iterable[np.ndarray],
    pattern: str = "{:03d}.jpg",
    start: int = 0,
    quality: int = 95,
) -> Path:
    """Write frames as numbered image files, the way frame-folder datasets ship.

    The folder is filled under a temporary name and renamed at the end, so a
    reader never sees half of it.

    Parameters
    ----------
    folder : str or PathLike
        Created; must not exist or be empty.
    frames : iterable of (H, W, 3), (H, W, 4) or (H, W) ndarray of uint8
        Saved as they are (grayscale stays grayscale; label maps keep values).
    pattern : str
        File name for frame number ``start + i``, e.g. ``"{:03d}.tif"``,
        ``"{:04d}_gt.png"``. The extension chooses the format.
    start : int
        Number of the first frame (UCSD counts from 1, ShanghaiTech from 0).
    quality : int
        JPEG quality.

    Returns
    -------
    folder : Path
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(f"{folder} exists and is not an empty folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{secrets.token_hex(4)}.tmp")
    tmp.mkdir()
    try:
        size = None
        for i, frame in enumerate(frames):
            frame = _frame_list_check(frame, size, i, str(folder))
            size = frame.shape
            name = pattern.format(start + i)
            kw = {"quality": quality} if Path(name).suffix.lower() in (".jpg", ".jpeg") else {}
            Image.fromarray(frame).save(tmp / name, **kw)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
