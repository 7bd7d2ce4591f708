"""sdmae watch: live sources, reconnects, events that always end, real-time pacing, the command line."""

import contextlib
import dataclasses
import functools
import io
import json
import shutil
import threading
import time
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from sdmae.calibration import Calibration
from sdmae.cli import build_parser, main
from sdmae.data import load_dataset, read_video, video_info, write_video
from sdmae.detector import Detector
from sdmae.errors import SdmaeError
from sdmae.watch import Watcher, _Inbox, parse_source, run

FRAMES = 48  # every tiny_data video


@pytest.fixture(scope="module", autouse=True)
def one_model_thread():
    """One torch thread: on a 2-core machine shared with other jobs, two OpenMP threads ran the
    tiny model at 3 frames/s instead of 127 at one, and the decoder threads need the CPU too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def low_run(tiny_run, tiny_data, tmp_path_factory):
    """A copy of the tiny run calibrated on negative scores: the stream threshold lies below
    every real score (they are >= 0), so each stream is one event from its first frame."""
    run_dir = tmp_path_factory.mktemp("watch") / "run"
    shutil.copytree(tiny_run, run_dir)
    detector = Detector.load(run_dir)
    raw = detector.score_video(load_dataset(tiny_data, "avenue", "test")[0].source).raw
    Calibration((raw - raw.max() - 1e-3,), dataclasses.asdict(detector.cfg.score), "test").save(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def detector(low_run):
    detector = Detector.load(low_run, alert={"false_alarm_rate": 0.5})
    assert detector.stream_threshold.value < 0
    return detector


@pytest.fixture(scope="module")
def videos(tiny_data):
    """Four 48-frame video files at 25 fps."""
    records = load_dataset(tiny_data, "avenue", "test") + load_dataset(tiny_data, "avenue", "train")
    return [str(r.source) for r in records[:4]]


@contextlib.contextmanager
def http_server(folder, requests_served=None):
    """A loopback HTTP server of ``folder``; with ``requests_served``, requests after that
    many get 503 and the server shuts down once it has served them."""
    served, enough = [], threading.Event()

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):
            if requests_served is not None and len(served) >= requests_served:
                self.send_error(503)
                return
            super().do_GET()
            served.append(self.path)
            if requests_served is not None and len(served) >= requests_served:
                enough.set()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    closed = threading.Event()

    def close():
        if not closed.is_set():
            closed.set()
            server.shutdown()
            server.server_close()

    if requests_served is not None:
        threading.Thread(target=lambda: enough.wait() and close(), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        enough.set()
        close()


def serve_copy(video, folder):
    """Re-encode ``video`` as folder/cam.mkv (Matroska plays over HTTP without seeking)."""
    folder.mkdir()
    write_video(folder / "cam.mkv", read_video(video), fps=25)


def run_in_thread(watcher, done, limit):
    """Run the watcher until ``done(status)`` (then stop it) or ``limit`` seconds."""
    errors = []

    def target():
        try:
            watcher.run(max_seconds=limit)
        except BaseException as exc:  # raised again in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive() and not done(watcher.status):
        time.sleep(0.05)
    watcher.stop()
    thread.join(30)
    assert not thread.is_alive(), "the watcher did not stop"
    if errors:
        raise errors[0]


def read_events(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def check_pairs(records, sources):
    """Per source, events alternate start / end, each end closing the start before it;
    returns {source: [(start, end), ...]}."""
    pairs = {}
    for r in records:
        assert r["source"] in sources
        assert r["type"] in ("start", "end")
        assert 0.5 <= r["peak_score"] <= 1.0  # normalised; events are at or above the threshold
        assert r["start_frame"] <= r["peak_frame"] <= r["end_frame"]
        assert datetime.fromisoformat(r["wall_time"]).utcoffset().total_seconds() == 0
        fps = 25.0
        assert r["start_time"] == round(r["start_frame"] / fps, 3)
        assert r["end_time"] == round((r["end_frame"] + 1) / fps, 3)
        mine = pairs.setdefault(r["source"], [])
        if r["type"] == "start":
            assert not mine or mine[-1][1] is not None, f"{r['source']}: two starts in a row"
            mine.append((r, None))
        else:
            assert mine and mine[-1][1] is None, f"{r['source']}: an end without a start"
            start = mine[-1][0]
            assert r["start_frame"] == start["start_frame"] and r["end_frame"] >= start["end_frame"]
            mine[-1] = (start, r)
    for source, mine in pairs.items():
        assert mine[-1][1] is not None, f"{source}: a start that never ended"
    return pairs


def watch_threads():
    return [t for t in threading.enumerate() if t.name.startswith("sdmae-watch-") and t.is_alive()]


def test_four_files_and_an_http_stream(detector, videos, tmp_path):
    serve_copy(videos[0], tmp_path / "www")
    events, clips, out = tmp_path / "events.jsonl", tmp_path / "clips", io.StringIO()
    with http_server(tmp_path / "www") as (base, _):
        url = f"{base}/cam.mkv"
        watcher = Watcher(detector, videos + [url], events=events, clips=clips, backoff=0.05, out=out,
                          err=io.StringIO())

        def done(status):  # the files played, the stream played once and came back
            return all(status[v].state == "ended" for v in videos) and status[url].connections >= 2

        run_in_thread(watcher, done, limit=45)
    status = watcher.status
    for v in videos:  # every frame of every file scored, once
        assert (status[v].state, status[v].frames_scored, status[v].last_frame) == ("ended", FRAMES, FRAMES - 1)
        assert status[v].frames_dropped == 0
    # a live source drops frames when the model is behind, never more than it was sent
    assert status[url].frames_scored + status[url].frames_dropped >= FRAMES
    records = read_events(events)
    pairs = check_pairs(records, videos + [url])
    assert set(pairs) == set(videos) | {url}
    for v in videos:  # the threshold is below every score: one event, the whole file
        [(start, end)] = pairs[v]
        assert (start["start_frame"], end["end_frame"], end["end_time"]) == (0, FRAMES - 1, FRAMES / 25)
        clip = Path(end["clip"])
        assert clip.parent == clips and video_info(clip).num_frames == FRAMES
    assert len(pairs[url]) >= 1
    assert len(out.getvalue().splitlines()) == len(records)
    assert not [p for p in clips.iterdir() if p.name.startswith(".")]  # no partial clip left


def test_lost_stream_is_given_up_and_others_go_on(detector, videos, tmp_path):
    serve_copy(videos[0], tmp_path / "www")
    events, err = tmp_path / "events.jsonl", io.StringIO()
    with http_server(tmp_path / "www", requests_served=1) as (base, served):
        url = f"{base}/cam.mkv"
        watcher = Watcher(detector, videos[:2] + [url], events=events, reconnect_attempts=2, backoff=0.05,
                          out=io.StringIO(), err=err)
        start = time.monotonic()
        status = watcher.run(max_seconds=40)
        elapsed = time.monotonic() - start
    assert elapsed < 30, "the watcher waited for a source that was gone"
    assert served == ["/cam.mkv"]
    for v in videos[:2]:
        assert (status[v].state, status[v].frames_scored) == ("ended", FRAMES)
    lost = status[url]
    assert lost.state == "given up" and lost.connections == 1
    assert lost.frames_scored + lost.frames_dropped == FRAMES  # its one connection, to the end
    warnings = err.getvalue().splitlines()
    given_up = [w for w in warnings if "given up" in w]
    assert given_up == [w for w in given_up if w.startswith(f"sdmae watch: warning: {url}: ")]
    assert len(given_up) == 1 and "2 reconnect attempts" in given_up[0]
    pairs = check_pairs(read_events(events), videos[:2] + [url])
    assert len(pairs[url]) == 1
    time.sleep(0.2)
    assert not watch_threads()


@pytest.mark.parametrize("how", ["stop", "ctrl-c"])
def test_stopping_ends_open_events(detector, videos, tmp_path, how):
    events, seen = tmp_path / "events.jsonl", []

    def on_event(record):
        seen.append(record)
        if record["type"] == "start" and len(seen) == 1:
            if how == "stop":
                watcher.stop()
            else:
                raise KeyboardInterrupt

    watcher = Watcher(detector, videos[:2], events=events, realtime=True, out=io.StringIO(), on_event=on_event)
    with pytest.raises(KeyboardInterrupt) if how == "ctrl-c" else contextlib.nullcontext():
        watcher.run(max_seconds=30)
    records = read_events(events)
    assert records == seen and records[0]["type"] == "start"
    pairs = check_pairs(records, videos[:2])
    for source, mine in pairs.items():
        assert mine[-1][1]["end_frame"] < FRAMES - 1  # ended by the stop, mid-stream
    assert all(s.state == "stopped" for s in watcher.status.values())


def test_command_with_max_seconds(low_run, videos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["watch", str(low_run), videos[0], "--realtime", "--max-seconds", "0.8",
                 "--false-alarm-rate", "0.5"]) == 0
    [start, end] = read_events(tmp_path / "events.jsonl")  # the default file, here
    assert (start["type"], end["type"], start["source"]) == ("start", "end", videos[0])
    assert end["end_frame"] < FRAMES - 1


def test_realtime_file_plays_at_its_frame_rate(detector, videos, tmp_path):
    clip = write_video(tmp_path / "clip24.mp4", read_video(videos[0]), fps=24)
    seen = []
    watcher = Watcher(detector, [str(clip)], realtime=True, out=io.StringIO(), on_event=seen.append)
    start = time.monotonic()
    status = watcher.run(max_seconds=30)
    assert time.monotonic() - start >= 1.5  # 48 frames at 24 fps: the last one is due at 1.96 s
    assert status[str(clip)].state == "ended"
    assert status[str(clip)].frames_scored + status[str(clip)].frames_dropped == FRAMES
    assert (seen[-1]["type"], seen[-1]["end_frame"], seen[-1]["end_time"]) == ("end", FRAMES - 1, 2.0)


def test_arguments_and_uncalibrated_run(tiny_run, videos, tmp_path):
    parser = build_parser()  # sdmae's, with the options cli adds to watch
    args = parser.parse_args(["watch", "runs/r", "cam.mp4", "0", "rtsp://admin:secret@cam/live", "--events",
                              "e.jsonl", "--save-clips", "clips", "--realtime", "--max-seconds", "2.5",
                              "--reconnect-attempts", "3", "--false-alarm-rate", "0.02", "--device", "cpu",
                              "--precision", "fp32", "--threads", "2"])
    assert (args.command, args.run) == ("watch", "runs/r")
    assert args.sources == ["cam.mp4", "0", "rtsp://admin:secret@cam/live"]
    assert (args.events, args.save_clips, args.realtime, args.max_seconds) == ("e.jsonl", "clips", True, 2.5)
    assert (args.reconnect_attempts, args.false_alarm_rate, args.device, args.precision, args.threads) == \
        (3, 0.02, "cpu", "fp32", 2)
    defaults = parser.parse_args(["watch", "r", "a.mp4"])
    assert (defaults.events, defaults.save_clips, defaults.realtime, defaults.max_seconds,
            defaults.reconnect_attempts, defaults.false_alarm_rate, defaults.device, defaults.precision,
            defaults.threads) == ("events.jsonl", None, False, None, 5, None, "cpu", "auto", None)
    for bad in (["--max-seconds", "0"], ["--reconnect-attempts", "-1"], ["--device", "tpu"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["watch", "r", "a.mp4", *bad])

    assert parse_source("0").target == "/dev/video0" and parse_source("/dev/video2").kind == "device"
    cam = parse_source("rtsp://admin:secret@cam/live")
    assert cam.kind == "url" and "secret" not in cam.name and cam.target.endswith("secret@cam/live")
    assert parse_source(videos[0]).kind == "file"

    missing = parser.parse_args(["watch", str(tiny_run), str(tmp_path / "nope.mp4")])
    with pytest.raises(SdmaeError, match="nope.mp4"):
        run(missing)

    uncalibrated = tmp_path / "run"
    shutil.copytree(tiny_run, uncalibrated)
    (uncalibrated / "calibration.json").unlink()
    args = parser.parse_args(["watch", str(uncalibrated), videos[0], "--events", str(tmp_path / "e.jsonl")])
    with pytest.raises(SdmaeError, match="sdmae calibrate"):
        run(args)
    assert not (tmp_path / "e.jsonl").exists()


def test_inbox_drops_oldest_live_frame_but_never_control_items():
    stop = threading.Event()
    live = _Inbox(2, drop_oldest=True)
    live.put(("open", "s", 25.0))
    for n in range(4):
        assert live.put_frame(("frame", "s", n, None), stop)
    live.put(("close", "s"))
    items = [live.get() for _ in range(4)]
    assert [i[0] for i in items] == ["open", "frame", "frame", "close"]
    assert [i[2] for i in items[1:3]] == [2, 3] and live.dropped == 2 and live.get() is None

    file = _Inbox(1, drop_oldest=False)  # a file's decoder waits for room, until stopped
    assert file.put_frame(("frame", "f", 0, None), stop)
    stop.set()
    assert not file.put_frame(("frame", "f", 1, None), stop)
    assert file.dropped == 0 and file.get()[2] == 0


@pytest.mark.slow
def test_soak_four_files_and_a_replayed_stream(detector, videos, tmp_path):
    """30 s: the HTTP stream ends and comes back every ~2 s while the files play in real time."""
    serve_copy(videos[0], tmp_path / "www")
    events = tmp_path / "events.jsonl"
    with http_server(tmp_path / "www") as (base, served):
        url = f"{base}/cam.mkv"
        watcher = Watcher(detector, videos + [url], events=events, clips=tmp_path / "clips", realtime=True,
                          backoff=0.05, out=io.StringIO(), err=io.StringIO())
        status = watcher.run(max_seconds=30)
    assert all(status[v].state == "ended" for v in videos)
    assert status[url].state == "stopped" and status[url].connections >= 8 and len(served) >= 8
    pairs = check_pairs(read_events(events), videos + [url])
    assert len(pairs[url]) == status[url].connections
    assert not [p for p in (tmp_path / "clips").iterdir() if p.name.startswith(".")]
    time.sleep(0.5)
    assert not watch_threads()
