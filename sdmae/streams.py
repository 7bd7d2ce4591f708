"""Frame windows and live streams.

The score of frame t reads frames t - reach .. t + reach (``Detector.reach``),
so frames are buffered in a :class:`FrameWindow` until every centre that
needs them is scored. :meth:`Detector.score_frames` runs a video through one
window, closed at its end; :class:`StreamScorer` keeps one window per live
stream and scores their ready centres together.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, NamedTuple

import numpy as np
import torch

from . import kernels
from .errors import SdmaeError
from .postprocess import CausalSmoother

if TYPE_CHECKING:
    from .detector import Detector


class WindowBatch(NamedTuple):
    """Centres ready to score and the frames they read (``Detector.score_batch``'s arguments).

    frames : (T, H, W, 3) uint8, the window's frames (stacked as pushed: NumPy or torch)
    centres : (N,) int64 indices into ``frames``
    keys : (N,) int64 global frame indices (the masks' seeds)
    """

    frames: Any
    centres: np.ndarray
    keys: np.ndarray


class FrameWindow:
    """One stream's frames, kept until every centre that reads them is handed out.

    Centre t is ready once frame t + ``reach`` has arrived, or at :meth:`close`
    (prepare clamps the missing frames to the last one, as for a whole video).
    :meth:`push` returns the batches that became ready: ``batch`` centres each,
    or all ready centres in one batch when ``batch`` is None; :meth:`close`
    returns the rest, ``batch`` at most each. The window holds at most
    ``batch + 2 * reach`` frames.

    first : the global index of the first frame pushed (a restarted stream goes on counting)
    """

    def __init__(self, reach: int, batch: int | None = None, first: int = 0):
        self.reach, self.batch = reach, batch
        self.first = first  # global index of _frames[0]
        self.next_centre = first  # the first centre not yet handed out
        self._frames: deque = deque()

    @property
    def arrived(self) -> int:
        """The global index the next frame gets."""
        return self.first + len(self._frames)

    def push(self, frame: Any) -> list[WindowBatch]:
        """Buffer the next (H, W, 3) uint8 frame; the batches it made ready."""
        self._frames.append(frame)
        return self._batches(self.arrived - self.reach, whole=True)

    def close(self) -> list[WindowBatch]:
        """The centres left: the stream ended, their later frames never come."""
        return self._batches(self.arrived, whole=False)

    def feed(self, frames: Iterable[Any]) -> Iterator[WindowBatch]:
        """Every batch of a finite stream: push each frame, then close."""
        for frame in frames:
            yield from self.push(frame)
        yield from self.close()

    def _batches(self, stop: int, whole: bool) -> list[WindowBatch]:
        """Batches of the centres before ``stop``; ``whole``: full ones only."""
        out = []
        while (n := stop - self.next_centre) > 0:
            if self.batch is not None:
                if whole and n < self.batch:
                    break
                n = min(n, self.batch)
            out.append(self._cut(n))
        return out

    def _cut(self, n: int) -> WindowBatch:
        """The next ``n`` centres; then drop the frames no later centre reads."""
        keys = np.arange(self.next_centre, self.next_centre + n)
        frames = list(self._frames)
        stacked = torch.stack(frames) if torch.is_tensor(frames[0]) else np.stack(frames)  # (T, H, W, 3)
        batch = WindowBatch(stacked, keys - self.first, keys)
        self.next_centre += n
        while self.first < self.next_centre - self.reach:
            self._frames.popleft()
            self.first += 1
        return batch


@dataclass
class StreamScore:
    """One frame's score from :meth:`Detector.stream`: ``index`` is the frame number."""

    index: int
    raw: float
    smoothed: float


class FrameError(SdmaeError):
    """A frame :class:`StreamScorer` rejected. ``stream`` and ``index`` (the index the
    frame would have had) name it; the stream goes on without it."""

    def __init__(self, stream: Any, index: int, problem: str):
        super().__init__(f"stream {stream!r}, frame {index} rejected: {problem}; expected an (H, W, 3) uint8 "
                         "array (the stream goes on without it)")
        self.stream, self.index = stream, index


class StreamWarning(UserWarning):
    """A stream restarted at a new resolution, or ``push_many`` rejected a frame."""


@dataclass
class _Stream:
    size: tuple[int, int]  # (H, W) of every frame of this stream
    smoother: CausalSmoother
    window: FrameWindow


class StreamScorer:
    """Several live streams batched through one model.

    ``push(stream_id, frame)`` returns the scores that became ready (possibly
    of several frames); ``push_many({id: frame, ...})`` takes one frame of each
    of several streams and scores what became ready in shared forward passes
    (up to the detector's batch size: batch 1 per camera ran at 210 frames/s
    against 1850 at 32 for the tiny preset on a CPU); ``close(stream_id)``
    scores the stream's last frames; ``discard(stream_id)`` drops a stream
    without scoring them; ``streams`` lists the live ids. A closed or discarded
    id pushed again starts a new stream at frame 0. Scores equal offline
    scoring of the same frames before smoothing (to 1e-5 in float32, ~1e-3 in
    bf16).

    Frames are checked on arrival: one that is not an (H, W, 3) uint8 array
    is rejected with a :class:`FrameError` (a ValueError) naming the stream
    and the frame's index, and is not buffered: it takes no index and the
    stream goes on with the next frame. ``push`` raises it; ``push_many``
    scores the other streams' frames as usual, warns (:class:`StreamWarning`)
    and keeps the errors in ``last_errors`` ({stream_id: FrameError}, reset by
    every ``push_many``).

    A frame of another resolution than the stream's earlier ones restarts the
    stream, with a :class:`StreamWarning`: the frames buffered at the old size
    are scored as if the stream had been closed (their scores are returned by
    that same call), then a new stream (edges, smoothing) starts at the new
    size. Its frame indices go on counting from the old ones, and, as ever,
    the index seeds the frame's masks.
    """

    def __init__(self, detector: Detector):
        self.detector = detector
        self._streams: dict[Any, _Stream] = {}
        self.last_errors: dict[Any, FrameError] = {}

    @property
    def streams(self) -> list:
        """The ids of the live streams."""
        return list(self._streams)

    def push(self, sid: Any, frame: np.ndarray) -> list[StreamScore]:
        """One frame of one stream; raises :class:`FrameError` for a bad frame."""
        return self._score_ready(self._admit(sid, self._check(sid, frame)))

    def push_many(self, frames: dict[Any, np.ndarray]) -> list[tuple[Any, StreamScore]]:
        """One frame for each of several streams, scored in one batch. A bad frame is
        rejected without failing the call: see the class docstring."""
        self.last_errors, ready = {}, []
        for sid, frame in frames.items():
            try:
                checked = self._check(sid, frame)
            except FrameError as error:
                self.last_errors[sid] = error
                warnings.warn(str(error), StreamWarning, stacklevel=2)
                continue
            ready += self._admit(sid, checked)
        return self._score_ready(ready, tagged=True)

    def close(self, sid: Any) -> list[StreamScore]:
        """Score the stream's last frames and end it."""
        if sid not in self._streams:
            return []
        stream = self._streams[sid]
        out = self._score_ready([(sid, stream, stream.window.close())])
        del self._streams[sid]
        return out

    def discard(self, sid: Any) -> None:
        """End the stream without scoring its last frames (no-op for an unknown id)."""
        self._streams.pop(sid, None)

    def _check(self, sid: Any, frame: Any) -> np.ndarray:
        """The frame as an array. A bad one raises FrameError now: buffered, it would fail
        every later push of its stream and of the streams batched with it."""
        stream = self._streams.get(sid)
        index = stream.window.arrived if stream else 0
        try:
            a = np.array(frame)  # a copy: cameras often reuse one output buffer for every frame
        except (TypeError, ValueError, RuntimeError) as error:
            raise FrameError(sid, index, f"cannot be read as an array ({error})") from None
        if a.ndim != 3 or a.shape[2] != 3:
            raise FrameError(sid, index, f"shape {a.shape}")
        if a.shape[0] == 0 or a.shape[1] == 0:
            raise FrameError(sid, index, f"empty, shape {a.shape}")
        if a.dtype != np.uint8:
            raise FrameError(sid, index, f"dtype {a.dtype}")
        return a

    def _admit(self, sid: Any, frame: np.ndarray) -> list[tuple[Any, _Stream, list[WindowBatch]]]:
        """Buffer a checked frame, restarting the stream if its size changed; returns the
        (id, stream, ready batches) entries to score."""
        stream, size, ending = self._streams.get(sid), frame.shape[:2], []
        if stream is None or size != stream.size:
            start = 0
            if stream is not None:
                start = stream.window.arrived
                warnings.warn(f"stream {sid!r}: frame {start} is {size[0]}x{size[1]}, earlier frames "
                              f"{stream.size[0]}x{stream.size[1]}; restarting the stream at the new size (its "
                              "buffered frames are scored as if closed)", StreamWarning, stacklevel=3)
                ending = [(sid, stream, stream.window.close())]
            stream = self._streams[sid] = _Stream(size, CausalSmoother(self.detector.cfg.score.smoothing_sigma),
                                                  FrameWindow(self.detector.reach, first=start))
        return ending + [(sid, stream, stream.window.push(frame))]

    def _score_ready(self, ready: list[tuple[Any, _Stream, list[WindowBatch]]], tagged: bool = False) -> list:
        """Score the streams' ready batches; they share forward passes of up to the
        detector's batch size."""
        results, pending, count = [], [], 0
        for sid, stream, batches in ready:
            for frames, centres, keys in batches:
                pending.append((sid, stream, keys, self.detector.prepare(frames, centres)))
                count += len(keys)
                if count >= self.detector.batch_size:
                    results += self._score_pending(pending, tagged)
                    pending, count = [], 0
        if pending:
            results += self._score_pending(pending, tagged)
        return results

    def _score_pending(self, pending: list, tagged: bool) -> list:
        """One forward pass for the prepared samples of one or more streams."""
        preps = [prep for *_, prep in pending]
        if len(preps) == 1:
            prep = preps[0]
        else:
            cat = torch.cat if torch.is_tensor(preps[0].inputs) else np.concatenate
            prep = kernels.Prepared(cat([p.inputs for p in preps]), None, cat([p.weights for p in preps]))
        raw, _ = self.detector.score_prepared(prep, np.concatenate([keys for _, _, keys, _ in pending]))
        results, start = [], 0
        for sid, stream, keys, _ in pending:
            for t, r in zip(keys, raw[start:start + len(keys)]):
                item = StreamScore(int(t), float(r), float(stream.smoother(float(r))))
                results.append((sid, item) if tagged else item)
            start += len(keys)
        return results
