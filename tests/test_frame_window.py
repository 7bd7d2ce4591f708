"""FrameWindow: every centre handed out once, with the frames it reads, however the
frames arrive and however they are batched; the window stays bounded."""

import numpy as np
import pytest
import torch

from sdmae.streams import FrameWindow


def video(t_count: int) -> np.ndarray:
    """(T, 2, 3, 3) uint8 frames whose pixels hold their index: a window's frames say where they come from."""
    return np.broadcast_to(np.arange(t_count, dtype=np.uint8)[:, None, None, None], (t_count, 2, 3, 3)).copy()


def neighbourhoods(batches, reach: int) -> dict:
    """{key: the frame indices its centre reads (t - reach .. t + reach, clipped to the window)}."""
    out = {}
    for frames, centres, keys in batches:
        index = frames[:, 0, 0, 0].tolist()
        assert index == list(range(index[0], index[0] + len(index)))  # consecutive frames
        for c, k in zip(centres, keys):
            assert index[c] == k
            out[int(k)] = index[max(0, c - reach):c + reach + 1]
    return out


@pytest.mark.parametrize("reach", [0, 1, 3])
@pytest.mark.parametrize("t_count", [0, 1, 2, 3, 4, 7, 20, 33])
@pytest.mark.parametrize("batch", [None, 1, 4, 32])
def test_every_centre_once_with_the_frames_it_reads(reach, t_count, batch):
    frames = video(t_count)
    window, batches, held = FrameWindow(reach, batch), [], []
    for frame in frames:
        pushed = window.push(frame)
        if batch is not None:
            assert all(len(b.keys) == batch for b in pushed)  # pushes hand out full batches only
        batches += pushed
        held.append(window.arrived - window.first)
    closed = window.close()
    assert all(len(b.keys) <= (batch or t_count) for b in closed)
    batches += closed
    keys = [int(k) for b in batches for k in b.keys]
    assert keys == list(range(t_count))
    expected = {t: list(range(max(0, t - reach), min(t_count, t + reach + 1))) for t in range(t_count)}
    assert neighbourhoods(batches, reach) == expected  # as for the whole video at once
    assert max(held, default=0) <= (batch or 1) + 2 * reach
    assert window.close() == []


@pytest.mark.parametrize("batch", [1, 5, 32])
def test_one_by_one_as_a_stream_reads_what_batches_of_a_whole_video_read(batch):
    frames, reach = video(23), 3
    streamed = FrameWindow(reach)  # a live stream: each centre as soon as t + reach has arrived
    stream_batches = []
    for t, frame in enumerate(frames):
        ready = streamed.push(frame)
        assert [int(k) for b in ready for k in b.keys] == ([t - reach] if t >= reach else [])
        stream_batches += ready
    stream_batches += streamed.close()
    whole = list(FrameWindow(reach, batch).feed(frames))
    assert [len(b.keys) for b in whole] == [batch] * (23 // batch) + ([23 % batch] if 23 % batch else [])
    assert neighbourhoods(stream_batches, reach) == neighbourhoods(whole, reach)


def test_a_video_shorter_than_the_reach_is_scored_at_close():
    window = FrameWindow(reach=3, batch=8)
    assert window.push(video(2)[0]) == [] and window.push(video(2)[1]) == []
    (frames, centres, keys), = window.close()
    assert frames.shape == (2, 2, 3, 3) and centres.tolist() == [0, 1] and keys.tolist() == [0, 1]


def test_a_restarted_stream_goes_on_counting_and_tensor_frames_stay_tensors():
    window = FrameWindow(reach=1, batch=2, first=10)
    batches = list(window.feed(torch.from_numpy(video(4))))
    assert [b.keys.tolist() for b in batches] == [[10, 11], [12, 13]] and window.arrived == 14
    frames, centres, keys = batches[1]
    assert torch.is_tensor(frames) and frames[:, 0, 0, 0].tolist() == [1, 2, 3] and centres.tolist() == [1, 2]
