"""Alerts: the normalised score, events, calibration on held-back normal footage, and the CLI's outputs."""

import json

import numpy as np
import pytest

from sdmae.calibration import CALIBRATION_FILE, Calibration, CalibrationError, held_back
from sdmae.cli import main
from sdmae.config import Config, get_preset
from sdmae.data import load_dataset, read_video, write_video
from sdmae.detector import Detector
from sdmae.events import EventTracker, alert_mask, normalize, to_events
from sdmae.train import TrainFrames, TrainSamples


def test_normalize_is_half_at_the_threshold_and_monotone():
    s = np.linspace(-1, 3, 101)
    n = normalize(s, threshold=1.0, typical=0.5)
    assert normalize([1.0], 1.0, 0.5)[0] == 0.5
    assert normalize([0.5, 0.0, 1.5, 9.0], 1.0, 0.5).tolist() == [0.0, 0.0, 1.0, 1.0]
    assert np.all(np.diff(n) >= 0) and n.min() == 0 and n.max() == 1
    degenerate = normalize([0.9, 1.0, 1.1], threshold=1.0, typical=1.0)  # no spread: still a step at 0.5
    assert degenerate.tolist() == [0.0, 0.5, 1.0]


def test_events_merge_short_gaps_keep_the_peak_and_drop_short_ones():
    s = np.zeros(30)
    s[3:6] = [2, 5, 2]   # event A, peak at 4
    s[7] = 3             # one frame below between: merged into A with gap >= 1
    s[15] = 4            # a single frame: dropped with min_frames 2
    s[25:30] = 1.5       # open at the end: closed by the video's end
    events = to_events(s, threshold=1.0, gap=1, min_frames=2)
    assert [(e.start_frame, e.end_frame, e.peak_frame, e.peak_score) for e in events] == [
        (3, 7, 4, 5.0), (25, 29, 25, 1.5)]
    assert [(e.start_frame, e.end_frame) for e in to_events(s, 1.0, gap=0)] == [(3, 5), (7, 7), (15, 15), (25, 29)]
    mask = alert_mask(events, 30)
    assert mask[3:8].all() and mask[25:].all() and mask.sum() == 10


def test_the_tracker_announces_online_what_to_events_finds_offline():
    rng = np.random.default_rng(0)
    s = np.convolve(rng.random(300), np.ones(5) / 5, mode="same")
    tracker, started, ended = EventTracker(0.6, gap=3, min_frames=2), [], []
    for i, x in enumerate(s):
        for kind, e in tracker.update(i, x):
            (started if kind == "start" else ended).append(e)
            if kind == "start":  # announced as soon as it spans min_frames frames
                assert i == e.end_frame and e.frames >= 2 and i - e.start_frame < 2 + 3
            else:  # closed gap + 1 frames after its last frame above
                assert i == e.end_frame + 4
    ended += [e for _, e in tracker.close()]
    offline = to_events(s, 0.6, gap=3, min_frames=2)
    assert ended == offline and len(offline) > 2
    assert [e.start_frame for e in started] == [e.start_frame for e in offline]
    with pytest.raises(ValueError, match="increase"):
        tracker.update(5, 1.0)


def test_event_json_has_times_in_seconds():
    (event,) = to_events([0, 2, 3, 0], 1.0)
    d = event.to_dict(10.0, source="cam.mp4")
    assert d == {"source": "cam.mp4", "start_frame": 1, "end_frame": 2, "peak_frame": 2, "peak_score": 3.0,
                 "start_time": 0.1, "end_time": 0.3}


def test_held_back_takes_each_video_s_tail_or_every_nth_whole_video():
    assert held_back([100, 50], 0.1) == [(0, 90, 100)]  # 5 frames of the 50 are too few to hold back
    assert held_back([100] * 20, 0.1) == [(9, 0, 100), (19, 0, 100)]
    assert held_back([100], 0.0) == []


def test_held_back_frames_are_never_trained_on_nor_neighbours(tiny_data):
    cfg = get_preset("tiny", calibration_fraction=0.2)
    frames = TrainFrames.from_dataset(tiny_data, "avenue", cfg.model.input_size, progress=False)
    total = len(frames)
    held = frames.hold_back(0.2)
    assert [(v, a, b) for v, a, b in held] == [(0, 38, 48), (1, 38, 48)] and len(frames) == total - 20
    assert all(t < 38 for _, t in frames.index)
    samples = TrainSamples(frames, cfg, bank=None)
    # the last trained frame's later neighbours are clamped to it, not read from the held-back frames
    last = int(np.nonzero((frames.index[:, 0] == 0) & (frames.index[:, 1] == 37))[0][0])
    centre = samples[last]["inputs"][3:6]
    assert np.array_equal(samples[last]["inputs"][6:9], centre)
    frames.hold_back(0.0)
    assert len(frames) == total


def test_a_trained_run_is_calibrated_on_its_held_back_frames(tiny_run):
    cal = Calibration.load(tiny_run)
    assert cal.frames == 20 and len(cal.segments) == 2 and "held-back" in cal.source
    detector = Detector.load(tiny_run)
    t, live = detector.threshold, detector.stream_threshold
    smoothed = cal.smoothed(detector.cfg.score.smoothing_sigma)
    assert t.typical < t.value and (smoothed > t.value).mean() <= detector.cfg.alert.false_alarm_rate
    assert live is not None and live.value >= cal.extrapolated(detector.cfg.alert.false_alarm_rate)
    # with frames enough for the rate, each smoothing has its own empirical threshold
    roomy = Detector.load(tiny_run, alert={"false_alarm_rate": 0.3})
    assert roomy.stream_threshold.value != roomy.threshold.value
    assert detector.normalize([t.value])[0] == 0.5
    # scores made with other settings have no threshold from these
    other = Detector.load(tiny_run, score={"top_fraction": 0.5})
    assert other.threshold is None
    with pytest.raises(CalibrationError, match="other score settings"):
        other.normalize([0.0])
    assert Detector.load(tiny_run, score={"smoothing_sigma": 0.0}).threshold is not None  # smoothing is free
    looser = Detector.load(tiny_run, alert={"false_alarm_rate": 0.5}).threshold  # the median
    assert looser.value <= t.value


def test_a_damaged_calibration_file_is_named(tiny_run, tmp_path):
    (tmp_path / CALIBRATION_FILE).write_text('{"format": 1, "segments": [[1.0, NaN]]}')
    with pytest.raises(CalibrationError, match=str(tmp_path / CALIBRATION_FILE)):
        Calibration.load(tmp_path)
    assert Calibration.load(tmp_path / "nowhere") is None


def test_score_writes_normalized_alert_and_events(tiny_run, tiny_data, tmp_path):
    import shutil
    from dataclasses import asdict

    record = load_dataset(tiny_data, "avenue", "test")[0]
    video = write_video(tmp_path / "cam.mp4", read_video(record.source), fps=10)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    # calibrated on this very video: at a false-alarm rate of 30 %, about 30 % of its frames alert
    detector = Detector.load(run)
    Calibration((detector.score_video(video).raw,), asdict(detector.cfg.score), "cam.mp4").save(run)
    out = tmp_path / "scores"
    assert main(["score", str(run), str(video), "--out", str(out), "--false-alarm-rate", "0.3"]) == 0
    rows = [line.split(",") for line in (out / "cam.csv").read_text().splitlines()]
    assert rows[0] == ["frame", "score", "smoothed", "normalized", "alert"]
    normalized = np.array([float(r[3]) for r in rows[1:]])
    alert = np.array([int(r[4]) for r in rows[1:]])
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events and alert.any()
    for e in events:
        assert set(e) >= {"source", "start_frame", "end_frame", "peak_frame", "peak_score", "start_time",
                          "end_time"}
        assert e["source"] == str(video) and e["peak_score"] >= 0.5
        assert e["start_time"] == pytest.approx(e["start_frame"] / 10) and alert[e["start_frame"]] == 1
        assert normalized[e["peak_frame"]] == pytest.approx(e["peak_score"], abs=1e-4)
        assert alert[e["start_frame"]:e["end_frame"] + 1].all()
    assert alert.sum() == sum(e["end_frame"] - e["start_frame"] + 1 for e in events)


def test_calibrate_rewrites_the_calibration_from_a_folder_of_videos(tiny_run, tiny_data, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / CALIBRATION_FILE).unlink()
    assert Detector.load(run).threshold is None
    out = tmp_path / "scores"
    video = load_dataset(tiny_data, "avenue", "test")[0].source
    assert main(["score", str(run), str(video), "--out", str(out)]) == 0
    assert "warning: " in capsys.readouterr().err  # one line that says how to calibrate
    assert not (out / "events.jsonl").exists()
    assert (out / f"{video.stem}.csv").read_text().splitlines()[0] == "frame,score,smoothed"
    normal = tmp_path / "normal"
    normal.mkdir()
    for rec in load_dataset(tiny_data, "avenue", "train"):
        shutil.copy(rec.source, normal / rec.source.name)
    assert main(["calibrate", str(run), "--data", str(normal)]) == 0
    assert "alert threshold" in capsys.readouterr().out
    cal = Calibration.load(run)
    assert cal.frames == 96 and "2 videos" in cal.source
    assert Detector.load(run).threshold is not None


def test_calibrate_refuses_an_empty_folder(tiny_run, tmp_path, capsys):
    assert main(["calibrate", str(tiny_run), "--data", str(tmp_path)]) == 2
    assert "no video files" in capsys.readouterr().err


def test_a_config_written_before_alerts_loads_with_defaults_and_no_holdout():
    d = get_preset("tiny").to_dict()
    del d["version"], d["alert"], d["train"]["calibration_fraction"]
    cfg = Config.from_dict(d)
    assert cfg.train.calibration_fraction == 0.0 and cfg.alert.false_alarm_rate == 0.01


def test_runs_are_the_maximal_stretches_of_true():
    from sdmae.events import runs

    assert runs([0, 1, 1, 0, 1]) == [(1, 3), (4, 5)]
    assert runs([]) == [] and runs([1, 1]) == [(0, 2)]


def test_too_few_calibration_frames_for_the_rate_are_said():
    cal = Calibration((np.zeros(40),), {}, "test")
    assert "holds 40 normal frames" in cal.shortfall(0.01) and "about 500" in cal.shortfall(0.01)
    assert cal.shortfall(0.2) is None


def test_a_short_calibration_extrapolates_its_quantile_and_a_long_one_counts_it():
    rng = np.random.default_rng(0)
    true_quantile = np.exp(-2.0 + 2.326 * 0.3)  # 99th percentile of the log-normal below
    long = Calibration((np.exp(rng.normal(-2.0, 0.3, 5000)),), {}, "test")
    assert long.extrapolated(0.01) == pytest.approx(true_quantile, rel=0.05)
    # 5000 frames show the 1 % quantile: it is counted, not fitted
    counted = np.quantile(long.smoothed(0.0), 0.99, method="higher")
    assert long.threshold(0.0, 0.01).value == counted
    short = Calibration((long.segments[0][:40],), {}, "test")
    t = short.threshold(3.0, 0.01)
    assert t.value == short.extrapolated(0.01) > short.smoothed(3.0).max()
    assert abs(np.log(t.value / true_quantile)) < 0.3
    # scores that are not all positive fit no log-normal: the counted quantile stands
    flat = Calibration((np.zeros(40),), {}, "test")
    assert flat.extrapolated(0.01) == -np.inf and flat.threshold(3.0, 0.01).value == 0.0


def test_alert_quality_counts_normal_frames_alerted_and_segments_found():
    from sdmae.metrics import alert_quality

    scores = [np.array([0, 0, 2, 2, 0, 0, 0, 2.0]), np.array([0, 0, 0, 0.0])]
    labels = [np.array([0, 0, 1, 1, 1, 0, 0, 0]), np.array([0, 1, 1, 0])]
    q = alert_quality(scores, labels, threshold=1.0)
    # video 0: event 2-3 on the segment, event 7 on a normal frame; video 1: its segment missed
    assert q == {"normal_alerted": 1 / 7, "segments": 2, "segments_found": 1, "events": 2}
    assert alert_quality(scores, labels, 1.0, gap=[3, 0])["normal_alerted"] == 3 / 7  # 2-7 one event


def test_evaluate_reports_the_alerts_of_a_calibrated_run(tiny_run, tiny_data, capsys):
    assert main(["evaluate", str(tiny_run), "--data", str(tiny_data), "--layout", "avenue", "--no-maps"]) == 0
    out = capsys.readouterr().out
    assert "abnormal segments found" in out and "normal test frames alerted" in out


def test_the_fast_score_has_its_own_calibration(tiny_run, tiny_data, tmp_path):
    from sdmae.calibration import load_calibrations
    from sdmae.config import FAST_SCORE

    default, fast = load_calibrations(tiny_run)
    assert default.score["test_masks"] == 2 and fast.score["test_masks"] == 1 and fast.frames == default.frames
    one_pass = Detector.load(tiny_run, score=FAST_SCORE)
    assert one_pass.calibration.score == fast.score and one_pass.threshold is not None
    assert one_pass.threshold != Detector.load(tiny_run).threshold
    video = load_dataset(tiny_data, "avenue", "test")[0].source
    assert main(["score", str(tiny_run), str(video), "--out", str(tmp_path / "o"), "--fast"]) == 0
    assert (tmp_path / "o" / "events.jsonl").exists()


def test_a_calibration_file_of_the_first_format_still_loads(tmp_path):
    from sdmae.calibration import load_calibrations

    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(
        {"format": 1, "source": "s", "frames": 3, "score": {"test_masks": 2}, "segments": [[0.1, 0.2, 0.3]]}))
    (cal,) = load_calibrations(tmp_path)
    assert cal.frames == 3 and cal.score == {"test_masks": 2}
