"""Two-stage training: loss falls, the teacher stays frozen, checkpoints are exact and safe, resume is exact."""

import json

import pytest
import torch
from helpers import tiny_config

from sdmae import train as train_mod
from sdmae.config import get_preset
from sdmae.train import CheckpointError, TrainFrames, load_checkpoint, save_checkpoint, train


def weights_of(path):
    return load_checkpoint(path)["model"]


def test_run_directory_holds_config_checkpoints_and_log(tiny_run):
    assert json.loads((tiny_run / "config.json").read_text())["preset"] == "tiny"
    log = [json.loads(line) for line in (tiny_run / "log.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["epoch"]) for e in log] == [("teacher", 1), ("teacher", 2), ("student", 1)]
    for stage in ("teacher", "student"):
        state = load_checkpoint(tiny_run / f"{stage}.pt")
        assert state["done"] and state["stage"] == stage and state["optimizer"] is not None


def test_stage_two_leaves_every_teacher_tensor_bit_identical(tiny_run):
    teacher, student = weights_of(tiny_run / "teacher.pt"), weights_of(tiny_run / "student.pt")
    frozen = [k for k in teacher if not k.startswith("student.")]
    assert any("running_mean" in k for k in frozen)  # BatchNorm statistics are among them
    for k in frozen:
        assert torch.equal(teacher[k], student[k]), k
    assert any(not torch.equal(teacher[k], student[k]) for k in teacher if k.startswith("student."))


def test_teacher_loss_falls(tiny_data, tmp_path):
    result = train(tiny_config(epochs=4, student_epochs=0, lr=3e-3), tiny_data, "avenue", tmp_path / "run",
                   progress=False)
    assert result.teacher_losses[-1] < 0.5 * result.teacher_losses[0]


def test_resume_after_interruption_matches_uninterrupted_run(tiny_data, tmp_path, monkeypatch):
    frames = TrainFrames.from_dataset(tiny_data, "avenue", (64, 96), progress=False)
    cfg = tiny_config(epochs=2, student_epochs=1)
    train(cfg, tiny_data, "avenue", tmp_path / "a", progress=False, frames=frames)

    real_step, calls = train_mod._step_loss, {"n": 0}

    def interrupt_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # 4 steps per epoch (76 frames: 20 are held back): epoch 2 is under way
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_mod, "_step_loss", interrupt_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tiny_data, "avenue", tmp_path / "b", progress=False, frames=frames)
    assert not (tmp_path / "b" / "student.pt").exists()
    monkeypatch.setattr(train_mod, "_step_loss", real_step)
    train(cfg, tiny_data, "avenue", tmp_path / "b", progress=False, frames=frames, resume=True)

    a, b = weights_of(tmp_path / "a" / "student.pt"), weights_of(tmp_path / "b" / "student.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["epoch"]) for e in log] == [("teacher", 1), ("teacher", 2), ("student", 1)]


def test_existing_run_is_not_overwritten(tiny_run, tiny_data):
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_config(), tiny_data, "avenue", tiny_run, progress=False)


def test_checkpoint_round_trip_is_exact(tmp_path):
    cfg = get_preset("tiny")
    model = train_mod.build_model(cfg)
    save_checkpoint(tmp_path / "m.pt", stage="teacher", cfg=cfg, model=model, optimizer=None, epoch=0, done=True)
    state = load_checkpoint(tmp_path / "m.pt", cfg)
    assert state["config"] == cfg
    for k, v in model.state_dict().items():
        assert torch.equal(v, state["model"][k])


def test_a_run_of_the_first_checkpoint_format_still_loads_and_scores_the_same(tiny_run, tmp_path):
    """sdmae-checkpoint-v1 held a version-1 config (in_chans / out_chans, no version key)."""
    import shutil

    from sdmae.detector import Detector

    old = tmp_path / "old"
    shutil.copytree(tiny_run, old)
    state = torch.load(old / "student.pt", weights_only=True)
    state["format"] = "sdmae-checkpoint-v1"
    config = state["config"]
    del config["version"], config["alert"], config["train"]["calibration_fraction"]
    config["model"].update(in_chans=9, out_chans=4)
    torch.save(state, old / "student.pt")
    loaded = load_checkpoint(old / "student.pt")
    assert loaded["format"] == "sdmae-checkpoint-v2" and loaded["config"].train.calibration_fraction == 0.0
    frames = torch.randint(0, 255, (12, 48, 72, 3), dtype=torch.uint8).numpy()
    assert (Detector.load(old).score_frames(frames).raw == Detector.load(tiny_run).score_frames(frames).raw).all()


def test_bad_checkpoints_are_named(tmp_path):
    cfg = get_preset("tiny")
    model = train_mod.build_model(cfg)
    good = tmp_path / "good.pt"
    save_checkpoint(good, stage="teacher", cfg=cfg, model=model, optimizer=None, epoch=0, done=True)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)

    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not an sdmae checkpoint"):
        load_checkpoint(foreign)

    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_checkpoint(text)

    with pytest.raises(CheckpointError, match="preset 'tiny'"):
        load_checkpoint(good, get_preset("shanghaitech"))

    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


class _RunsCode:
    """A pickle payload: unpickling it would call os.getpid (harmless, but code all the same)."""

    def __reduce__(self):
        import os

        return (os.getpid, ())


def test_hostile_checkpoint_is_refused_with_our_message_not_torchs_hint(tmp_path):
    hostile = tmp_path / "hostile.pt"
    torch.save({"format": "sdmae-checkpoint-v1", "model": _RunsCode()}, hostile)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(hostile)
    message = str(info.value)
    assert "hostile.pt" in message and "was not loaded" in message
    assert "weights_only" not in message  # torch's hint would tell the user to run the file's code


def test_scoring_loads_neither_training_nor_augmentation_nor_dataset_generators():
    import subprocess
    import sys

    code = "import sdmae.detector, sdmae.cli, sys; print(*sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = [m for m in done.stdout.split() if m.startswith("sdmae")]
    assert "sdmae.data.video" in loaded  # the detector's decoder: the check below sees the data layer
    # Matched by the last name too, so a module moved elsewhere is still caught.
    unwanted = [m for m in loaded if m == "sdmae.train" or m.startswith(("sdmae.data.training", "sdmae.data.devsets"))
                or m.rsplit(".", 1)[-1] in ("synthetic", "footage", "anomalies")]
    assert not unwanted, f"scoring imports {unwanted}"


@pytest.fixture(scope="module")
def tiny_frames(tiny_data):
    return TrainFrames.from_dataset(tiny_data, "avenue", (64, 96), progress=False)


def test_diverged_run_stops_at_once_and_leaves_no_finished_checkpoint(tiny_data, tiny_frames, tmp_path):
    with pytest.raises(train_mod.TrainingDiverged, match="teacher stage, epoch 1/2"):
        train(tiny_config(lr=1e30), tiny_data, "avenue", tmp_path / "run", progress=False,
              frames=tiny_frames)
    assert not (tmp_path / "run").exists()  # nothing was saved: the run directory this call made is gone


def test_divergence_keeps_the_last_finite_checkpoint(tiny_data, tiny_frames, tmp_path, monkeypatch):
    real_step, calls = train_mod._step_loss, {"n": 0}

    def nan_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        loss = real_step(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 7 else loss  # 4 steps per epoch: in epoch 2

    monkeypatch.setattr(train_mod, "_step_loss", nan_in_epoch_two)
    with pytest.raises(train_mod.TrainingDiverged, match="epoch 2/2.*still holds the last finite epoch"):
        train(tiny_config(), tiny_data, "avenue", tmp_path / "run", progress=False, frames=tiny_frames)
    state = load_checkpoint(tmp_path / "run" / "teacher.pt")
    assert state["epoch"] == 0 and not state["done"]
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (tmp_path / "run" / "student.pt").exists()


def test_resume_with_other_settings_is_refused_before_anything_is_written(tiny_run, tiny_data):
    before = {p.name: p.read_bytes() for p in tiny_run.iterdir()}
    with pytest.raises(ValueError, match=r"train\.epochs: the run has 2, this command 6"):
        train(tiny_config(epochs=6), tiny_data, "avenue", tiny_run, progress=False, resume=True)
    with pytest.raises(ValueError, match="preset: the run has 'tiny', this command 'ped2'"):
        train(get_preset("ped2"), tiny_data, "avenue", tiny_run, progress=False, resume=True)
    assert {p.name: p.read_bytes() for p in tiny_run.iterdir()} == before


def test_a_run_started_before_zoom_and_calibration_resumes_without_them(tiny_data, tiny_frames, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(epochs=1, student_epochs=0, zoom_probability=0.0, calibration_fraction=0.0), tiny_data,
          "avenue", run, progress=False, frames=tiny_frames)
    saved = json.loads((run / "config.json").read_text())
    del saved["version"], saved["train"]["zoom_probability"], saved["train"]["calibration_fraction"]
    (run / "config.json").write_text(json.dumps(saved))  # as an sdmae without them wrote it
    # the command's defaults (zoom 0.5, calibration 0.1) are not what the run was trained with, and
    # no option sets them: the run keeps its own instead of being refused
    train(tiny_config(epochs=1, student_epochs=0), tiny_data, "avenue", run, progress=False, resume=True,
          frames=tiny_frames)
    resumed = json.loads((run / "config.json").read_text())["train"]
    assert (resumed["zoom_probability"], resumed["calibration_fraction"]) == (0.0, 0.0)
    with pytest.raises(ValueError, match="train.epochs"):  # what a command does set is still checked
        train(tiny_config(epochs=3, student_epochs=0), tiny_data, "avenue", run, progress=False, resume=True,
              frames=tiny_frames)


def test_resume_in_the_student_stage_keeps_every_log_line(tiny_data, tiny_frames, tmp_path, monkeypatch):
    cfg = tiny_config(epochs=2, student_epochs=2)
    real_step, calls = train_mod._step_loss, {"n": 0}

    def interrupt_in_student_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 14:  # 4 steps per epoch: teacher 1-8, student 9-16
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_mod, "_step_loss", interrupt_in_student_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tiny_data, "avenue", tmp_path / "run", progress=False, frames=tiny_frames)
    monkeypatch.setattr(train_mod, "_step_loss", real_step)
    train(cfg, tiny_data, "avenue", tmp_path / "run", progress=False, frames=tiny_frames, resume=True)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["epoch"]) for e in log] == [("teacher", 1), ("teacher", 2), ("student", 1),
                                                       ("student", 2)]


def test_kill_right_after_a_checkpoint_loses_no_log_line(tiny_data, tiny_frames, tmp_path, monkeypatch):
    real_save, calls = train_mod.save_checkpoint, {"n": 0}

    def killed_after_second_save(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "save_checkpoint", killed_after_second_save)
    cfg = tiny_config(epochs=2, student_epochs=1)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tiny_data, "avenue", tmp_path / "run", progress=False, frames=tiny_frames)
    monkeypatch.setattr(train_mod, "save_checkpoint", real_save)
    train(cfg, tiny_data, "avenue", tmp_path / "run", progress=False, frames=tiny_frames, resume=True)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["epoch"]) for e in log] == [("teacher", 1), ("teacher", 2), ("student", 1)]


def test_leftover_temporary_files_are_removed_on_the_next_start(tiny_data, tiny_frames, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    leftovers = [run / ".teacher.0badf00d.tmp.pt", run / ".config.12345678.tmp.json"]
    for path in leftovers:
        path.write_bytes(b"half a checkpoint")
    (run / "notes.txt").write_text("mine")
    train(tiny_config(epochs=1, student_epochs=0), tiny_data, "avenue", run, progress=False, frames=tiny_frames)
    assert not any(path.exists() for path in leftovers)
    assert (run / "notes.txt").read_text() == "mine"


def test_failed_first_start_leaves_no_run_directory(tiny_data, tiny_frames, tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(tiny_config(batch_size=4096), tiny_data, "avenue", tmp_path / "run", progress=False,
              frames=tiny_frames)
    assert not (tmp_path / "run").exists()
