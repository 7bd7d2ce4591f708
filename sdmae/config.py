"""Presets per dataset as dataclasses with commented defaults.

A :class:`Config` holds everything a run needs (model, training, scoring); it
round-trips through plain JSON (:meth:`Config.to_dict` / :meth:`Config.from_dict`)
so it can live inside checkpoints and run directories.

    >>> cfg = get_preset("shanghaitech")
    >>> cfg.model.input_size, cfg.model.patch
    ((160, 320), 8)
    >>> get_preset("tiny", input_size=(64, 64), epochs=5).train.epochs
    5

Token counts per preset (L = (h/p) * (w/p), half of them visible at mask ratio 0.5):

    preset        input (h, w)   patch   grid      L
    avenue        320 x 640      16      20 x 40   800
    shanghaitech  160 x 320       8      20 x 40   800
    ubnormal      160 x 320       8      20 x 40   800
    ped2          160 x 240       4      40 x 60   2400
    tiny           64 x 96        8       8 x 12   96
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import SdmaeError

TOKEN_MIXERS = ("scatter", "shuffled", "linear")
FRAME_REDUCES = ("mean", "max", "top")
TOKEN_RULES = ("all", "visible", "hidden")
TOKEN_WEIGHTINGS = ("uniform", "motion")
OBJECT_STYLES = ("grey", "colour")
ANOMALY_GRADIENTS = ("floor", "add")
STUDENT_LOSSES = ("masked", "weighted")
MAP_TARGETS = ("signed", "unit")


IN_CHANS, OUT_CHANS = 9, 4
# Version of the layout Config.to_dict writes; older ones are brought up to it by migrate().
CONFIG_VERSION = 2


class ConfigError(SdmaeError):
    """A setting out of its range, an unknown preset or key (the message names it)."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`sdmae.model.SDMAE`."""

    input_size: tuple[int, int]  # (h, w) model input size, multiples of patch
    patch: int  # token side p in pixels (non-overlapping patches)
    enc_dim: int = 256
    enc_depth: int = 3
    enc_heads: int = 4
    dec_dim: int = 128
    dec_depth: int = 3
    dec_heads: int = 4
    mlp_ratio: float = 2.0
    mask_ratio: float = 0.5  # fraction of tokens hidden from the encoder
    student_branch: int = 1  # student head branches after this many decoder blocks
    # How CvT's depth-wise conv q/k/v projections see a masked token set in the
    # encoder (the decoder always convolves the full grid):
    # "shuffled" (the authors'): the visible tokens laid out in mask order, so the
    # conv mixes random tokens and the encoder has little spatial context;
    # "scatter": back on the (h/p, w/p) grid, zeros where masked, real neighbours;
    # "linear": no conv, positions from pos_embed only (so it needs pos_embed=True).
    # Chosen by AUC on real footage, not by reconstruction error: "scatter"
    # reconstructs ~3x better, and a detector needs abnormal content reconstructed
    # badly (benchmarks/RESULTS.md, accuracy on real footage).
    token_mixer: str = "shuffled"
    # Fixed 2D sin-cos positional embeddings on encoder and decoder tokens; the
    # authors add none (the conv patch embedding and projections carry some).
    pos_embed: bool = False
    cls_head: bool = False  # the paper's classification head on a [CLS] token
    # Target of the anomaly-map channel: "signed" is -1 for normal pixels and +1 for
    # pasted ones, the range of the RGB targets (the authors'); "unit" is 0 / 1,
    # which gives the channel a quarter of the weight in loss and score.
    map_target: str = "signed"
    # The input (kernels.prepare): frames t - frame_offset, t, t + frame_offset, and
    # motion gradients |x(t - grad_step) - x(t + grad_step)| for the token weights.
    frame_offset: int = 3
    grad_step: int = 1

    def __post_init__(self):
        object.__setattr__(self, "input_size", tuple(self.input_size))  # lists from JSON (frozen: no setattr)
        _check_size(self.input_size, self.patch)
        for name in ("enc_dim", "enc_depth", "enc_heads",
                     "dec_dim", "dec_depth", "dec_heads", "frame_offset", "grad_step"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for dim, heads in (("enc_dim", "enc_heads"), ("dec_dim", "dec_heads")):
            if getattr(self, dim) % getattr(self, heads):
                raise ConfigError(f"{dim}={getattr(self, dim)} is not divisible by "
                                  f"{heads}={getattr(self, heads)}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if not 0 <= self.student_branch <= self.dec_depth:
            raise ConfigError(f"student_branch must be in [0, dec_depth={self.dec_depth}], "
                              f"got {self.student_branch}")
        if self.map_target not in MAP_TARGETS:
            raise ConfigError(f"map_target must be one of {MAP_TARGETS}, got {self.map_target!r}")
        if self.token_mixer not in TOKEN_MIXERS:
            raise ConfigError(f"token_mixer must be one of {TOKEN_MIXERS}, got {self.token_mixer!r}")
        if self.token_mixer == "linear" and not self.pos_embed:
            raise ConfigError("token_mixer='linear' needs pos_embed=True: "
                              "nothing else would tell a token where it is")
        if self.pos_embed and (self.enc_dim % 4 or self.dec_dim % 4):
            raise ConfigError("pos_embed needs enc_dim and dec_dim divisible by 4 (2D sin-cos)")

    # Fixed by the method, not settings: kernels.prepare makes the 9 input channels
    # and kernels.score reads the 4 output channels.
    @property
    def in_chans(self) -> int:
        """Frames t - offset, t, t + offset, RGB each, scaled to [-1, 1]."""
        return IN_CHANS

    @property
    def out_chans(self) -> int:
        """RGB of frame t and the pixel anomaly map."""
        return OUT_CHANS

    @property
    def map_normal(self) -> float:
        """Anomaly-map target where nothing is pasted, hence everywhere at test time."""
        return -1.0 if self.map_target == "signed" else 0.0

    @property
    def grid(self) -> tuple[int, int]:
        """(h/p, w/p) token grid."""
        return self.input_size[0] // self.patch, self.input_size[1] // self.patch

    @property
    def num_tokens(self) -> int:
        """L = (h/p) * (w/p)."""
        return self.grid[0] * self.grid[1]


@dataclass(frozen=True)
class TrainConfig:
    """Two-stage training: teacher (``epochs``), then student (``student_epochs``)."""

    batch_size: int
    # AdamW peak learning rate after linear warm-up, cosine decay afterwards.
    # The original's lr 1e-4 needs 100+100 epochs; on real footage lr 1e-3 reached
    # in 40 epochs about what 1e-4 reached in 200 (the accuracy issue's measurement), hence 1e-3 + warm-up.
    lr: float
    warmup_epochs: float  # linear warm-up length, fractions allowed
    weight_decay: float  # AdamW decoupled weight decay
    epochs: int  # stage 1: teacher (encoder + teacher decoder)
    student_epochs: int  # stage 2: student head only, teacher frozen
    anomaly_probability: float = 0.25  # chance a sample gets a pasted synthetic anomaly
    seed: int = 0  # seeds weights init, masks, data order and anomaly pasting
    num_workers: int = 0  # DataLoader workers (0: load in the main process)
    # How pasted objects look: "grey" (greyscale, blurred by object_blur px and at
    # most object_max_area of the frame: the authors' augmentation, so the model
    # cannot take unusual colour for the sign of an anomaly) or "colour" (as cut).
    object_style: str = "grey"
    object_blur: float = 1.0
    object_max_area: float = 0.024  # the authors' ~5000 px at 320x640
    # How a pasted object enters the motion weights: "floor" sets the gradient under
    # it to max(128, the frame's largest gradient) (the authors'), "add" adds 255 * mask.
    anomaly_gradient: str = "floor"
    # Stage 2 loss: "masked" is the plain MSE over the masked tokens (the authors'),
    # "weighted" the motion-weighted MSE over all tokens, like the teacher's.
    student_loss: str = "masked"
    adam_betas: tuple[float, float] = (0.9, 0.95)  # the authors' (MAE's) AdamW betas
    # Speed pseudo-anomalies (not in the paper): with this probability a teacher
    # sample is played faster, every s-th frame (s from speed_factors) around t;
    # the anomaly-map target is what moves in frame t. Most real anomalies are
    # speed anomalies (running, cycling, vehicles, throwing); pasted still
    # cut-outs teach the map channel "foreign object", these "too fast".
    speed_probability: float = 0.25
    speed_factors: tuple[int, ...] = (2, 3, 4)
    # Zoom (not in the paper): with this probability a teacher sample is a random
    # window of 1/f of the frame (f uniform in [1, zoom_max]) scaled up to the model
    # size, so the model sees people larger and faster in pixels, as nearer the camera.
    # Without it, normal people nearer the camera than any in training scored like
    # anomalies: on the busier half of the campus clip micro AUC rose from 0.749 to
    # 0.856, macro stayed 0.93 (benchmarks/RESULTS.md, accuracy on real footage).
    zoom_probability: float = 0.5
    zoom_max: float = 2.0
    # BCE on the [CLS] logit (only when model.cls_head). BCE starts near 0.69,
    # the weighted reconstruction loss near 0.05-0.3, so 0.1 keeps
    # reconstruction the main task.
    cls_loss_weight: float = 0.1
    # Calibration (sdmae.calibration): this fraction of the training footage is kept
    # out of training and scored afterwards, to set the alert threshold on normal
    # frames the model has not seen: the last frames of each training video, or
    # every n-th whole video where there are many. 0: train on everything, no threshold.
    calibration_fraction: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "adam_betas", tuple(self.adam_betas))  # lists from JSON (frozen: no setattr)
        object.__setattr__(self, "speed_factors", tuple(int(f) for f in self.speed_factors))
        if not 0.0 <= self.calibration_fraction < 1.0:
            raise ConfigError(f"calibration_fraction must be in [0, 1), got {self.calibration_fraction}")
        if not 0.0 <= self.zoom_probability <= 1.0:
            raise ConfigError(f"zoom_probability must be in [0, 1], got {self.zoom_probability}")
        if not self.zoom_max >= 1.0:
            raise ConfigError(f"zoom_max must be >= 1, got {self.zoom_max}")
        if not 0.0 <= self.speed_probability <= 1.0:
            raise ConfigError(f"speed_probability must be in [0, 1], got {self.speed_probability}")
        if not self.speed_factors or min(self.speed_factors) < 2:
            raise ConfigError(f"speed_factors must be integers >= 2, got {self.speed_factors!r}")
        for name, value, allowed in (("object_style", self.object_style, OBJECT_STYLES),
                                     ("anomaly_gradient", self.anomaly_gradient, ANOMALY_GRADIENTS),
                                     ("student_loss", self.student_loss, STUDENT_LOSSES)):
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {value!r}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ConfigError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas!r}")
        if not 0 < self.object_max_area <= 1:
            raise ConfigError(f"object_max_area must be in (0, 1], got {self.object_max_area}")
        for name in ("batch_size",):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("epochs", "student_epochs", "num_workers", "seed", "warmup_epochs",
                     "weight_decay", "cls_loss_weight", "object_blur"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr}")
        if not 0.0 <= self.anomaly_probability <= 1.0:
            raise ConfigError(f"anomaly_probability must be in [0, 1], got {self.anomaly_probability}")


@dataclass(frozen=True)
class ScoreConfig:
    """How a trained model turns predictions into frame scores and pixel maps
    (one spec, :class:`sdmae.score.ScoreSpec`; the formulas: :func:`sdmae.score.frame_scores`
    and :func:`sdmae.reference.score_passes`)."""

    # Temporal Gaussian sigma in frames (offline: centred, normalised filter;
    # streaming: causal).
    smoothing_sigma: float
    # K seeded masks per frame. K >= 2 are complementary: every token is hidden
    # in one pass and visible in the others; 1 is one seeded mask, half hidden.
    test_masks: int = 2
    # Which passes judge a token: "visible" (where the encoder saw it: a pasted or
    # abnormal object there is what the teacher learnt to overlook and the map
    # channel to flag), "hidden", or "all" (their mean).
    tokens: str = "all"
    token_weighting: str = "uniform"  # tokens' weights in the frame mean: "uniform" | "motion"
    # Per-token scores -> frame score: "mean", "max", or "top": the mean of the
    # top_fraction highest-scoring tokens (an anomaly covers few tokens; a mean
    # over all of them drowns it in the error of every normal person in view).
    frame_reduce: str = "top"
    top_fraction: float = 0.02
    # Weight of the anomaly-map channel in the token errors, relative to one RGB
    # channel (1: the four output channels weigh the same, the authors').
    map_channel_weight: float = 3.0
    discrepancy_weight: float = 1.0  # teacher-student discrepancy vs teacher error in the frame score
    map_weight: float = 1.0  # weight of the predicted anomaly-map channel in the pixel map
    cls_weight: float = 0.0  # weight of the classification head's probability (when built)
    mask_seed: int = 0  # seed of the test-time masks (see sdmae.model.seeded_masks)
    erosion: int = 3  # pixel-map clean-up: erosion size in pixels (0: none)
    dilation: int = 3  # then dilation size in pixels (0: none)
    batch_size: int = 32  # frames per forward pass when scoring

    def __post_init__(self):
        if self.smoothing_sigma < 0:
            raise ConfigError(f"smoothing_sigma must be >= 0, got {self.smoothing_sigma}")
        if self.test_masks < 1:
            raise ConfigError(f"test_masks must be >= 1, got {self.test_masks}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        for name, allowed in (("tokens", TOKEN_RULES), ("token_weighting", TOKEN_WEIGHTINGS),
                              ("frame_reduce", FRAME_REDUCES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0.0 <= self.top_fraction <= 1.0:
            raise ConfigError(f"top_fraction must be in [0, 1], got {self.top_fraction}")
        for name in ("erosion", "dilation", "discrepancy_weight", "map_weight", "cls_weight", "map_channel_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class AlertConfig:
    """From scores to alerts (:mod:`sdmae.events`): the threshold is the smoothed score
    that ``false_alarm_rate`` of the held-back normal frames exceed; frames above it
    form events, closed after ``gap_seconds`` below it; events shorter than
    ``min_seconds`` are dropped."""

    false_alarm_rate: float = 0.01
    gap_seconds: float = 1.0
    min_seconds: float = 0.0

    def __post_init__(self):
        if not 0.0 < self.false_alarm_rate <= 0.5:
            raise ConfigError(f"false_alarm_rate must be in (0, 0.5], got {self.false_alarm_rate}")
        for name in ("gap_seconds", "min_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")


@dataclass(frozen=True)
class Config:
    """One run: which preset it came from, and its model, training, scoring and alert settings."""

    preset: str
    model: ModelConfig
    train: TrainConfig
    score: ScoreConfig
    alert: AlertConfig = field(default_factory=AlertConfig)

    def changed(self, **parts: dict) -> "Config":
        """A copy with some fields of its parts changed (configs are frozen), e.g.
        ``cfg.changed(score={"test_masks": 1}, alert={"false_alarm_rate": 0.05})``."""
        return dataclasses.replace(self, **{part: dataclasses.replace(getattr(self, part), **fields)
                                            for part, fields in parts.items()})

    def to_dict(self) -> dict:
        """JSON-able dict (tuples become lists), with the layout's ``version``."""
        return {"version": CONFIG_VERSION, **_jsonable(dataclasses.asdict(self))}

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """Inverse of :meth:`to_dict`, for this layout or an older one (:func:`migrate`);
        unknown or missing keys raise ConfigError naming them."""
        d = migrate(d)
        _check_keys(d, cls, "config")
        parts = {}
        for name, sub in (("model", ModelConfig), ("train", TrainConfig), ("score", ScoreConfig),
                          ("alert", AlertConfig)):
            if name in d:
                _check_keys(d[name], sub, name)
                parts[name] = sub(**d[name])
        return cls(preset=d["preset"], **parts)


def migrate(d: dict) -> dict:
    """A config dict as any sdmae wrote it -> the current layout, without the ``version`` key.

    Version 1 (no ``version`` key, before 2026-12-03) had ``in_chans`` / ``out_chans``
    in the model section (always 9 and 4), and, depending on its age, the input's
    ``frame_offset`` / ``grad_step`` in the train section, ``frame_reduce="weighted_mean"``
    (the motion-weighted mean over the hidden tokens), and no ``zoom_probability`` or
    ``calibration_fraction``: such runs were trained without zoom and on every frame.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"config: expected a dict, got {type(d).__name__}")
    d = dict(d)
    version = d.pop("version", 1)
    if version == CONFIG_VERSION:
        return d
    if version != 1:
        raise ConfigError(f"config: version {version!r} is not one this sdmae reads (1 to {CONFIG_VERSION}); "
                          "a newer sdmae wrote it")
    model, train, score = (dict(d[k]) if isinstance(d.get(k), dict) else None for k in ("model", "train", "score"))
    if model is not None:
        for name, fixed in (("in_chans", IN_CHANS), ("out_chans", OUT_CHANS)):
            if model.pop(name, fixed) != fixed:
                raise ConfigError(f"config: model.{name} must be {fixed}, the method's")
        if train is not None:
            moved = {k: train.pop(k) for k in ("frame_offset", "grad_step") if k in train}
            model = {**moved, **model}
        d["model"] = model
    if train is not None:
        train.setdefault("zoom_probability", 0.0)
        train.setdefault("calibration_fraction", 0.0)
        d["train"] = train
    if score is not None:
        if score.get("frame_reduce") == "weighted_mean":
            score.update(frame_reduce="mean", token_weighting="motion",
                         tokens="hidden" if score.get("test_masks", 1) > 1 else "all")
        d["score"] = score
    return d


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _check_keys(d: Any, cls: type, where: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a dict, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(fields)}")
    missing = sorted(n for n, f in fields.items() if n not in d
                     and f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ConfigError(f"{where}: missing keys {missing}")


def _check_size(input_size: tuple, patch: int) -> None:
    if not isinstance(patch, int) or isinstance(patch, bool) or patch < 1:
        raise ConfigError(f"patch must be a positive int, got {patch!r}")
    if (len(input_size) != 2 or any(not isinstance(s, int) or isinstance(s, bool) or s < 1
                                    for s in input_size)):
        raise ConfigError(f"input_size must be two positive ints (h, w), got {input_size!r}")
    if any(s % patch for s in input_size):
        raise ConfigError(f"input_size {tuple(input_size)} is not a multiple of patch {patch}")


def _paper_train(**kw) -> TrainConfig:
    # lr 1e-3 with warm-up instead of the original 1e-4 (see TrainConfig.lr);
    # 40 teacher epochs reach what the original schedule reached in ~200.
    # Batch 16, not 64: four times the updates for the same compute (the same
    # frames/s on a CPU); on the 400-frame real-footage dev sets it lifted the
    # authors' recipe from 0.60 / 0.73 micro AUC to 0.67 / 0.85 (RESULTS.md).
    base = dict(batch_size=16, lr=1e-3, warmup_epochs=2.0, weight_decay=0.05,
                epochs=40, student_epochs=20)
    return TrainConfig(**{**base, **kw})


def _paper_preset(name: str, input_size: tuple[int, int], patch: int, smoothing_sigma: float) -> Config:
    return Config(preset=name, model=ModelConfig(input_size=input_size, patch=patch), train=_paper_train(),
                  score=ScoreConfig(smoothing_sigma=smoothing_sigma))


PRESETS: dict[str, Config] = {
    # Paper: Avenue at 320x640, patch 16 -> 20x40 = 800 tokens.
    "avenue": _paper_preset("avenue", (320, 640), 16, smoothing_sigma=5.0),
    # Paper: ShanghaiTech at 160x320, patch 8 -> 20x40 = 800 tokens.
    "shanghaitech": _paper_preset("shanghaitech", (160, 320), 8, smoothing_sigma=5.0),
    # Paper: patch 8; size not stated here -> ShanghaiTech's 160x320 (UBnormal
    # is 16:9 720p, close enough to 1:2 after resizing) -> 800 tokens.
    "ubnormal": _paper_preset("ubnormal", (160, 320), 8, smoothing_sigma=6.0),
    # Paper: patch 4. Ped2 frames are 240x360 (2:3) -> 160x240, giving
    # 40x60 = 2400 tokens (1200 visible): 3x ShanghaiTech's sequence length.
    "ped2": _paper_preset("ped2", (160, 240), 4, smoothing_sigma=2.0),
    # CPU demos and tests: 8x12 = 96 tokens, half-width dims. One teacher
    # training step (forward + backward + AdamW, batch 32, 50 % masked)
    # measured 0.10-0.11 s median on 2 idle AMD EPYC cores, 0.19-0.24 s on one
    # busy core (torch 2.13 CPU; paper dims at this size: 0.24 s on 2 cores).
    # 20 + 10 epochs over a few hundred frames (~10 batches per epoch) is
    # ~300 steps: about a minute. lr 2e-3: reached a held-out masked-token MSE
    # of 0.018 on synthetic moving squares in 400 steps (see sdmae/model.py).
    "tiny": Config(
        preset="tiny",
        model=ModelConfig(input_size=(64, 96), patch=8, enc_dim=128, enc_heads=4,
                          dec_dim=64, dec_heads=4),
        train=TrainConfig(batch_size=32, lr=2e-3, warmup_epochs=1.0, weight_decay=0.05,
                          epochs=20, student_epochs=10),
        score=ScoreConfig(smoothing_sigma=2.0),
    ),
}


# The authors' recipe: what their official code does (documented facts, implemented
# here), wherever sdmae's defaults choose otherwise. The README's deviations
# section lists each difference with the gain measured on real footage
# (benchmarks/bench_accuracy.py); train with --recipe authors to reproduce it.
AUTHORS_RECIPE: dict[str, dict[str, Any]] = {
    "model": dict(token_mixer="shuffled", pos_embed=False, map_target="signed"),
    "train": dict(object_style="grey", anomaly_gradient="floor", student_loss="masked", speed_probability=0.0,
                  zoom_probability=0.0, calibration_fraction=0.0),
    "score": dict(test_masks=1, tokens="all", token_weighting="uniform", frame_reduce="mean",
                  map_channel_weight=1.0, discrepancy_weight=1.0),
}
RECIPES = ("sdmae", "authors")

# The fast score (``--fast``; ``Detector.load(run, score=FAST_SCORE)``): one masked pass
# a frame instead of two complementary ones, so the model runs once. On the
# real-footage dev sets it cost 0.028 micro AUC on average over two seeds
# (benchmarks/RESULTS.md).
FAST_SCORE: dict[str, Any] = {"test_masks": 1}


def get_preset(name: str, *, recipe: str = "sdmae", input_size: tuple[int, int] | None = None,
               patch: int | None = None, **train_overrides) -> Config:
    """Preset ``name`` (frozen), optionally with another model size/patch
    and TrainConfig fields overridden (e.g. ``epochs=5, lr=3e-4``).

    recipe : "sdmae" (the defaults) or "authors" (:data:`AUTHORS_RECIPE` applied:
        the official code's choices, on sdmae's schedule)

    Raises ConfigError naming the offending argument for an unknown preset or
    recipe, an input size that is not a multiple of the patch, or an unknown
    train field.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose from {list(RECIPES)}")
    cfg = PRESETS[name]  # frozen: shared, never changed; each change below makes a new one
    if recipe == "authors":
        cfg = dataclasses.replace(cfg, **{part: dataclasses.replace(getattr(cfg, part), **fields)
                                          for part, fields in AUTHORS_RECIPE.items()})
    if input_size is not None or patch is not None:
        size = cfg.model.input_size if input_size is None else tuple(input_size)
        p = cfg.model.patch if patch is None else patch
        try:
            _check_size(size, p)
        except ConfigError as e:
            given = ", ".join(f"{k}={v!r}" for k, v in (("input_size", input_size), ("patch", patch))
                              if v is not None)
            raise ConfigError(f"get_preset({name!r}, {given}): {e}") from None
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, input_size=size, patch=p))
    if train_overrides:
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(train_overrides) - known)
        if unknown:
            raise ConfigError(f"get_preset({name!r}): unknown train overrides {unknown}; "
                              f"known: {sorted(known)}")
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train_overrides))
    return cfg


def recipe_changes(start: str, goal: str, preset: str = "avenue") -> list[tuple[str, str, Any]]:
    """(part, field, value in ``goal``) for every field in which two recipes differ."""
    a, b = get_preset(preset, recipe=start), get_preset(preset, recipe=goal)
    out = []
    for part in ("model", "train", "score"):
        pa, pb = getattr(a, part), getattr(b, part)
        for f in dataclasses.fields(pa):
            if getattr(pa, f.name) != getattr(pb, f.name):
                out.append((part, f.name, getattr(pb, f.name)))
    return out
