import dataclasses
import json

import pytest

from sdmae.config import PRESETS, Config, ConfigError, ModelConfig, ScoreConfig, TrainConfig, get_preset
from sdmae.errors import SdmaeError

# token counts documented in sdmae/config.py
TOKENS = {"avenue": 800, "shanghaitech": 800, "ubnormal": 800, "ped2": 2400, "tiny": 96}


def test_documented_presets():
    assert set(PRESETS) == set(TOKENS)
    assert get_preset("avenue").model.input_size == (320, 640)
    assert get_preset("avenue").model.patch == 16
    assert get_preset("shanghaitech").model.input_size == (160, 320)
    assert get_preset("shanghaitech").model.patch == 8
    assert get_preset("ubnormal").model.patch == 8
    assert get_preset("ped2").model.patch == 4


@pytest.mark.parametrize("name", sorted(TOKENS))
def test_preset_valid(name):
    cfg = get_preset(name)
    assert cfg.preset == name
    m = cfg.model
    assert all(s % m.patch == 0 for s in m.input_size)
    assert m.num_tokens == TOKENS[name]
    assert cfg.score.smoothing_sigma > 0
    if name != "tiny":  # paper dims
        assert (m.enc_dim, m.enc_depth, m.enc_heads, m.dec_dim, m.dec_depth, m.dec_heads,
                m.mlp_ratio, m.mask_ratio, m.student_branch) == (256, 3, 4, 128, 3, 4, 2.0, 0.5, 1)
        assert cfg.train.lr == 1e-3 and cfg.train.warmup_epochs > 0


@pytest.mark.parametrize("name", sorted(TOKENS))
def test_round_trip(name):
    cfg = get_preset(name)
    d = cfg.to_dict()
    assert isinstance(d["model"]["input_size"], list)
    assert Config.from_dict(d) == cfg
    assert Config.from_dict(json.loads(json.dumps(d))) == cfg
    assert json.loads(json.dumps(d)) == d


def test_round_trip_non_default():
    cfg = get_preset("tiny", input_size=(32, 48), patch=4, lr=3e-4, seed=7)
    cfg = cfg.changed(model=dict(token_mixer="linear", pos_embed=True, cls_head=True),
                      score=dict(frame_reduce="max", tokens="visible"))
    again = Config.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.model.input_size == (32, 48)


@pytest.mark.parametrize("where", [None, "model", "train", "score"])
def test_unknown_keys_named(where):
    d = get_preset("tiny").to_dict()
    (d if where is None else d[where])["bogus_key"] = 1
    with pytest.raises(ValueError, match="bogus_key"):
        Config.from_dict(d)


def test_missing_keys_named():
    d = get_preset("tiny").to_dict()
    del d["train"]["lr"]
    with pytest.raises(ValueError, match="lr"):
        Config.from_dict(d)
    d = get_preset("tiny").to_dict()
    del d["model"]
    with pytest.raises(ValueError, match="model"):
        Config.from_dict(d)


def test_overrides_applied_and_copies_independent():
    cfg = get_preset("shanghaitech", input_size=(96, 160), patch=16, epochs=3, batch_size=8)
    assert cfg.model.input_size == (96, 160) and cfg.model.patch == 16
    assert cfg.model.num_tokens == 6 * 10
    assert (cfg.train.epochs, cfg.train.batch_size) == (3, 8)
    with pytest.raises(dataclasses.FrozenInstanceError):  # a preset cannot be changed through a copy
        cfg.train.epochs = 99
    assert cfg.changed(train={"epochs": 99}).train.epochs == 99 and cfg.train.epochs == 3
    assert PRESETS["shanghaitech"].train.epochs != 3
    assert get_preset("shanghaitech").model.input_size == (160, 320)
    # patch alone must fit the preset's size: 160x320 is a multiple of 16
    assert get_preset("shanghaitech", patch=16).model.num_tokens == 10 * 20


@pytest.mark.parametrize("kwargs, names", [
    (dict(patch=7), ["patch=7", "multiple"]),
    (dict(input_size=(100, 96)), ["input_size=(100, 96)", "multiple"]),
    (dict(input_size=(64, 96), patch=12), ["input_size", "patch=12"]),
    (dict(input_size=(64,)), ["input_size"]),
    (dict(patch=0), ["patch"]),
    (dict(lrr=1e-3), ["lrr"]),
    (dict(epochs=-1), ["epochs"]),
    (dict(anomaly_probability=1.5), ["anomaly_probability"]),
])
def test_bad_overrides(kwargs, names):
    with pytest.raises(ValueError) as e:
        get_preset("tiny", **kwargs)
    for n in names:
        assert n in str(e.value)


def test_unknown_preset():
    with pytest.raises(ValueError, match="nope"):
        get_preset("nope")


@pytest.mark.parametrize("kwargs, name", [
    (dict(token_mixer="conv"), "token_mixer"),
    (dict(token_mixer="linear", pos_embed=False), "pos_embed"),
    (dict(mask_ratio=1.0), "mask_ratio"),
    (dict(student_branch=4), "student_branch"),
    (dict(enc_dim=250), "enc_dim"),
    (dict(input_size=(64, 90)), "multiple"),
])
def test_model_config_validation(kwargs, name):
    base = dict(input_size=(64, 96), patch=8)
    with pytest.raises(ValueError, match=name):
        ModelConfig(**{**base, **kwargs})


def test_score_train_validation():
    with pytest.raises(ValueError, match="frame_reduce"):
        ScoreConfig(smoothing_sigma=1.0, frame_reduce="median")
    with pytest.raises(ValueError, match="test_masks"):
        ScoreConfig(smoothing_sigma=1.0, test_masks=0)
    good = dataclasses.asdict(get_preset("tiny").train)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(**{**good, "lr": 0.0})


@pytest.mark.parametrize("field, value", [("seed", -1), ("lr", float("inf")), ("lr", float("nan")),
                                          ("epochs", -1), ("batch_size", 0), ("num_workers", -2)])
def test_train_values_that_would_fail_mid_training_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        get_preset("tiny", **{field: value})
    assert issubclass(ConfigError, SdmaeError) and issubclass(ConfigError, ValueError)


def test_input_settings_of_older_configs_move_to_the_model_section():
    from sdmae.config import Config, get_preset

    old = get_preset("tiny").to_dict()
    del old["version"]  # version 1
    old["train"].update(frame_offset=2, grad_step=2)  # where sdmae 0.2 wrote them
    del old["model"]["frame_offset"], old["model"]["grad_step"]
    cfg = Config.from_dict(old)
    assert (cfg.model.frame_offset, cfg.model.grad_step) == (2, 2)
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_a_run_written_before_zoom_existed_was_trained_without_it():
    from sdmae.config import Config, get_preset

    old = get_preset("tiny").to_dict()
    del old["version"], old["train"]["zoom_probability"], old["train"]["zoom_max"]
    assert Config.from_dict(old).train.zoom_probability == 0.0
    assert get_preset("tiny").train.zoom_probability == 0.5


def test_version_1_configs_are_migrated_and_newer_ones_refused():
    from sdmae.config import CONFIG_VERSION, Config, ConfigError, get_preset, migrate

    v1 = get_preset("tiny").to_dict()
    del v1["version"], v1["alert"], v1["train"]["calibration_fraction"]
    v1["model"].update(in_chans=9, out_chans=4)  # written by every sdmae before version 2
    cfg = Config.from_dict(v1)
    assert cfg.model.in_chans == 9 and cfg.train.calibration_fraction == 0.0
    assert cfg.to_dict()["version"] == CONFIG_VERSION and Config.from_dict(cfg.to_dict()) == cfg
    assert migrate(cfg.to_dict()) == {k: v for k, v in cfg.to_dict().items() if k != "version"}
    v1["model"]["in_chans"] = 3
    with pytest.raises(ConfigError, match="in_chans must be 9"):
        Config.from_dict(v1)
    with pytest.raises(ConfigError, match="version 99"):
        Config.from_dict({**cfg.to_dict(), "version": 99})
