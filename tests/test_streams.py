"""StreamScorer under bad input: a bad frame or a resolution change costs one stream
one frame (or a restart), never the other streams or the stream's future."""

import numpy as np
import pytest

from sdmae.data import load_dataset, read_video
from sdmae.detector import Detector
from sdmae.streams import FrameError, StreamScorer, StreamWarning


@pytest.fixture(scope="module")
def detector(tiny_run):
    return Detector.load(tiny_run, precision="fp32")  # float32: stream == offline to 1e-5


@pytest.fixture(scope="module")
def clip(tiny_data):
    return read_video(load_dataset(tiny_data, "avenue", "test")[0].source)[:16]


def half_size(frames):
    return np.ascontiguousarray(frames[:, ::2, ::2])


def offline(detector, frames, first_index=0):
    """Offline raw scores of ``frames`` as one video whose frame indices start at ``first_index``."""
    n = len(frames)
    return detector.score_batch(np.asarray(frames), np.arange(n), np.arange(n) + first_index)[0]


def bad_frames(frame):
    return {
        "float dtype": frame.astype(np.float32),
        "grey": frame[..., 0],
        "four channels": np.concatenate([frame, frame[..., :1]], axis=-1),
        "empty": frame[:0],
        "ragged": [[1, 2], [3]],
    }


def test_push_many_bad_camera_costs_the_others_nothing(detector, clip):
    small = half_size(clip)
    bad = {4: clip[4].astype(np.float32), 7: clip[7][..., :2]}
    restart_at = 10  # camera c switches to half resolution from clip frame 10 on

    def run(with_c):
        scorer, got, rejected = StreamScorer(detector), {"a": [], "b": [], "c": []}, []
        for t in range(len(clip)):
            frames = {"a": clip[t], "b": clip[::-1][t]}
            if with_c:
                frames["c"] = bad.get(t, small[t] if t >= restart_at else clip[t])
            if with_c and (t in bad or t == restart_at):
                with pytest.warns(StreamWarning, match="stream 'c'"):
                    out = scorer.push_many(frames)
            else:
                out = scorer.push_many(frames)
            rejected += list(scorer.last_errors)
            for sid, item in out:
                got[sid].append(item)
        for sid in scorer.streams:
            got[sid] += scorer.close(sid)
        return got, rejected

    alone, _ = run(with_c=False)
    got, rejected = run(with_c=True)
    for sid in "ab":
        assert [s.index for s in got[sid]] == list(range(len(clip)))
        np.testing.assert_allclose([s.raw for s in got[sid]], [s.raw for s in alone[sid]], rtol=1e-5)
    assert rejected == ["c", "c"]
    # c went on after each bad frame: rejected frames take no index, the restart keeps counting
    good_old = [clip[t] for t in range(restart_at) if t not in bad]
    assert [s.index for s in got["c"]] == list(range(len(clip) - len(bad)))
    raw_c = [s.raw for s in got["c"]]
    np.testing.assert_allclose(raw_c[:len(good_old)], offline(detector, good_old), rtol=1e-5)
    np.testing.assert_allclose(raw_c[len(good_old):], offline(detector, small[restart_at:], len(good_old)),
                               rtol=1e-5)


@pytest.mark.parametrize("problem", list(bad_frames(np.zeros((2, 2, 3), np.uint8))))
def test_bad_frame_is_named_on_its_own_push_and_the_stream_goes_on(detector, clip, problem):
    scorer, got = StreamScorer(detector), []
    for frame in clip[:5]:
        got += scorer.push("gate", frame)
    with pytest.raises(FrameError, match=r"stream 'gate', frame 5 rejected: .*expected an \(H, W, 3\) uint8") as err:
        scorer.push("gate", bad_frames(clip[5])[problem])
    assert isinstance(err.value, ValueError) and (err.value.stream, err.value.index) == ("gate", 5)
    for frame in clip[5:8]:
        got += scorer.push("gate", frame)
    got += scorer.close("gate")
    assert [s.index for s in got] == list(range(8))
    np.testing.assert_allclose([s.raw for s in got], offline(detector, clip[:8]), rtol=1e-5)


def test_resolution_change_restarts_the_stream(detector, clip):
    small = half_size(clip)
    scorer = StreamScorer(detector)
    old = [s for frame in clip[:8] for s in scorer.push("a", frame)]
    with pytest.warns(StreamWarning, match=r"stream 'a': frame 8 is .*restarting"):
        old += scorer.push("a", small[8])
    # the old frames were all scored, as if the stream had been closed
    assert [s.index for s in old] == list(range(8))
    np.testing.assert_allclose([s.raw for s in old], offline(detector, clip[:8]), rtol=1e-5)
    new = [s for frame in small[9:] for s in scorer.push("a", frame)] + scorer.close("a")
    assert [s.index for s in new] == list(range(8, len(clip)))
    np.testing.assert_allclose([s.raw for s in new], offline(detector, small[8:], 8), rtol=1e-5)
    assert new[0].smoothed == new[0].raw  # the smoother restarted too


def test_close_after_resolution_change_discard_and_reuse(detector, clip):
    scorer = StreamScorer(detector)
    for frame in clip[:8]:
        scorer.push("a", frame)
    with pytest.warns(StreamWarning):
        scorer.push("a", clip[8][:30])  # the repro: a cropped frame used to break the stream for good
    assert [s.index for s in scorer.close("a")] == [8]
    assert scorer.streams == []

    for frame in clip[:5]:
        scorer.push("b", frame)
    scorer.push("c", clip[0])
    assert scorer.streams == ["b", "c"]
    scorer.discard("b")
    scorer.discard("unknown")
    assert scorer.streams == ["c"] and scorer.close("b") == []
    fresh = scorer.push("b", clip[0]) + scorer.close("b")
    assert [s.index for s in fresh] == [0]


def test_a_camera_reusing_its_output_buffer_does_not_change_buffered_frames(detector, clip):
    scorer, buffer, scores = StreamScorer(detector), np.empty_like(clip[0]), []
    for frame in clip:
        buffer[...] = frame  # like a capture API that fills the same array every time
        scores += scorer.push("cam", buffer)
    scores += scorer.close("cam")
    np.testing.assert_allclose([s.raw for s in scores], offline(detector, clip), rtol=1e-5, atol=1e-7)
