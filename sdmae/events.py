"""From frame scores to alerts: the normalised score and anomaly events.

normalised score
    ``normalize(scores, threshold, typical)``: 0.5 at the alert threshold,
    0 at or below ``typical`` (the median normal frame of the calibration), 1
    at or above ``threshold + (threshold - typical)``, linear in between. One
    number then reads the same in every run and scene: above 0.5 alerts, and
    the distance from 0.5 is measured in the spread of normal frames.

events
    Frames whose score reaches the threshold form events. An event opens at
    its first such frame and closes once ``gap`` consecutive frames have
    stayed below (hysteresis in time: a flicker below the threshold does not
    split one anomaly in two); its end is its last frame at or above the
    threshold. Events with fewer than ``min_frames`` frames are dropped.
    :class:`EventTracker` does this online, frame by frame (a live camera);
    :func:`to_events` is the same tracker run over a whole video.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Event", "EventTracker", "alert_mask", "frames_for", "normalize", "runs", "to_events"]


def normalize(scores, threshold: float, typical: float) -> np.ndarray:
    """Scores -> [0, 1], 0.5 at ``threshold``, 0 at or below ``typical``, monotone.

    ``typical`` must lie below ``threshold`` (calibration gives the median and a
    high quantile of normal scores); if it does not, the scale is a tiny positive
    number, so the result is still monotone and 0.5 at the threshold.
    """
    s = np.asarray(scores, dtype=np.float64)
    spread = threshold - typical
    if not spread > 0:
        spread = max(abs(threshold), 1.0) * 1e-9
    return np.clip(0.5 + 0.5 * (s - threshold) / spread, 0.0, 1.0)


def frames_for(seconds: float, fps: float) -> int:
    """A duration in seconds as a whole number of frames (at least 0)."""
    return max(0, int(math.ceil(seconds * fps - 1e-9)))


@dataclass
class Event:
    """One anomaly: frames ``start_frame`` .. ``end_frame`` (inclusive), scores at or above
    the threshold at both ends; ``peak_score`` is the highest score, at ``peak_frame``."""

    start_frame: int
    end_frame: int
    peak_frame: int
    peak_score: float

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame + 1

    def to_dict(self, fps: float | None = None, **extra) -> dict:
        """JSON-able; with ``fps``, also ``start_time`` and ``end_time`` in seconds of the
        video (the end of the last frame). ``extra`` fields come first and win (a
        normalised ``peak_score``)."""
        out = {**extra, **asdict(self), **extra}
        if fps:
            out["start_time"] = round(self.start_frame / fps, 3)
            out["end_time"] = round((self.end_frame + 1) / fps, 3)
        return out


class EventTracker:
    """Events of one stream, online.

    ``update(index, score)`` takes the next frame's score and returns the
    changes it made: ``("start", event)`` when an event reaches ``min_frames``
    frames (its start is its first frame, already past), ``("end", event)``
    when ``gap`` frames have passed below the threshold. ``close()`` ends an
    open event at the end of the stream. Frame indices must increase.
    """

    def __init__(self, threshold: float, gap: int = 0, min_frames: int = 1):
        if gap < 0 or min_frames < 1:
            raise ValueError(f"gap must be >= 0 and min_frames >= 1, got gap={gap}, min_frames={min_frames}")
        self.threshold, self.gap, self.min_frames = float(threshold), int(gap), int(min_frames)
        self.open: Event | None = None  # the current event, announced or not
        self.announced = False
        self._last = None

    def update(self, index: int, score: float) -> list[tuple[str, Event]]:
        index, score = int(index), float(score)
        if self._last is not None and index <= self._last:
            raise ValueError(f"frame indices must increase: {index} after {self._last}")
        self._last = index
        changes = []
        event = self.open
        if event is not None and index - event.end_frame > self.gap and score < self.threshold:
            changes += self.close()
            event = None
        if score >= self.threshold:
            if event is None:
                event = self.open = Event(index, index, index, score)
            else:
                event.end_frame = index
                if score > event.peak_score:
                    event.peak_frame, event.peak_score = index, score
            if not self.announced and event.frames >= self.min_frames:
                self.announced = True
                changes.append(("start", Event(**asdict(event))))
        return changes

    def close(self) -> list[tuple[str, Event]]:
        """End the open event (if it was long enough to be announced)."""
        event, announced = self.open, self.announced
        self.open, self.announced = None, False
        return [("end", event)] if event is not None and announced else []


def to_events(scores, threshold: float, gap: int = 0, min_frames: int = 1) -> list[Event]:
    """The events of a whole video's scores (frame i is ``scores[i]``)."""
    tracker, events = EventTracker(threshold, gap, min_frames), []
    for i, s in enumerate(np.asarray(scores, dtype=np.float64)):
        events += [e for kind, e in tracker.update(i, s) if kind == "end"]
    return events + [e for _, e in tracker.close()]


def alert_mask(events: list[Event], frames: int) -> np.ndarray:
    """(frames,) uint8: 1 for the frames inside an event."""
    mask = np.zeros(frames, np.uint8)
    for e in events:
        mask[e.start_frame:e.end_frame + 1] = 1
    return mask


def runs(mask) -> list[tuple[int, int]]:
    """(T,) booleans -> [start, stop) of every maximal run of True (abnormal segments
    of frame labels, events of an alert mask)."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask).astype(bool).astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist()))
