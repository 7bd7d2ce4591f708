"""The sdmae command end to end, and its errors."""

import json
import os
import subprocess
import sys

import av
import numpy as np
import pytest

from sdmae.cli import build_parser, main, output_names
from sdmae.data import LAYOUTS, load_dataset, read_video, write_frames, write_video
from sdmae.errors import SdmaeError


def test_evaluate_writes_the_metrics(tiny_run, tiny_data, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(tiny_run), "--data", str(tiny_data), "--layout", "avenue", "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    for key in ("micro_auc", "macro_auc", "rbdc", "tbdc", "frames", "fps", "settings"):
        assert key in metrics
    assert metrics["frames"] == 96
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("| 0") or line.startswith("| 1"))
    assert row.split("|")[1].strip() == f"{metrics['micro_auc']:.4f}"  # the table shows the file's numbers
    assert row.split("|")[2].strip() == f"{metrics['macro_auc']:.4f}"


def test_score_writes_csv_plot_and_overlay(tiny_run, tiny_data, tmp_path):
    clip = read_video(load_dataset(tiny_data, "avenue", "test")[0].source)[:12]
    video = write_video(tmp_path / "cam.mp4", clip, fps=10)
    out = tmp_path / "scores"
    assert main(["score", str(tiny_run), str(video), "--out", str(out), "--overlay"]) == 0
    rows = (out / "cam.csv").read_text().splitlines()
    assert rows[0] == "frame,score,smoothed,normalized,alert" and len(rows) == 13
    assert (out / "cam.png").stat().st_size > 1000
    assert len(read_video(out / "cam_overlay.mp4")) == 12


@pytest.mark.parametrize("args,words", [
    (["evaluate", "no-such-run", "--data", "."], "run directory not found: no-such-run"),
    (["score", "no-such-run", "x.mp4", "--out", "o"], "run directory not found"),
    (["train", "--data", "no-such-data", "--out", "r"], "no such directory"),
    (["train", "--data", ".", "--out", "r", "--input-size", "65x96"], "not a multiple of patch"),
])
def test_errors_are_clear_and_exit_non_zero(tmp_path, monkeypatch, capsys, args, words):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


def test_layout_that_does_not_match(tiny_run, tiny_data, capsys):
    assert main(["evaluate", str(tiny_run), "--data", str(tiny_data), "--layout", "shanghaitech"]) == 2
    assert "shanghaitech" in capsys.readouterr().err


def test_unreadable_video(tiny_run, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 2048)
    assert main(["score", str(tiny_run), str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "broken.mp4" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "sdmae", "demo", "--out", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "demo" / "report" / "metrics.json").read_text())
    assert metrics["micro_auc"] >= 0.90
    assert np.isfinite(metrics["fps"])


@pytest.mark.integration  # a real process per layout
@pytest.mark.parametrize("layout", ["avenue", "shanghaitech", "ped2", "ubnormal", "folder"])
def test_evaluate_and_score_every_layout(tiny_run, tmp_path, layout):
    from sdmae.data import make_dataset

    data = make_dataset(tmp_path / layout, layout=layout, seed=1, num_train=1, num_test=2, num_frames=72)
    out = tmp_path / "m.json"
    assert main(["evaluate", str(tiny_run), "--data", str(data), "--layout", layout, "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["frames"] == sum(r.num_frames for r in load_dataset(data, layout, "test"))
    assert metrics["micro_auc"] is not None
    source = load_dataset(data, layout, "test")[0].source
    assert main(["score", str(tiny_run), str(source), "--out", str(tmp_path / "s")]) == 0


def test_layout_choices_are_the_registrys():
    import argparse

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    choices = {name: action.choices for name, command in commands.items()
               for action in command._actions if action.dest == "layout"}
    assert set(choices) == {"train", "evaluate"}
    assert all(tuple(c) == LAYOUTS for c in choices.values())


# --------------------------------------------------------------------------- user errors: one line, status 2


def assert_one_line_error(code, capsys, command, *words):
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sdmae {command}: error: "), err
    for word in words:
        assert word in lines[0], err


def short_clip(tiny_data, frames):
    return read_video(load_dataset(tiny_data, "avenue", "test")[0].source, max_frames=frames)


def test_score_gives_every_input_its_own_outputs(tiny_run, tiny_data, tmp_path, monkeypatch):
    frames = short_clip(tiny_data, 12)
    here = tmp_path / "cam7"  # scored as "."
    write_frames(here, frames[:8], "{:03d}.png")
    (here / "a").mkdir()
    (here / "b").mkdir()
    write_video(here / "a" / "clip.avi", frames[:9])
    write_video(here / "b" / "clip.avi", frames[:10])
    write_video(here / "a" / "clip.mp4", frames[:11])
    write_frames(here / "frames", frames[:12], "{:03d}.jpg")
    monkeypatch.chdir(here)
    out = tmp_path / "scores"
    assert main(["score", str(tiny_run), "a/clip.avi", "b/clip.avi", "a/clip.mp4", ".", "frames/",
                 "--out", str(out)]) == 0
    written = {name: len((out / f"{name}.csv").read_text().splitlines()) - 1
               for name in ("a_clip.avi", "b_clip.avi", "clip.mp4", "cam7", "frames")}
    assert written == {"a_clip.avi": 9, "b_clip.avi": 10, "clip.mp4": 11, "cam7": 8, "frames": 12}
    assert len(list(out.glob("*.png"))) == 5 and len(list(out.iterdir())) == 11  # and events.jsonl


def test_output_names(tmp_path, monkeypatch):
    for path in ("x/a/clip.avi", "y/a/clip.avi", "x/cam.mp4", "x/CAM.avi", "z/one.avi"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    monkeypatch.chdir(tmp_path)
    assert output_names(["x/a/clip.avi", "y/a/clip.avi", "z/one.avi"]) == ["x_a_clip.avi", "y_a_clip.avi", "one"]
    assert output_names(["x/cam.mp4", "x/CAM.avi"]) == ["cam.mp4", "CAM.avi"]  # case-insensitive file systems
    with pytest.raises(SdmaeError, match=r"input \./z/one\.avi is given twice \(also as z/one\.avi\)"):
        output_names(["z/one.avi", "./z/one.avi"])
    (tmp_path / "x" / "link.avi").symlink_to(tmp_path / "z" / "one.avi")
    assert output_names(["x/link.avi", "x/a/.."]) == ["link", "x"]


@pytest.mark.parametrize("bad", ["missing.avi", "notes.txt", "empty_folder"])
def test_score_checks_every_input_before_scoring_any(tiny_run, tiny_data, tmp_path, capsys, bad):
    good = write_video(tmp_path / "good.avi", short_clip(tiny_data, 8))
    (tmp_path / "notes.txt").write_text("not a video\n")
    (tmp_path / "empty_folder").mkdir()
    code = main(["score", str(tiny_run), str(good), str(tmp_path / bad), "--out", str(tmp_path / "o")])
    assert_one_line_error(code, capsys, "score", bad)
    assert not (tmp_path / "o").exists()


def cut_inside_last_frame(path):
    """Cut a video file in the middle of its last frame's data (the header still counts that frame)."""
    with av.open(str(path)) as container:
        last = [p for p in container.demux(video=0) if p.size][-1]
    path.write_bytes(path.read_bytes()[: last.pos + last.size // 2])
    return path


def test_score_warns_of_a_frame_decoded_from_damaged_data(tiny_run, tiny_data, tmp_path, capsys):
    cut = cut_inside_last_frame(write_video(tmp_path / "cut.avi", short_clip(tiny_data, 12)))
    assert main(["score", str(tiny_run), str(cut), "--out", str(tmp_path / "o")]) == 0
    # one warning for the damaged frame (the tiny run's small calibration has its own)
    warning = [line for line in capsys.readouterr().err.splitlines() if "warning" in line and "cut.avi" in line]
    assert len(warning) == 1 and warning[0].startswith("sdmae score: warning: ")
    assert "cut.avi: frame 11 " in warning[0]
    assert len((tmp_path / "o" / "cut.csv").read_text().splitlines()) == 13  # the frame is kept


@pytest.mark.parametrize("command", [["train", "--data", "."], ["score", "no-such-run", "x.avi"], ["demo"]])
def test_out_under_a_file(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "somefile").write_text("")
    code = main([*command, "--out", "somefile/run"])
    assert_one_line_error(code, capsys, command[0], "--out somefile/run", "somefile is a file")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="chmod does not stop root from writing")
@pytest.mark.parametrize("out", ["ro", "ro/run"])
@pytest.mark.parametrize("command", [["train", "--data", "."], ["score", "no-such-run", "x.avi"], ["demo"]])
def test_out_on_a_read_only_folder(tmp_path, monkeypatch, capsys, command, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ro").mkdir(mode=0o555)
    try:
        code = main([*command, "--out", out])
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert_one_line_error(code, capsys, command[0], f"--out {out}", "ro is not writable")


@pytest.mark.parametrize("json_path, words", [
    ("folder", ["--json folder is a folder"]),
    ("missing/m.json", ["--json missing/m.json", "missing does not exist"]),
])
def test_evaluate_checks_the_json_path_before_evaluating(tmp_path, monkeypatch, capsys, json_path, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    # no run: the check must come before the run is even loaded
    code = main(["evaluate", "no-such-run", "--data", ".", "--json", json_path])
    assert_one_line_error(code, capsys, "evaluate", *words)


def test_evaluate_with_an_unreadable_mat_label_file(tiny_run, tiny_data, tmp_path, capsys):
    (tmp_path / "testing_videos").mkdir()
    write_video(tmp_path / "testing_videos" / "01.avi", short_clip(tiny_data, 8))
    (tmp_path / "testing_label_mask").mkdir()
    (tmp_path / "testing_label_mask" / "1_label.mat").write_bytes(b"")
    code = main(["evaluate", str(tiny_run), "--data", str(tmp_path), "--layout", "avenue"])
    assert_one_line_error(code, capsys, "evaluate", "1_label.mat is not a readable MATLAB file")


def test_evaluate_with_labels_of_pickled_objects(tiny_run, tiny_data, tmp_path, capsys):
    (tmp_path / "test").mkdir()
    write_video(tmp_path / "test" / "c.avi", short_clip(tiny_data, 8))
    np.save(tmp_path / "test" / "c.npy", np.array([0, 1, None, 0, 0, 0, 1, 0], dtype=object), allow_pickle=True)
    code = main(["evaluate", str(tiny_run), "--data", str(tmp_path), "--layout", "folder"])
    assert_one_line_error(code, capsys, "evaluate", "c.npy is not a numeric .npy array")


@pytest.mark.parametrize("command", [["train", "--data", ".", "--out", "r"], ["evaluate", "run", "--data", "."],
                                     ["score", "run", "x.avi", "--out", "o"], ["demo", "--out", "d"]])
def test_device_cuda_without_a_gpu(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert_one_line_error(main([*command, "--device", "cuda"]), capsys, command[0], "--device cuda")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag, value", [("--seed", "-1"), ("--epochs", "-1"), ("--student-epochs", "-2"),
                                         ("--batch-size", "0"), ("--lr", "0"), ("--lr", "nan"), ("--lr", "inf"),
                                         ("--workers", "-1"), ("--patch", "0")])
def test_train_numbers_out_of_range(tmp_path, monkeypatch, capsys, flag, value):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--data", ".", "--out", "r", flag, value])
    assert_one_line_error(code, capsys, "train", f"{flag} must be", f"got {value}")
    assert not (tmp_path / "r").exists()


def test_demo_seed_out_of_range(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path / "d"), "--seed", "-1"])
    assert_one_line_error(code, capsys, "demo", "--seed must be >= 0")
    assert not (tmp_path / "d").exists()


def test_a_user_error_in_a_real_process(tmp_path):
    done = subprocess.run([sys.executable, "-m", "sdmae", "train", "--data", str(tmp_path), "--out",
                           str(tmp_path / "r"), "--seed", "-1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr == "sdmae train: error: --seed must be >= 0, got -1\n"


@pytest.mark.parametrize("bug", [ValueError("internal"), KeyError("internal"), OSError("no file named")])
def test_a_bug_keeps_its_traceback(monkeypatch, bug):
    def broken(args):
        raise bug

    monkeypatch.setattr("sdmae.cli.cmd_evaluate", broken)
    with pytest.raises(type(bug), match="internal|no file named"):
        main(["evaluate", "run", "--data", "."])


def test_threads_option(tiny_run, tiny_data, capsys):
    import torch

    assert main(["evaluate", str(tiny_run), "--data", str(tiny_data), "--threads", "0"]) == 2
    assert "--threads must be >= 1, got 0" in capsys.readouterr().err
    threads = torch.get_num_threads()
    try:
        assert main(["evaluate", str(tiny_run), "--data", str(tiny_data), "--layout", "avenue", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
