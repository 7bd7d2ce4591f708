"""``sdmae watch``: score cameras, streams and files as they play, and report anomaly events.

threads
    Each source has a decoder thread that puts its frames into a small
    bounded inbox. One main loop takes at most one frame from each inbox,
    scores them together (:meth:`StreamScorer.push_many`), feeds each frame's
    causally smoothed score to its stream's :class:`EventTracker`, and reports
    every event change: one line on stdout, one JSON object appended to the
    events file, and, with a clips folder, a short video of the event.

sources
    ``file``    a video file or frame folder, decoded as fast as the model
                takes it (no frame lost) or, with ``realtime``, at its own rate
    ``url``     rtsp://, http://, https:// ... (anything FFmpeg opens), paced by
                the stream's timestamps, so a served file plays like a camera
    ``device``  a V4L2 webcam (Linux): ``/dev/videoN``, or ``N`` for it
    A live source (and a file in real time) drops its oldest waiting frame
    when the model falls behind, so the scores never lag further and further
    behind the camera; frame numbers count the frames the source delivered,
    so event times stay those of the stream.

reconnects
    A source that fails to open or stops with an error, or a live source that
    ends, is opened again after 0.5, 1, 2, 4 ... s (capped at 10 s), up to
    ``reconnect_attempts`` failures in a row; then it is given up (one warning)
    and the others go on. A live source starts a new stream when it comes
    back (frame numbers from 0, new smoothing and events); a file goes on
    where it stopped. A file that ends normally is finished.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TextIO

from .errors import SdmaeError

__all__ = ["Source", "SourceStatus", "Watcher", "add_parser", "parse_source", "run"]

# Inbox size in frames: small, as every waiting frame of a live source is latency.
INBOX_FRAMES = 4
# A live stream's timestamps running this far ahead of the wall clock are a jump
# (a restarted encoder, a wrapped clock), not a reason to wait: the clock restarts.
MAX_AHEAD_SECONDS = 1.0
# PyAV's (open, read) timeouts for URLs: a silent server is a failure, not a hang.
URL_TIMEOUTS = (10.0, 10.0)
# How long shutdown waits for decoder threads (together) and for each clip being encoded.
DECODER_JOIN_SECONDS = 2.0
CLIP_JOIN_SECONDS = 30.0
IDLE_SLEEP_SECONDS = 0.005
# A frame rate above this is a stream's clock rate misreported as one; DEFAULT_FPS is used instead.
MAX_FPS = 240.0

_TERMINAL = ("ended", "given up", "stopped")


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """One source: ``given`` as the user wrote it, ``kind`` ("file", "url" or "device"),
    ``target`` what is opened, ``name`` how events and messages show it (the given
    string, with a URL's password hidden)."""

    given: str
    kind: str
    target: str
    name: str


def parse_source(text: str | int) -> Source:
    """``"0"`` -> /dev/video0; ``/dev/video*`` a webcam; ``scheme://...`` a stream; else a file."""
    text = str(text)
    if text.isdigit():
        return Source(text, "device", f"/dev/video{int(text)}", text)
    if text.startswith("/dev/video"):
        return Source(text, "device", text, text)
    if "://" in text:
        return Source(text, "url", text, _hide_password(text))
    return Source(text, "file", text, text)


def _hide_password(url: str) -> str:
    # Camera URLs carry credentials (rtsp://admin:secret@cam); events and logs must not.
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/:@]*):[^/@]*@", r"\1:***@", url)


def _safe_name(name: str) -> str:
    """A source name usable as part of a file name."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._")[:80] or "source"


@dataclass
class SourceStatus:
    """Where one source stands (read it from :attr:`Watcher.status`).

    state : "starting", "running", "reconnecting", or at the end "ended" (a file
        played to its end), "given up" (after the reconnect attempts) or "stopped"
    connections : times the source was opened and delivered frames (a reopened file that goes
        on where it stopped is the same connection)
    frames_scored : frames scored, all connections together
    last_frame : frame number of the last scored frame, None before any
    frames_dropped : frames dropped because the model was behind (live sources)
    error : the last failure, in words
    """

    source: str
    kind: str
    state: str = "starting"
    connections: int = 0
    frames_scored: int = 0
    last_frame: int | None = None
    frames_dropped: int = 0
    error: str | None = None


class _Inbox:
    """One source's waiting items, oldest first.

    Items are ("frame", sid, number, frame) or control items (a stream opened or
    closed, a message, the source's end), which are never dropped. At most
    ``size`` frames wait: then a live source's oldest frame is dropped, a file's
    decoder waits (so no frame of a file is lost).
    """

    def __init__(self, size: int, drop_oldest: bool):
        self.size, self.drop_oldest = size, drop_oldest
        self.dropped = 0
        self._items: deque = deque()
        self._frames = 0
        self._cond = threading.Condition()

    def put_frame(self, item: tuple, stop: threading.Event) -> bool:
        """Queue a frame; False if ``stop`` was set while waiting for room."""
        with self._cond:
            while self._frames >= self.size:
                if self.drop_oldest:
                    for i, old in enumerate(self._items):
                        if old[0] == "frame":
                            del self._items[i]
                            break
                    self._frames -= 1
                    self.dropped += 1
                elif stop.is_set():
                    return False
                else:
                    self._cond.wait(0.05)
            self._items.append(item)
            self._frames += 1
            return True

    def put(self, item: tuple) -> None:
        with self._cond:
            self._items.append(item)

    def get(self) -> tuple | None:
        with self._cond:
            if not self._items:
                return None
            item = self._items.popleft()
            if item[0] == "frame":
                self._frames -= 1
                self._cond.notify()
            return item


# --------------------------------------------------------------------------- decoding


def _open_file(source: Source) -> tuple[float | None, Iterator, Callable[[], None]]:
    """(fps, iterator of (frame, None), close) of a video file or frame folder."""
    from .data import iter_frames, video_info

    fps = video_info(source.target).fps
    frames = iter_frames(source.target)
    return fps, ((frame, None) for frame in frames), frames.close


def _open_live(source: Source) -> tuple[float | None, Iterator, Callable[[], None]]:
    """(fps, iterator of (frame, seconds or None), close) of a URL or webcam, with PyAV
    directly: its timestamps pace the stream, and it opens the camera once."""
    import av

    from .data.video import frame_to_rgb

    if source.kind == "device":
        container = av.open(source.target, format="v4l2")
    else:
        container = av.open(source.target, timeout=URL_TIMEOUTS)
    try:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
    except BaseException:
        container.close()
        raise

    def frames():
        for frame in container.decode(stream):
            yield frame_to_rgb(frame), frame.time

    return (float(rate) if rate else None), frames(), container.close


def _reason(exc: BaseException, source: Source) -> str:
    """A failure in words, without the source's name or password (the message adds the name)."""
    strerror = getattr(exc, "strerror", None)
    text = strerror if strerror and type(exc).__module__.startswith("av") else str(exc)
    text = text or type(exc).__name__
    for prefix in (f"{source.target}: ", f"{source.name}: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text.replace(source.target, source.name)


# --------------------------------------------------------------------------- clips


_END = object()


class _ClipWriter:
    """One event's clip, encoded in its own thread as its frames arrive, so neither the
    main loop waits for the encoder nor the whole clip sits in memory (only the frames
    not yet encoded, and at most ``limit`` frames in all)."""

    def __init__(self, folder: Path, stem: str, fps: float, limit: int, warn: Callable[[str], None]):
        self.folder, self.stem, self.fps = folder, stem, fps
        self.path: Path | None = None
        self._left = limit
        self._warn = warn
        self._queue: queue.Queue = queue.Queue()
        self._partial = folder / f".{stem}.{os.getpid()}.{id(self)}.partial.mp4"
        self._thread = threading.Thread(target=self._work, name=f"sdmae-clip-{stem}", daemon=True)
        self._thread.start()

    def add(self, frame) -> None:
        if self._left > 0:
            self._left -= 1
            self._queue.put(frame)

    def finish(self, path: Path) -> None:
        self.path = path
        self._queue.put(_END)

    @property
    def writing(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _frames(self):
        while (frame := self._queue.get()) is not _END:
            yield frame

    def _work(self) -> None:
        from .data import write_video

        try:
            write_video(self._partial, self._frames(), fps=self.fps)
            os.replace(self._partial, self.path)
        except Exception as exc:  # a clip lost is worth a warning, not the watch
            self._warn(f"clip {self.path or self.stem}: not written ({exc})")
            self._partial.unlink(missing_ok=True)


# --------------------------------------------------------------------------- streams


class _Stream:
    """One connection of one source, as the main loop sees it."""

    def __init__(self, source: Source, sid: Any, fps: float, tracker, recent_frames: int):
        self.source, self.sid, self.fps, self.tracker = source, sid, fps, tracker
        # stream frame numbers of the frames pushed to the scorer and not yet scored:
        # the scorer numbers the frames it took 0, 1, 2 ..., dropped frames make gaps here
        self.numbers: deque = deque()
        self.first_index = 0  # the scorer's index of numbers[0]
        self.recent: deque = deque(maxlen=recent_frames)  # (number, frame): the pre-roll of clips
        self.clip: _ClipWriter | None = None
        self.arrivals = 0

    def arrived(self, number: int, frame) -> None:
        self.arrivals += 1
        self.numbers.append(number)
        if self.recent.maxlen:
            self.recent.append((number, frame))
        if self.clip is not None:
            self.clip.add(frame)

    def number_of(self, index: int) -> int:
        while self.first_index < index:
            self.numbers.popleft()
            self.first_index += 1
        return self.numbers[0]


# --------------------------------------------------------------------------- watcher


class Watcher:
    """Watch several sources with one detector; report events as they start and end.

    Parameters
    ----------
    detector : a calibrated :class:`~sdmae.detector.Detector` (its ``stream_threshold``
        sets the alerts; without one, :class:`SdmaeError`)
    sources : strings as :func:`parse_source` reads them (distinct)
    events : JSON-lines file events are appended to, or None
    clips : folder for a clip of each event (``pre_seconds`` before its start up to its
        end and the frames that had arrived, at most ``max_clip_seconds``), or None
    realtime : play files at their frame rate (live sources always are)
    reconnect_attempts : failed reconnects in a row before a source is given up
    backoff, max_backoff : first wait before reconnecting, doubled each time up to the cap
    out, err : where event lines and warnings are printed
    on_event : called with each event record (the dict written to ``events``), in the main loop

    :meth:`run` blocks until every source has ended or been given up, ``max_seconds``
    have passed, :meth:`stop` is called (from any thread) or Ctrl-C; in every case
    every stream is closed, so each event that started also ends.
    """

    def __init__(self, detector, sources: Sequence[str | int], *, events: str | os.PathLike | None = None,
                 clips: str | os.PathLike | None = None, realtime: bool = False, reconnect_attempts: int = 5,
                 backoff: float = 0.5, max_backoff: float = 10.0, pre_seconds: float = 2.0,
                 max_clip_seconds: float = 30.0, out: TextIO | None = None, err: TextIO | None = None,
                 on_event: Callable[[dict], None] | None = None):
        from .streams import StreamScorer

        self.detector = detector
        self.threshold = detector.stream_threshold
        if self.threshold is None:
            raise SdmaeError(detector.uncalibrated_reason())
        self.sources = [parse_source(s) for s in sources]
        if not self.sources:
            raise SdmaeError("no sources to watch")
        seen = set()
        for source in self.sources:
            if source.given in seen:
                raise SdmaeError(f"source {source.name} is given twice")
            seen.add(source.given)
        if reconnect_attempts < 0:
            raise SdmaeError(f"reconnect_attempts must be >= 0, got {reconnect_attempts}")
        self.events_path = None if events is None else Path(events)
        self.clips = None if clips is None else Path(clips)
        self.realtime, self.reconnect_attempts = realtime, reconnect_attempts
        self.backoff, self.max_backoff = backoff, max_backoff
        self.pre_seconds, self.max_clip_seconds = pre_seconds, max_clip_seconds
        self.out, self.err, self.on_event = out, err, on_event
        self._scorer = StreamScorer(detector)
        self._stop = threading.Event()
        self._status = {s.given: SourceStatus(s.name, s.kind) for s in self.sources}
        self._inboxes = {s.given: _Inbox(INBOX_FRAMES, drop_oldest=s.kind != "file" or realtime)
                         for s in self.sources}
        self._streams: dict[Any, _Stream] = {}
        self._clip_writers: list[_ClipWriter] = []
        self._clip_names: set[str] = set()
        self._events_file: TextIO | None = None
        self._ran = False

    # ----------------------------------------------------------------- public

    @property
    def status(self) -> dict[str, SourceStatus]:
        """{source as given: its :class:`SourceStatus`}, live while :meth:`run` runs."""
        for given, status in self._status.items():
            status.frames_dropped = self._inboxes[given].dropped
        return self._status

    def stop(self) -> None:
        """Ask :meth:`run` to close every stream and return (thread-safe)."""
        self._stop.set()

    def run(self, max_seconds: float | None = None) -> dict[str, SourceStatus]:
        """Watch until every source has ended or been given up, ``max_seconds`` (wall
        time), :meth:`stop` or KeyboardInterrupt (re-raised once every stream is closed).
        Returns :attr:`status`. A watcher runs once."""
        if self._ran:
            raise RuntimeError("a Watcher runs once; make a new one")
        self._ran = True
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        threads = [threading.Thread(target=self._decode, args=(s, self._inboxes[s.given]),
                                    name=f"sdmae-watch-{s.name}", daemon=True) for s in self.sources]
        try:
            if self.events_path is not None:
                self._events_file = open(self.events_path, "a", encoding="utf-8")
            if self.clips is not None:
                self.clips.mkdir(parents=True, exist_ok=True)
            for thread in threads:
                thread.start()
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if not self._step():
                    if all(s.state in _TERMINAL for s in self._status.values()):
                        break
                    time.sleep(IDLE_SLEEP_SECONDS)
        finally:
            self._shutdown(threads)
        return self.status

    # ----------------------------------------------------------------- decoder threads

    def _decode(self, source: Source, inbox: _Inbox) -> None:
        """A source's decoder thread: open, put frames, reopen after failures."""
        try:
            self._decode_loop(source, inbox)
        except BaseException as exc:  # a bug here must not leave run() waiting for this source
            inbox.put(("done", "given up", f"{source.name}: decoder failed: {exc!r}"))

    def _decode_loop(self, source: Source, inbox: _Inbox) -> None:
        from .detector import DEFAULT_FPS

        stop, live = self._stop, source.kind != "file"
        pace = live or self.realtime
        failures = 0  # failed attempts since the last one that delivered a frame
        connection, sid = 0, None
        resume = 0  # a file's frames already delivered: a reopened file goes on from there
        while not stop.is_set():
            delivered, close = 0, None
            try:
                fps, frames, close = (_open_live if live else _open_file)(source)
                if not (fps and 0 < fps <= MAX_FPS):  # unknown, or a stream's clock rate (90000)
                    fps = DEFAULT_FPS
                if sid is None:
                    connection += 1
                    sid = (source.given, connection)
                    inbox.put(("open", sid, fps))
                clock = None  # (wall time, stream time) the pacing counts from
                for number, (frame, seconds) in enumerate(frames):
                    if number < resume:
                        continue
                    if pace:
                        seconds = number / fps if seconds is None else seconds
                        now = time.monotonic()
                        if clock is None or (seconds - clock[1]) - (now - clock[0]) > MAX_AHEAD_SECONDS:
                            clock = (now, seconds)
                        wait = clock[0] + (seconds - clock[1]) - now
                        if wait > 0 and stop.wait(wait):
                            break
                    if not inbox.put_frame(("frame", sid, number, frame), stop):
                        break
                    if not delivered and failures:
                        inbox.put(("note", f"{source.name}: reconnected"))
                    delivered += 1
                    if not live:
                        resume = number + 1
                if stop.is_set():
                    return
                if not live:
                    inbox.put(("close", sid))
                    inbox.put(("done", "ended", None))
                    return
                reason = "the stream ended"
            except Exception as exc:  # any failure of the source: reconnect, or give it up
                reason = _reason(exc, source)
            finally:
                if close is not None:
                    try:
                        close()
                    except Exception:
                        pass
            if stop.is_set():
                return
            if delivered:
                failures = 0
            if live and sid is not None:  # a live stream comes back as a new stream
                inbox.put(("close", sid))
                sid = None
            if failures >= self.reconnect_attempts:
                if sid is not None:
                    inbox.put(("close", sid))
                inbox.put(("done", "given up", f"{source.name}: {reason}; given up after "
                           f"{failures} reconnect attempt{'s' if failures != 1 else ''}"))
                return
            inbox.put(("lost", f"{source.name}: {reason}; reconnecting" if failures == 0 else None, reason))
            delay = min(self.backoff * 2 ** failures, self.max_backoff)
            failures += 1
            if stop.wait(delay):
                return

    # ----------------------------------------------------------------- main loop

    def _step(self) -> bool:
        """Take at most one frame of each source (and the control items before it), score
        them together. False when there was nothing to do."""
        frames, busy = {}, False
        for source in self.sources:
            inbox = self._inboxes[source.given]
            while (item := inbox.get()) is not None:
                busy = True
                if item[0] != "frame":
                    self._control(source, item)
                    continue
                _, sid, number, frame = item
                stream, status = self._streams[sid], self._status[source.given]
                if not stream.arrivals:
                    status.connections += 1
                status.state = "running"  # also after a file reopened in the same stream
                stream.arrived(number, frame)
                frames[sid] = frame
                break
        if frames:
            results = self._scorer.push_many(frames)
            for sid in self._scorer.last_errors:  # rejected: it took no index
                self._streams[sid].numbers.pop()
            for sid, score in results:
                self._scored(self._streams[sid], score)
        return busy

    def _control(self, source: Source, item: tuple) -> None:
        from .events import EventTracker

        kind, status = item[0], self._status[source.given]
        if kind == "open":
            _, sid, fps = item
            frames = self.detector.event_frames(fps)
            recent = 0
            if self.clips is not None:  # from pre_seconds before a start to its announcement
                recent = int(self.pre_seconds * fps) + frames["min_frames"] + self.detector.reach + 1
            self._streams[sid] = _Stream(source, sid, fps, EventTracker(self.threshold.value, **frames), recent)
        elif kind == "close":
            self._close_stream(item[1])
        elif kind == "note":
            print(f"sdmae watch: {item[1]}", file=self.err or sys.stderr, flush=True)
        elif kind == "lost":
            _, message, reason = item
            status.state, status.error = "reconnecting", reason
            if message:
                self._warn(message)
        elif kind == "done":
            _, state, message = item
            status.state = state
            if message:
                status.error = message
                self._warn(message)

    def _scored(self, stream: _Stream, score) -> None:
        number = stream.number_of(score.index)
        status = self._status[stream.source.given]
        status.frames_scored += 1
        status.last_frame = number
        for kind, event in stream.tracker.update(number, score.smoothed):
            self._emit(stream, kind, event)

    def _close_stream(self, sid: Any) -> None:
        """Score the stream's last frames and end its open event."""
        stream = self._streams.get(sid)
        if stream is None:
            return
        for score in self._scorer.close(sid):
            self._scored(stream, score)
        for kind, event in stream.tracker.close():
            self._emit(stream, kind, event)
        del self._streams[sid]

    def _emit(self, stream: _Stream, kind: str, event) -> None:
        peak = round(float(self.threshold.normalize([event.peak_score])[0]), 4)
        extra = {}
        if self.clips is not None:
            clip = self._clip(stream, kind, event)
            if clip is not None:
                extra["clip"] = str(clip)
        record = event.to_dict(stream.fps, type=kind, source=stream.source.name, peak_score=peak,
                               wall_time=datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **extra)
        if self._events_file is not None:
            self._events_file.write(json.dumps(record) + "\n")
            self._events_file.flush()  # a crash then loses nothing already reported
        print(_describe(record), file=self.out or sys.stdout, flush=True)
        if self.on_event is not None:
            self.on_event(record)

    def _clip(self, stream: _Stream, kind: str, event) -> Path | None:
        """Start the event's clip with the frames buffered since ``pre_seconds`` before its
        start; at its end, finish it (returns its path)."""
        if kind == "start":
            first = event.start_frame - int(self.pre_seconds * stream.fps)
            stem = f"{_safe_name(stream.source.name)}_{event.start_frame}"
            limit = int((self.pre_seconds + self.max_clip_seconds) * stream.fps)
            stream.clip = writer = _ClipWriter(self.clips, stem, stream.fps, limit, self._warn)
            self._clip_writers = [w for w in self._clip_writers if w.writing] + [writer]  # a watch runs for weeks
            for number, frame in stream.recent:
                if number >= first:
                    writer.add(frame)
            return None
        writer, stream.clip = stream.clip, None
        if writer is None:
            return None
        base = f"{_safe_name(stream.source.name)}_{event.start_frame}-{event.end_frame}"
        name, n = f"{base}.mp4", 1
        while name in self._clip_names or (self.clips / name).exists():  # a replayed stream, an earlier watch
            name, n = f"{base}_{n}.mp4", n + 1
        self._clip_names.add(name)
        writer.finish(self.clips / name)
        return self.clips / name

    def _warn(self, message: str) -> None:
        print(f"sdmae watch: warning: {message}", file=self.err or sys.stderr, flush=True)

    def _shutdown(self, threads: list[threading.Thread]) -> None:
        """Stop the decoders, close every stream (each open event gets its end), wait for the
        clips being written; every wait is bounded."""
        self._stop.set()
        deadline = time.monotonic() + DECODER_JOIN_SECONDS
        for thread in threads:
            if thread.ident is not None:  # started
                thread.join(max(0.0, deadline - time.monotonic()))
        try:
            for sid in list(self._streams):
                self._close_stream(sid)
            for status in self._status.values():
                if status.state not in _TERMINAL:
                    status.state = "stopped"
            for writer in self._clip_writers:  # every one finished: its event ended with its stream
                if not writer.join(CLIP_JOIN_SECONDS):
                    self._warn(f"clip {writer.path}: still being written after {CLIP_JOIN_SECONDS:g} s; "
                               "left unfinished")
        finally:
            if self._events_file is not None:
                self._events_file.close()
                self._events_file = None


def _describe(record: dict) -> str:
    """An event record as one line for people."""
    when = record["wall_time"]
    if record["type"] == "start":
        return (f"{when}  start  {record['source']}  frame {record['start_frame']} "
                f"({record.get('start_time', 0):.2f} s)  peak {record['peak_score']:.2f}")
    return (f"{when}  end    {record['source']}  frames {record['start_frame']}-{record['end_frame']} "
            f"({record.get('start_time', 0):.2f}-{record.get('end_time', 0):.2f} s)  peak "
            f"{record['peak_score']:.2f} at frame {record['peak_frame']}")


# --------------------------------------------------------------------------- command


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _attempts(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``watch`` to the ``sdmae`` subcommands (``sub``: from ``add_subparsers``); the
    options every scoring command shares (--false-alarm-rate, --device, --precision,
    --threads) are added by :mod:`sdmae.cli`, which also checks them and sets the threads."""
    w = sub.add_parser(
        "watch", help="watch live cameras, streams or videos and report anomaly events as they happen",
        description="Score cameras, network streams and video files as they play, all with one model, and "
        "report each anomaly event when it starts and when it ends: a line on stdout and a JSON object "
        "appended to --events. The alert threshold is the run's calibrated one (see sdmae calibrate). A "
        "source that drops is reconnected; one that stays away is given up with a warning while the "
        "others go on. Stop with Ctrl-C: open events are ended first.")
    w.add_argument("run", metavar="RUN", help="run directory written by sdmae train, with a calibration")
    w.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="what to watch: a video file or frame folder, a webcam (/dev/video0, or 0 for it), "
                   "or a stream URL (rtsp://, http://, https://)")
    w.add_argument("--events", default="events.jsonl", metavar="FILE",
                   help="JSON-lines file each event start and end is appended to (default: events.jsonl here)")
    w.add_argument("--save-clips", metavar="DIR",
                   help="also write a clip of each event to DIR (created): from 2 s before its start to its end, "
                   "at most 30 s")
    w.add_argument("--realtime", action="store_true",
                   help="play video files at their frame rate, like cameras (default: as fast as the model "
                   "scores them, no frame lost); streams and webcams always play in real time")
    w.add_argument("--max-seconds", type=_positive_seconds, metavar="S",
                   help="stop after S seconds (default: when every source has ended, or Ctrl-C)")
    w.add_argument("--reconnect-attempts", type=_attempts, default=5, metavar="N",
                   help="reconnect a source that fails up to N times in a row, waiting 0.5, 1, 2 ... 10 s "
                   "between tries, before giving it up (default 5)")
    return w


def _check_args(args: argparse.Namespace) -> list[Source]:
    """Refuse, before loading the model, what would only fail later."""
    sources = [parse_source(s) for s in args.sources]
    seen = {}
    for source in sources:
        if source.given in seen:
            raise SdmaeError(f"source {source.name} is given twice")
        seen[source.given] = source
        if source.kind == "file" and not Path(source.target).exists():
            raise SdmaeError(f"source {source.name}: no such video file or frame folder")
    events = Path(args.events)
    if events.is_dir():
        raise SdmaeError(f"--events {events} is a folder; give a file name")
    folder = events.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise SdmaeError(f"--events {events}: folder {folder} does not exist or is not writable")
    if args.save_clips is not None:
        try:
            Path(args.save_clips).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SdmaeError(f"--save-clips {args.save_clips}: cannot create the folder ({exc.strerror})") from None
        if not os.access(args.save_clips, os.W_OK | os.X_OK):
            raise SdmaeError(f"--save-clips {args.save_clips}: folder is not writable")
    return sources


def run(args: argparse.Namespace) -> int:
    """``sdmae watch``: 0 when stopped or when the sources ended, 1 when every source was given up."""
    from .cli import fast_score
    from .detector import Detector

    _check_args(args)
    alert = None if args.false_alarm_rate is None else {"false_alarm_rate": args.false_alarm_rate}
    detector = Detector.load(args.run, device=args.device, precision=args.precision, score=fast_score(args),
                             alert=alert)
    if detector.stream_threshold is None:
        raise SdmaeError(detector.uncalibrated_reason())
    shortfall = detector.calibration.shortfall(detector.cfg.alert.false_alarm_rate)
    if shortfall:
        print(f"sdmae watch: warning: {args.run}: {shortfall}", file=sys.stderr)
    watcher = Watcher(detector, args.sources, events=args.events, clips=args.save_clips, realtime=args.realtime,
                      reconnect_attempts=args.reconnect_attempts)
    try:
        status = watcher.run(max_seconds=args.max_seconds)
    except KeyboardInterrupt:  # the normal way to stop watching; the open events were ended
        print("sdmae watch: stopped", file=sys.stderr)
        return 0
    return 1 if all(s.state == "given up" for s in status.values()) else 0
