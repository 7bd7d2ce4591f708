"""The sdmae command end to end, and its errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from sdmae.cli import main
from sdmae.data import load_dataset, read_video, write_video


def test_evaluate_writes_the_metrics(tiny_run, tiny_data, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(tiny_run), "--data", str(tiny_data), "--layout", "avenue", "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    for key in ("micro_auc", "macro_auc", "rbdc", "tbdc", "frames", "fps", "settings"):
        assert key in metrics
    assert metrics["frames"] == 96 and 0 <= metrics["micro_auc"] <= 1
    assert "micro AUC" in capsys.readouterr().out


def test_score_writes_csv_plot_and_overlay(tiny_run, tiny_data, tmp_path):
    clip = read_video(load_dataset(tiny_data, "avenue", "test")[0].source)[:12]
    video = write_video(tmp_path / "cam.mp4", clip, fps=10)
    out = tmp_path / "scores"
    assert main(["score", str(tiny_run), str(video), "--out", str(out), "--overlay"]) == 0
    rows = (out / "cam.csv").read_text().splitlines()
    assert rows[0] == "frame,score,smoothed" and len(rows) == 13
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
