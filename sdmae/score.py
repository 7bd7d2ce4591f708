"""The score rule in one place: :class:`ScoreSpec` and the per-frame step every backend shares.

Scoring has two halves. The heavy half reads the model's predictions (K masked
passes of (N, L, p*p*C) values) and is fused into kernels
(:func:`sdmae.kernels.score`, its NumPy twin :func:`sdmae.reference.score_passes`):
per-pass token errors and discrepancies, and the pixel maps. The cheap half,
here, turns the (K, N, L) token values into frame scores: which passes judge a
token, token weights, the reduction over tokens, the classification term. A
new score variant is a field of :class:`ScoreSpec` and a change to
:func:`frame_scores`; no kernel or binding changes.

    >>> from sdmae.config import get_preset
    >>> spec = ScoreSpec.from_config(get_preset("tiny"))
    >>> spec.patch, spec.size, spec.frame_reduce
    (8, (64, 96), 'top')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .config import FRAME_REDUCES, TOKEN_RULES, TOKEN_WEIGHTINGS, ConfigError, ScoreConfig

if TYPE_CHECKING:
    from .config import Config

__all__ = ["ScoreSpec", "frame_scores", "judged_passes", "top_count"]

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ScoreConfig)}


@dataclass(frozen=True)
class ScoreSpec:
    """Everything that turns a model's masked passes into scores, under the names
    :class:`~sdmae.config.ScoreConfig` gives them (defaults: its defaults).

    patch, size : the model's token side and (h, w) input size
    map_normal : the anomaly-map channel's target where nothing is abnormal
        (``ModelConfig.map_normal``: -1 for "signed" targets, 0 for "unit")
    the rest : see :class:`~sdmae.config.ScoreConfig`
    """

    patch: int
    size: tuple[int, int]
    map_normal: float = 0.0
    tokens: str = _DEFAULTS["tokens"]
    token_weighting: str = _DEFAULTS["token_weighting"]
    frame_reduce: str = _DEFAULTS["frame_reduce"]
    top_fraction: float = _DEFAULTS["top_fraction"]
    map_channel_weight: float = _DEFAULTS["map_channel_weight"]
    discrepancy_weight: float = _DEFAULTS["discrepancy_weight"]
    map_weight: float = _DEFAULTS["map_weight"]
    cls_weight: float = _DEFAULTS["cls_weight"]

    def __post_init__(self):
        object.__setattr__(self, "size", tuple(int(s) for s in self.size))
        if not isinstance(self.patch, int) or self.patch < 1:
            raise ConfigError(f"patch must be a positive int, got {self.patch!r}")
        if len(self.size) != 2 or any(s < 1 or s % self.patch for s in self.size):
            raise ConfigError(f"size must be two positive multiples of patch {self.patch}, got {self.size!r}")
        for name, allowed in (("tokens", TOKEN_RULES), ("token_weighting", TOKEN_WEIGHTINGS),
                              ("frame_reduce", FRAME_REDUCES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("map_normal", "top_fraction", "map_channel_weight", "discrepancy_weight", "map_weight",
                     "cls_weight"):
            value = getattr(self, name)
            if not np.isfinite(value):
                raise ConfigError(f"{name} must be finite, got {value}")
            if name != "map_normal" and value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        if self.map_normal >= 1:
            raise ConfigError(f"map_normal must be < 1, got {self.map_normal}")
        if self.top_fraction > 1:
            raise ConfigError(f"top_fraction must be in [0, 1], got {self.top_fraction}")

    @classmethod
    def from_config(cls, cfg: Config) -> ScoreSpec:
        """The spec of a run: its ScoreConfig, patch, input size and map target."""
        fields = {f.name for f in dataclasses.fields(cls)} & set(_DEFAULTS)
        return cls(patch=cfg.model.patch, size=cfg.model.input_size, map_normal=cfg.model.map_normal,
                   **{name: getattr(cfg.score, name) for name in fields})

    @property
    def num_tokens(self) -> int:
        """L = (h/p) * (w/p)."""
        return (self.size[0] // self.patch) * (self.size[1] // self.patch)


def top_count(spec: ScoreSpec) -> int:
    """Tokens averaged by the "max" (1) and "top" (a fraction of L, at least 1) reductions."""
    l = spec.num_tokens
    return 1 if spec.frame_reduce == "max" else max(1, min(l, round(spec.top_fraction * l)))


def judged_passes(tokens: str, hidden: np.ndarray) -> np.ndarray:
    """(K, N, L) float32, 1 where pass k judges token i: every pass ("all"), the passes
    where the encoder saw it ("visible"), or those where it was hidden ("hidden").

    hidden : (K, N, L) float32, 1 = hidden from the encoder in that pass
    """
    if tokens == "all":
        return np.ones_like(hidden, dtype=np.float32)
    return (hidden if tokens == "hidden" else 1 - hidden).astype(np.float32)


def frame_scores(spec: ScoreSpec, error: np.ndarray, discrepancy: np.ndarray, hidden: np.ndarray,
                 weights: np.ndarray, classification: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame scores from per-pass token values: the cheap half of the score, one
    function for every backend.

    With u_ki = 1 where pass k judges token i (:func:`judged_passes`):
      e_i = mean over judged k of error_ki (likewise d_i);  c_i = e_i + discrepancy_weight * d_i
    only tokens with a judged pass count (v_i = 1, else 0). With token weights
    m_i = v_i ("uniform") or v_i * weights_i ("motion"):
      frame = sum_i m_i c_i / sum_i m_i        ("mean"; 0 when no weight)
      frame = max_i c_i * m_i / max_j m_j      ("max")
      frame = mean of the k largest c_i * m_i / max_j m_j, k = max(1, round(top_fraction * L))   ("top")
    With a classification head (probability q_k of "anomaly" in pass k):
      frame += cls_weight * mean_k q_k
    Token values average in float32 (as the kernels write them); the frame
    reduction runs in float64.

    error, discrepancy : (K, N, L) float32 per-pass token values (the kernels' output)
    hidden : (K, N, L) float32, 1 = hidden from the encoder in pass k
    weights : (N, L) float32 motion weights
    classification : (K, N) float32 head probabilities, or None
    returns : token_error (N, L), token_discrepancy (N, L), frame (N,), all float32
    """
    use = judged_passes(spec.tokens, hidden)  # (K, N, L)
    count = use.sum(axis=0)  # (N, L) passes that judge each token
    safe = np.maximum(count, 1)
    token_error = ((error * use).sum(axis=0, dtype=np.float32) / safe).astype(np.float32)
    token_discrepancy = ((discrepancy * use).sum(axis=0, dtype=np.float32) / safe).astype(np.float32)
    token_score = token_error.astype(np.float64) + spec.discrepancy_weight * token_discrepancy.astype(np.float64)
    m = (count > 0).astype(np.float64)  # (N, L)
    if spec.token_weighting == "motion":
        m = m * weights
    if spec.frame_reduce == "mean":
        total = m.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            frame = np.where(total > 0, (m * token_score).sum(axis=-1) / total, 0.0)
    else:
        top = m.max(axis=-1, keepdims=True)  # (N, 1)
        relative = token_score * (m / np.where(top > 0, top, 1))  # (N, L); 0 for unjudged tokens
        k = top_count(spec)
        frame = np.sort(relative, axis=-1)[:, relative.shape[1] - k:].mean(axis=-1)
    frame = frame.astype(np.float32)
    if classification is not None and spec.cls_weight != 0:
        frame = frame + np.float32(spec.cls_weight) * classification.mean(axis=0, dtype=np.float32)
    return token_error, token_discrepancy, frame.astype(np.float32)
