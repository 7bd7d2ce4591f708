"""Calibration: the alert threshold, set on normal footage the model never trained on.

``sdmae train`` keeps ``train.calibration_fraction`` of the training footage
back (:func:`held_back`), scores it after training, with the default score and
the fast one, and writes the raw frame scores to ``RUN/calibration.json``; ``sdmae calibrate RUN --data D`` rewrites
that file from any folder of normal videos. The threshold is computed when
needed (:meth:`Calibration.threshold`) from those raw scores, smoothed as the
scores it will be compared with: centred offline, causal on a live stream, and
with the run's smoothing sigma, whatever it is set to then. It is the smoothed
score that a fraction ``false_alarm_rate`` of the normal frames exceed; where the
frames are too few to show that quantile, at least the quantile of a log-normal
fitted to their raw scores (:meth:`Calibration.extrapolated`).

The raw scores depend on the score's settings (:class:`sdmae.score.ScoreSpec`),
so the file records them, one entry per score; a detector whose settings match
none (other than in the smoothing) has no threshold.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

from .data.io import atomic_write
from .errors import SdmaeError
from .postprocess import causal_smooth, smooth_scores

__all__ = ["CALIBRATION_FILE", "Calibration", "CalibrationError", "Threshold", "calibrate", "calibrate_run",
           "held_back", "load_calibrations", "save_calibrations"]

CALIBRATION_FILE = "calibration.json"
FORMAT = 2
# With at least this many training videos, whole videos are held back instead of
# each one's last frames: the model then meets scenes and hours it never saw.
WHOLE_VIDEOS_FROM = 10
# A held-back stretch shorter than this is not worth its cost to training: it would
# be mostly frames at its edges, where the neighbour frames are clamped.
MIN_HELD_FRAMES = 8
# Normal frames above the threshold for the quantile to be estimated, not just guessed:
# with fewer, the threshold is about the calibration's maximum.
MIN_EXCEEDING = 5


class CalibrationError(SdmaeError):
    """A calibration file that cannot be read, or calibration data that gives no scores."""


def held_back(lengths: list[int], fraction: float) -> list[tuple[int, int, int]]:
    """(video, start, stop) of the frames to keep out of training, ``fraction`` of them.

    With ``WHOLE_VIDEOS_FROM`` videos or more, every ``round(1 / fraction)``-th video
    whole (the last of each group); else the last ``ceil(fraction * n)`` frames of
    each video of n frames, where that leaves ``MIN_HELD_FRAMES`` on both sides.
    """
    if fraction <= 0:
        return []
    if len(lengths) >= WHOLE_VIDEOS_FROM:
        step = max(2, round(1 / fraction))
        return [(v, 0, n) for v, n in enumerate(lengths) if v % step == step - 1 and n > 0]
    out = []
    for v, n in enumerate(lengths):
        held = math.ceil(fraction * n)
        if held >= MIN_HELD_FRAMES and n - held >= MIN_HELD_FRAMES:
            out.append((v, n - held, n))
    return out


@dataclass(frozen=True)
class Threshold:
    """An alert threshold and the typical normal score (their median), both smoothed."""

    value: float
    typical: float

    def normalize(self, scores) -> np.ndarray:
        from .events import normalize

        return normalize(scores, self.value, self.typical)


@dataclass(frozen=True)
class Calibration:
    """Raw frame scores of normal footage, one array per stretch of consecutive frames.

    segments : raw scores (before smoothing) of each stretch
    score : the score settings they were computed with (``ScoreSpec`` as a dict, no smoothing)
    source : where the frames came from, in words
    """

    segments: tuple[np.ndarray, ...]
    score: dict
    source: str

    @property
    def frames(self) -> int:
        return sum(len(s) for s in self.segments)

    def smoothed(self, sigma: float, causal: bool = False) -> np.ndarray:
        smooth = causal_smooth if causal else smooth_scores
        return np.concatenate([smooth(s, sigma) for s in self.segments])

    def threshold(self, sigma: float, false_alarm_rate: float, causal: bool = False) -> Threshold:
        """The smoothed score exceeded by ``false_alarm_rate`` of the normal frames (the
        next higher score where that falls between two), and the median.

        Where the frames are too few for the rate (:meth:`shortfall`), the empirical
        quantile is about their maximum, and new footage exceeds it far more often than
        asked (76 % / 5.6 % / 3.6 % / 52 % of normal test frames at 1 % on the dev sets,
        from 18-40 frames); the threshold is then at least :meth:`extrapolated`.
        """
        s = self.smoothed(sigma, causal)
        value = float(np.quantile(s, 1.0 - false_alarm_rate, method="higher"))
        if self.shortfall(false_alarm_rate):
            value = max(value, self.extrapolated(false_alarm_rate))
        return Threshold(value, float(np.median(s)))

    def extrapolated(self, false_alarm_rate: float) -> float:
        """The ``1 - false_alarm_rate`` quantile of a log-normal fitted to the raw frame
        scores (-inf where one is not positive, or there are fewer than 3).

        Raw, not smoothed: smoothing a short stretch shrinks its spread, while on new
        footage a high score lasts (an event, a busy minute) and smoothing keeps it.
        """
        raw = np.concatenate(self.segments)
        if len(raw) < 3 or not (raw > 0).all():
            return -math.inf
        logs = np.log(raw)
        return float(np.exp(logs.mean() + NormalDist().inv_cdf(1.0 - false_alarm_rate) * logs.std(ddof=1)))

    def shortfall(self, false_alarm_rate: float) -> str | None:
        """Why these frames are too few for ``false_alarm_rate``, or None: a threshold that
        ``rate`` of them exceed needs about ``MIN_EXCEEDING / rate`` frames to mean it."""
        needed = math.ceil(MIN_EXCEEDING / false_alarm_rate)
        if self.frames >= needed:
            return None
        return (f"the calibration holds {self.frames} normal frames, and a false-alarm rate of "
                f"{100 * false_alarm_rate:g} % needs about {needed}: the threshold is extrapolated from their "
                "spread, and new footage may alert more or less often than that; calibrate on more normal footage "
                "(sdmae calibrate RUN --data NORMAL_VIDEOS)")

    def matches(self, score: dict) -> bool:
        """Whether these scores were computed with the settings ``score`` (smoothing aside)."""
        return _comparable(score) == _comparable(self.score)

    # ----------------------------------------------------------------- file

    def save(self, run_dir: str | os.PathLike) -> Path:
        """Make this the run's only calibration (see :func:`save_calibrations`)."""
        return save_calibrations(run_dir, [self])

    @classmethod
    def load(cls, run_dir: str | os.PathLike, score: dict | None = None) -> "Calibration | None":
        """The run's calibration for the score settings ``score`` (the first one, when None),
        or None where it has none."""
        found = load_calibrations(run_dir)
        return next((c for c in found if score is None or c.matches(score)), None)


def save_calibrations(run_dir: str | os.PathLike, calibrations: list[Calibration]) -> Path:
    """Write ``RUN/calibration.json`` atomically: one entry per score (the default and the
    fast one), each with the raw scores of the same normal frames."""
    path = Path(run_dir) / CALIBRATION_FILE
    state = {"format": FORMAT, "entries": [
        {"source": c.source, "frames": c.frames, "score": c.score,
         "segments": [[float(x) for x in s] for s in c.segments]} for c in calibrations]}
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(state))
    return path


def load_calibrations(run_dir: str | os.PathLike) -> list[Calibration]:
    """Every calibration of the run ([] where it has none)."""
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        return []
    try:
        state = json.loads(path.read_text())
        if state.get("format") == 1:  # one entry, written before the fast score had its own
            state = {"entries": [state]}
        elif state.get("format") != FORMAT:
            raise ValueError(f"format {state.get('format')!r}, this sdmae reads 1 and {FORMAT}")
        out = []
        for entry in state["entries"]:
            segments = tuple(np.asarray(s, dtype=np.float64) for s in entry["segments"])
            if not segments or any(s.ndim != 1 or not np.isfinite(s).all() for s in segments):
                raise ValueError("no scores, or scores that are not finite numbers")
            out.append(Calibration(segments, dict(entry["score"]), str(entry["source"])))
        return out
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CalibrationError(f"{path} cannot be read ({exc}); run sdmae calibrate {run_dir} --data "
                               "NORMAL_VIDEOS to write it again") from None


# Score settings that do not change a raw frame score.
_NOT_RAW = ("smoothing_sigma", "batch_size", "erosion", "dilation", "map_weight")


def _comparable(score: dict) -> dict:
    return {k: v for k, v in score.items() if k not in _NOT_RAW}


def calibrate(detector, clips, source: str, progress: bool = False) -> Calibration:
    """Score normal footage with ``detector`` -> its :class:`Calibration`.

    clips : video files or frame folders (paths), or (T, H, W, 3) uint8 arrays
    source : where the clips came from, in words (kept in the file)
    """
    from dataclasses import asdict

    clips = list(clips)
    if progress:
        from tqdm.auto import tqdm

        clips = tqdm(clips, desc="calibrating", leave=False)
    segments = []
    for clip in clips:
        scores = detector.score_video(clip) if isinstance(clip, (str, os.PathLike)) else detector.score_frames(clip)
        segments.append(scores.raw)
    if not segments:
        raise CalibrationError(f"{source}: no normal footage to calibrate on")
    return Calibration(tuple(segments), asdict(detector.cfg.score), source)


def calibrate_run(detector, run_dir: str | os.PathLike, clips, source: str, progress: bool = False
                  ) -> list[Calibration]:
    """Calibrate ``detector`` (a run's, with its default score) and the same model with the
    fast score (:data:`sdmae.config.FAST_SCORE`) on the same normal footage; write both to
    ``RUN/calibration.json``."""
    from .config import FAST_SCORE

    cfg = detector.cfg
    fast = type(detector)(detector.model, cfg.changed(score=FAST_SCORE),
                          detector.device)
    clips = list(clips)
    calibrations = [calibrate(d, clips, source, progress=progress) for d in (detector, fast)]
    save_calibrations(run_dir, calibrations)
    return calibrations
