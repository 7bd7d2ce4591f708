"""Video I/O: files, frame folders, conversions, atomic writes and clear errors."""

import errno
import os
import warnings

import av
import numpy as np
import pytest
from PIL import Image

from sdmae.data import (
    VideoError,
    atomic_write,
    iter_frames,
    list_frame_files,
    prefetch,
    read_video,
    video_info,
    write_frames,
    write_video,
)
from sdmae.data import video
from sdmae.data.video import CorruptFrameWarning, ordered_map, read_label_image, to_rgb

MAX_CODEC_ERROR = 8.0  # mean |decoded - written| in grey levels for the lossy codecs


def smooth_frames(rng, t=8, h=24, w=32):
    """Smooth moving content: what codecs are built for (noise would test the codec, not us)."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([yy * 255 / h, xx * 255 / w, (yy + xx) * 127 / (h + w)], axis=-1)
    frames = [np.roll(base, 2 * k, axis=1) + rng.normal(0, 2, base.shape) for k in range(t)]
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True, params=[0, 2], ids=["inline", "2 decode threads"])
def decode_threads(request, monkeypatch):
    """Every test runs with frames converted in the decoding thread (small machines) and
    in worker threads (where cores are plenty): the frames, errors and warnings must not
    depend on it."""
    monkeypatch.setattr(video, "DECODE_THREADS", request.param)
    return request.param


@pytest.fixture
def frames():
    return smooth_frames(np.random.default_rng(0))


@pytest.mark.parametrize("ext", [".avi", ".mp4", ".mkv"])
def test_video_file_round_trip(tmp_path, frames, ext):
    path = write_video(tmp_path / f"clip{ext}", frames, fps=12.5)
    out = read_video(path)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - frames).mean() < MAX_CODEC_ERROR
    info = video_info(path)
    assert (info.num_frames, info.size) == (len(frames), frames.shape[1:3])
    assert info.fps == pytest.approx(12.5)
    streamed = list(iter_frames(path))
    assert len(streamed) == len(frames) and all(f.shape == frames.shape[1:] for f in streamed)
    assert len(read_video(path, max_frames=3)) == 3


@pytest.mark.parametrize("ext", [".avi", ".mp4"])
def test_odd_frame_size_is_kept(tmp_path, ext):
    frames = smooth_frames(np.random.default_rng(1), t=4, h=25, w=33)
    assert read_video(write_video(tmp_path / f"odd{ext}", frames)).shape == frames.shape


def test_write_video_accepts_a_generator_and_grayscale(tmp_path, frames):
    gray = frames[..., 0]
    path = write_video(tmp_path / "g.avi", (g for g in gray), fps=25)
    out = read_video(path)
    assert out.shape == frames.shape
    assert np.abs(out[..., 1].astype(int) - gray).mean() < MAX_CODEC_ERROR


def test_write_video_is_atomic(tmp_path, frames):
    def broken():
        yield frames[0]
        yield frames[1][:10]  # wrong shape half way

    with pytest.raises(ValueError, match="frame 1"):
        write_video(tmp_path / "bad.mp4", broken())
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temp file
    with pytest.raises(TypeError, match="uint8"):
        write_video(tmp_path / "f.avi", frames.astype(np.float32))
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "e.avi", [])


def test_frame_folder_numeric_order_ignores_hidden_and_other_files(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(12):  # unpadded names: 9.png must come before 10.png
        Image.fromarray(np.full((6, 8, 3), 10 * k, np.uint8)).save(folder / f"{k}.png")
    (folder / "._3.png").write_bytes(b"\x00\x05macOS resource fork")
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / "notes.txt").write_text("not a frame")
    assert [p.name for p in list_frame_files(folder)][8:11] == ["8.png", "9.png", "10.png"]
    out = read_video(folder)
    assert out.shape == (12, 6, 8, 3)
    np.testing.assert_array_equal(out[:, 0, 0, 0], 10 * np.arange(12))
    info = video_info(folder)
    assert (info.num_frames, info.fps, info.size) == (12, None, (6, 8))


def test_grayscale_rgba_palette_and_16bit_frames_become_rgb(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.full((4, 5), 100, np.uint8)).save(folder / "000.tif")  # grayscale
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = (10, 20, 30), 128
    Image.fromarray(rgba).save(folder / "001.png")
    palette = Image.fromarray(np.full((4, 5, 3), (200, 50, 0), np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.save(folder / "002.png")
    Image.fromarray(np.full((4, 5), 65535, np.uint16)).save(folder / "003.tif")  # 16 bit
    Image.fromarray(np.full((4, 5, 3), 7, np.uint8)).save(folder / "004.bmp")
    out = read_video(folder)
    assert out.shape == (5, 4, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, 0, 0], [[100] * 3, [10, 20, 30], [200, 50, 0], [255] * 3, [7] * 3])


@pytest.mark.parametrize(
    "image, expected",
    [
        (np.full((2, 3), True), 255),
        (np.full((2, 3), 0.5, np.float32), 128),
        (np.full((2, 3, 1), 9, np.uint8), 9),
        (np.full((2, 3, 2), 9, np.uint8), 9),
        (np.full((2, 3), 300, np.int32), 255),
        (np.full((2, 3), 32896, np.uint16), 128),
    ],
)
def test_to_rgb(image, expected):
    out = to_rgb(image)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert (out == expected).all()


def test_label_images_keep_their_values(tmp_path):
    ids = np.array([[0, 1, 2], [3, 0, 7]], np.uint8)
    Image.fromarray(ids).save(tmp_path / "ids.png")
    np.testing.assert_array_equal(read_label_image(tmp_path / "ids.png"), ids)
    Image.fromarray(np.repeat(ids[..., None] * 30, 3, axis=2)).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_label_image(tmp_path / "rgb.png"), ids * 30)
    (tmp_path / "cut.png").write_bytes((tmp_path / "rgb.png").read_bytes()[:40])
    with pytest.raises(VideoError, match=r"cut\.png: cannot read the label image"):
        read_label_image(tmp_path / "cut.png")


def test_mixed_frame_sizes_name_the_first_odd_frame(tmp_path):
    folder = tmp_path / "v"
    folder.mkdir()
    for k, w in enumerate([8, 8, 9, 8]):
        Image.fromarray(np.zeros((6, w, 3), np.uint8)).save(folder / f"{k:03d}.jpg")
    with pytest.raises(VideoError, match=r"frame 2 \(002\.jpg\) is 6x9.*6x8"):
        read_video(folder)


def test_missing_path_raises_at_call_time(tmp_path):
    missing = tmp_path / "nope.avi"
    for fn in (iter_frames, read_video, video_info):
        with pytest.raises(FileNotFoundError, match="nope.avi"):
            fn(missing)  # iter_frames too: before the first next()


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(VideoError, match="no image frames"):
        read_video(tmp_path)


@pytest.mark.filterwarnings("ignore::sdmae.data.video.CorruptFrameWarning")  # the cut frame; the error is tested
@pytest.mark.parametrize("ext", [".avi", ".mkv"])
def test_truncated_video_names_file_and_frame(tmp_path, ext):
    frames = smooth_frames(np.random.default_rng(2), t=20)
    path = write_video(tmp_path / f"cut{ext}", frames)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=rf"cut{ext}.*decoding stopped at frame \d+"):
        read_video(path)
    # Streaming yields the frames before the cut, then raises.
    got = []
    with pytest.raises(VideoError):
        for f in iter_frames(path):
            got.append(f)
    assert len(got) < 20


def cut_inside_last_frame(path):
    """Cut a video file in the middle of its last frame's data: the frame count in
    the header stays, and the last frame decodes, silently, from half its data."""
    with av.open(str(path)) as container:
        last = [p for p in container.demux(video=0) if p.size][-1]
    data = path.read_bytes()
    path.write_bytes(data[: last.pos + last.size // 2])
    return path


def test_frame_decoded_from_a_cut_short_packet_is_kept_with_a_warning(tmp_path):
    frames = smooth_frames(np.random.default_rng(3), t=12, h=96, w=128)
    path = cut_inside_last_frame(write_video(tmp_path / "cut.avi", frames))
    with pytest.warns(CorruptFrameWarning, match=r"cut\.avi: frame 11 .*damaged") as caught:
        got = read_video(path)
    assert len(caught) == 1
    assert len(got) == 12  # kept: frame numbers stay the file's
    assert np.abs(got[:11].astype(int) - frames[:11]).mean() < MAX_CODEC_ERROR


def test_intact_video_decodes_without_warnings(tmp_path, frames):
    path = write_video(tmp_path / "clip.avi", frames)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_video(path)) == len(frames)


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 300])
def test_garbage_file_is_a_video_error(tmp_path, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match="broken.mp4.*frame 0"):
        read_video(path)


def test_arrays_are_sources_too(frames):
    assert read_video(frames[..., 0]).shape == frames.shape  # (T, H, W) grayscale
    assert len(list(iter_frames(frames, max_frames=2))) == 2
    assert video_info(frames).num_frames == len(frames)


def test_write_frames_numbering_and_refusal_to_overwrite(tmp_path, frames):
    folder = write_frames(tmp_path / "Test001", frames[..., 0], "{:03d}.tif", start=1)
    assert [p.name for p in list_frame_files(folder)][:2] == ["001.tif", "002.tif"]
    np.testing.assert_array_equal(read_video(folder)[..., 2], frames[..., 0])  # lossless, gray
    with pytest.raises(FileExistsError):
        write_frames(folder, frames)
    assert [p.name for p in tmp_path.iterdir()] == ["Test001"]  # no temp folders left


def test_atomic_write(tmp_path):
    target = tmp_path / "a.npy"
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".npy"
        np.save(tmp, np.arange(3))
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            np.save(tmp, np.arange(5))
            raise RuntimeError("interrupted")
    np.testing.assert_array_equal(np.load(target), np.arange(3))  # old content intact
    assert sorted(os.listdir(tmp_path)) == ["a.npy"]
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "missing_dir" / "x.txt"):
            pass


def test_atomic_write_reports_the_error_that_stopped_it(tmp_path, monkeypatch):
    """On a read-only file system, removing the temporary file fails too; that
    second error must not hide the first."""
    def read_only(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr("sdmae.data.io.os.remove", read_only)
    with pytest.raises(PermissionError, match="first"):
        with atomic_write(tmp_path / "x.txt"):
            raise PermissionError(errno.EACCES, "first")


def test_prefetch_keeps_order_and_matches_direct_decoding(tmp_path, frames):
    path = write_video(tmp_path / "clip.avi", frames)
    direct = list(iter_frames(path))
    ahead = list(prefetch(iter_frames(path), depth=2))
    assert len(ahead) == len(direct) and all(np.array_equal(a, b) for a, b in zip(ahead, direct))
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))
    with pytest.raises(ValueError, match="depth"):
        next(prefetch([1], depth=0))


@pytest.mark.filterwarnings("ignore::sdmae.data.video.CorruptFrameWarning")  # the cut frame; the error is tested
def test_prefetch_raises_where_decoding_stopped(tmp_path):
    path = write_video(tmp_path / "cut.avi", smooth_frames(np.random.default_rng(2), t=20))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    got = []
    with pytest.raises(VideoError, match=r"cut\.avi.*decoding stopped at frame \d+"):
        for f in prefetch(iter_frames(path), depth=4):
            got.append(f)
    assert 0 < len(got) < 20


def test_prefetch_stops_and_closes_the_source_when_left_early():
    import threading

    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    for i in prefetch(endless(), depth=2):
        if i == 5:
            break
    assert closed.wait(5.0)
    assert not any(t.name == "sdmae-prefetch" and t.is_alive() for t in threading.enumerate())


def test_ordered_map_keeps_order_raises_at_the_item_and_stops_early():
    import threading
    import time

    def slow_square(x):
        time.sleep(0.001 * (7 - x % 7))  # later items often finish first
        if x == 13:
            raise ValueError("item 13")
        return x * x

    assert list(ordered_map(slow_square, range(13), 3)) == [x * x for x in range(13)]
    got = []
    with pytest.raises(ValueError, match="item 13"):
        for y in ordered_map(slow_square, range(20), 3):
            got.append(y)
    assert got == [x * x for x in range(13)]
    started = []

    def record(x):
        started.append(x)
        return x

    it = ordered_map(record, iter(range(1000)), 2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()  # stops the workers: the rest of the items is never read
    assert len(started) < 10
    assert not [t for t in threading.enumerate() if t.name.startswith("sdmae-decode")]
