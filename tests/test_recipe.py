"""The training recipe's parts, pinned down: token mixers, map targets, pasted-object weights,
speed pseudo-anomalies, the student's loss, one-class training on labelled videos."""

import dataclasses

import numpy as np
import pytest
import torch
from helpers import tiny_config

from sdmae.config import get_preset
from sdmae.data import ObjectBank, make_dataset
from sdmae.model import tokens_to_grid
from sdmae.data.training.samples import _zoom
from sdmae.train import TrainFrames, TrainSamples, _step_loss, build_model, normal_runs


def test_shuffled_mixer_lays_visible_tokens_out_in_mask_order():
    x = torch.arange(2 * 6 * 1, dtype=torch.float32).reshape(2, 6, 1)  # 6 visible tokens, D = 1
    ids = torch.tensor([[7, 0, 3, 11, 5, 2], [1, 2, 3, 4, 5, 6]])
    image, back = tokens_to_grid(x, ids, (3, 4), "shuffled")
    assert image.shape == (2, 1, 3, 2)  # gh x ceil(6 / 3): no spatial meaning
    np.testing.assert_array_equal(image[0, 0].flatten().numpy(), x[0, :, 0].numpy())
    assert torch.equal(back(image), x)
    grid, back = tokens_to_grid(x, ids, (3, 4), "scatter")
    assert grid.shape == (2, 1, 3, 4) and grid[0, 0].flatten()[7] == x[0, 0, 0]  # real positions
    assert torch.equal(back(grid), x)


@pytest.mark.parametrize("map_target, normal", [("signed", -1.0), ("unit", 0.0)])
def test_map_target_range(tiny_data, map_target, normal):
    cfg = tiny_config()
    cfg = cfg.changed(model=dict(map_target=map_target))
    cfg = cfg.changed(train=dict(anomaly_probability=1.0))
    frames = TrainFrames.from_dataset(tiny_data, "avenue", cfg.model.input_size, progress=False)
    sample = TrainSamples(frames, cfg, ObjectBank.builtin())[5]
    target_map = sample["target"][3]
    assert cfg.model.map_normal == normal
    assert target_map.min() == pytest.approx(normal) and target_map.max() > normal + 0.5  # the pasted object


@pytest.mark.parametrize("rule", ["floor", "add"])
def test_pasted_object_dominates_the_motion_weights(tiny_data, rule):
    cfg = tiny_config()
    cfg = cfg.changed(train=dict(anomaly_probability=1.0, anomaly_gradient=rule))
    frames = TrainFrames.from_dataset(tiny_data, "avenue", cfg.model.input_size, progress=False)
    s = TrainSamples(frames, cfg, ObjectBank.builtin())[3]
    p = cfg.model.patch
    on_object = torch.nn.functional.avg_pool2d((s["target"][3:4] > 0).float(), p).flatten() > 0.5  # (L,)
    w = s["weights"]
    assert on_object.any() and torch.isclose(w.sum(), torch.tensor(1.0))
    assert w[on_object].mean() > 2 * w[~on_object].mean()


def test_speed_pseudo_anomaly_plays_the_clip_faster_and_marks_the_movers(tiny_data):
    cfg = tiny_config()
    cfg = cfg.changed(train=dict(anomaly_probability=0.0, speed_probability=1.0, speed_factors=(3,)))
    frames = TrainFrames.from_dataset(tiny_data, "avenue", cfg.model.input_size, progress=False)
    plain = TrainSamples(frames, dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, speed_probability=0)),
                         None)
    fast = TrainSamples(frames, cfg, None)
    i = 60  # a frame in the middle of the first video
    a, b = plain[i], fast[i]
    assert torch.equal(a["inputs"][3:6], b["inputs"][3:6])  # frame t itself is untouched
    v, t = frames.index[i]
    video = frames.videos[v]
    from sdmae import kernels

    expected = kernels.prepare(video, [t], cfg.model.input_size, cfg.model.patch, 9, 3).inputs[0]
    np.testing.assert_allclose(b["inputs"].numpy(), expected, atol=1e-6)  # t-9, t, t+9
    assert (b["target"][3] > cfg.model.map_normal).any() and b["anomaly"] == 1
    fast.paste = False  # the student stage sees normal data only
    assert torch.equal(fast[i]["inputs"], a["inputs"])


def test_zoom_scales_one_window_of_every_frame_up_to_the_model_size(tiny_data):
    cfg = tiny_config()
    cfg = cfg.changed(train=dict(anomaly_probability=0.0, speed_probability=0.0, zoom_probability=1.0,
                                 zoom_max=2.0))
    frames = TrainFrames.from_dataset(tiny_data, "avenue", cfg.model.input_size, progress=False)
    zoomed = TrainSamples(frames, cfg, None)
    i = 60
    v, t = frames.index[i]
    rng = np.random.default_rng([cfg.train.seed, zoomed.epoch, i, 2])
    rng.random()  # the draw that chose to zoom
    clip = frames.videos[v][np.clip(t + np.arange(-3, 4), 0, len(frames.videos[v]) - 1)]
    window, _ = _zoom(clip, np.zeros(clip.shape[1:3], np.float32), rng.uniform(1.0, 2.0), rng)
    h, w = clip.shape[1:3]
    assert window.shape[0] == 7 and h / 2 <= window.shape[1] < h and w / 2 <= window.shape[2] < w
    from sdmae import kernels

    expected = kernels.prepare(window, [3], cfg.model.input_size, cfg.model.patch).inputs[0]
    np.testing.assert_allclose(zoomed[i]["inputs"].numpy(), expected, atol=1e-6)
    zoomed.paste = False  # the student stage sees the frames as the camera does
    plain = kernels.prepare(clip, [3], cfg.model.input_size, cfg.model.patch).inputs[0]
    np.testing.assert_allclose(zoomed[i]["inputs"].numpy(), plain, atol=1e-6)


@pytest.mark.parametrize("loss", ["masked", "weighted"])
def test_student_loss_masked_ignores_visible_tokens(tiny_data, loss):
    cfg = tiny_config()
    cfg = cfg.changed(train=dict(student_loss=loss))
    frames = TrainFrames.from_dataset(tiny_data, "avenue", cfg.model.input_size, progress=False)
    ds = TrainSamples(frames, cfg, None)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    model = build_model(cfg)
    model.freeze_teacher()
    student_pred = model.student["pred"]
    grads = []
    hook = student_pred.register_full_backward_hook(lambda m, gi, go: grads.append(go[0].detach()))
    _step_loss(cfg, model, batch, "student", 1, 0, torch.device("cpu")).backward()
    hook.remove()
    from sdmae.train import sample_masks

    _, _, mask = sample_masks(cfg, batch["index"], 1, 0, torch.device("cpu"))
    visible_grad = grads[0].abs().sum(-1)[mask == 0]
    assert (visible_grad == 0).all() if loss == "masked" else (visible_grad > 0).any()


def test_abnormal_frames_of_training_videos_are_dropped(tmp_path):
    assert normal_runs(np.array([0, 0, 1, 1, 0, 1, 0, 0])) == [(0, 2), (4, 5), (6, 8)]
    assert normal_runs(np.ones(3)) == []
    root = make_dataset(tmp_path / "ub", "ubnormal", seed=2, num_train=1, num_test=1, num_frames=60)
    # make the test video a labelled training video, as UBnormal's abnormal training videos are
    scripts = root / "scripts"
    test_names = (scripts / "abnormal_test_video_names.txt").read_text()
    (scripts / "abnormal_train_video_names.txt").write_text(test_names)
    from sdmae.data import load_dataset

    labelled = [r for r in load_dataset(root, "ubnormal", "train") if r.labels is not None and r.labels.any()]
    assert labelled
    frames = TrainFrames.from_dataset(root, "ubnormal", (64, 96), progress=False)
    normal = sum(int((r.labels == 0).sum()) for r in load_dataset(root, "ubnormal", "train"))
    assert len(frames) == normal
    assert len(frames.videos) == 1 + sum(len(normal_runs(r.labels)) for r in labelled)


def test_recipe_options_are_validated():
    with pytest.raises(ValueError, match="object_style"):
        get_preset("tiny", object_style="neon")
    with pytest.raises(ValueError, match="speed_factors"):
        get_preset("tiny", speed_factors=(1,))
    with pytest.raises(ValueError, match="map_target"):
        dataclasses.replace(get_preset("tiny").model, map_target="binary")
    with pytest.raises(ValueError, match="student_loss"):
        get_preset("tiny", student_loss="l1")
    with pytest.raises(ValueError, match="zoom_max"):
        get_preset("tiny", zoom_max=0.5)
    with pytest.raises(ValueError, match="zoom_probability"):
        get_preset("tiny", zoom_probability=1.5)
