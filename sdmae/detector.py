"""Score videos and live streams with a trained run.

frames -> frame window (:mod:`sdmae.streams`) -> kernels.prepare -> model (encoder,
teacher, student) -> kernels.score -> frame scores, pixel maps -> temporal smoothing.

Score of frame t (documented weights, ``ScoreConfig``; formulas in
:mod:`sdmae.score`): K complementary seeded masks, so every token is
hidden from the encoder in one pass and visible in the others; each token is
judged by the passes ``tokens`` selects, from its teacher error over all four
output channels (the predicted anomaly map weighing ``map_channel_weight``
RGB channels) plus ``discrepancy_weight`` times the teacher-student
discrepancy; the frame score is their mean (uniform or motion-weighted) or
max over tokens, plus ``cls_weight`` times the classification head's
probability when the model has one. Masks are seeded by the frame index, so
the same run scores the same frame identically alone, in any batch, offline
or streaming.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from . import kernels
from .calibration import Calibration, CalibrationError, Threshold, load_calibrations
from .checkpoint import CheckpointError, load_checkpoint, load_model
from .config import Config
from .data import VideoError, iter_frames, prefetch
from .events import Event, frames_for, to_events
from .hardware import resolve_precision
from .model import SDMAE, complementary_masks, seeded_masks
from .postprocess import clean_map, normalize_per_video, smooth_scores
from .score import ScoreSpec
# the stream names stay importable from here, where they were defined before streams.py
from .streams import FrameError, FrameWindow, StreamScore, StreamScorer, StreamWarning  # noqa: F401
from .target import make_target


# On a CPU a forward pass runs fastest with a few thousand tokens in the batch:
# more spill the caches. bench_model.py, bf16, 2 cores: avenue (800 tokens a
# frame) 72 frames/s at batch 4, 69 at 8, 49 at 16, 47 at 32; tiny (96 tokens)
# 1150 at 8, 1850 at 32, 2230 at 64. A GPU takes ScoreConfig.batch_size as is.
CPU_TOKENS_PER_FORWARD = 6400
# Frame rate assumed for a source that does not say (frame folders).
DEFAULT_FPS = 25.0


@dataclass
class VideoScores:
    """Scores of one video.

    raw : (T,) float64 frame scores before smoothing
    smoothed : (T,) float64 after the per-preset temporal Gaussian
    maps : (T, h, w) float32 cleaned pixel maps at the model size, or None (or, asked
        for with ``map_chunks``, the list of their per-batch (n, h, w) pieces)
    """

    raw: np.ndarray
    smoothed: np.ndarray
    maps: np.ndarray | list[np.ndarray] | None = None


class Detector:
    """A trained run, ready to score frames.

    Parameters
    ----------
    model : SDMAE with trained teacher and student (:meth:`Detector.load` fuses it for inference)
    cfg : Config of the run
    device : "cpu" or "cuda"
    """

    def __init__(self, model: SDMAE, cfg: Config, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        # prepare and score run here: the model's device, or the CPU (one RuntimeWarning)
        # where the CUDA kernels cannot run: _C_cuda not built, or built without this GPU.
        self.kernel_device = kernels.kernel_device(self.device)
        p = cfg.model.patch
        self.size = cfg.model.input_size
        self.patch = p
        self.precision = model.precision
        self._target_buffer: torch.Tensor | None = None  # see _target_image
        self._pinned: torch.Tensor | None = None  # see _upload
        self._uploaded: Any = None  # CUDA event: the last copy out of _pinned
        self._spec: tuple[Config, ScoreSpec] | None = None  # see score_spec
        self.calibrations: list[Calibration] = []  # the run's, one per score (default, fast)
        self.calibration: Calibration | None = None  # the one for this detector's score settings

    @classmethod
    def load(cls, run_dir: str | os.PathLike, device: str = "cpu", precision: str = "auto",
             score: dict | None = None, alert: dict | None = None) -> "Detector":
        """Load ``run_dir/student.pt`` (written by ``sdmae train`` after both stages).

        precision : "auto" (bf16 where ``device`` has native bf16, else fp32), "fp32",
            "bf16" or "fp16": the model's compute dtype (see :meth:`SDMAE.set_precision`)
        score : ScoreConfig fields to change from the run's, e.g. ``{"smoothing_sigma": 3.0}``
        alert : AlertConfig fields to change from the run's, e.g. ``{"false_alarm_rate": 0.001}``

        The run's ``calibration.json``, where it has one, gives the alert threshold
        (:attr:`threshold`).
        """
        precision = resolve_precision(precision, device)
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"run directory not found: {run_dir}")
        path = run_dir / "student.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{run_dir} has no student.pt: train both stages first (sdmae train ... "
                                    f"--out {run_dir})")
        state = load_checkpoint(path)
        if not state["done"]:
            raise CheckpointError(f"{path} is from an unfinished training run (epoch {state['epoch'] + 1}); "
                                  "finish it with sdmae train --resume")
        cfg = state["config"]
        if score:
            cfg = cfg.changed(score=score)
        if alert:
            cfg = cfg.changed(alert=alert)
        model = load_model(state, path).fuse_for_inference().set_precision(precision)
        detector = cls(model, cfg, device)
        detector.calibrations = load_calibrations(run_dir)
        detector.calibration = next((c for c in detector.calibrations
                                     if c.matches(dataclasses.asdict(cfg.score))), None)
        return detector

    # ----------------------------------------------------------------- alerts

    @property
    def threshold(self) -> Threshold | None:
        """The alert threshold for offline (centred-smoothed) scores, from the run's
        calibration at ``cfg.alert.false_alarm_rate``; None without a calibration made
        with this detector's score settings."""
        return self._threshold(causal=False)

    @property
    def stream_threshold(self) -> Threshold | None:
        """The same for live scores (causal smoothing: :meth:`stream`, :class:`StreamScorer`)."""
        return self._threshold(causal=True)

    def _threshold(self, causal: bool) -> Threshold | None:
        cal = self.calibration
        if cal is None or not cal.matches(dataclasses.asdict(self.cfg.score)):
            return None
        return cal.threshold(self.cfg.score.smoothing_sigma, self.cfg.alert.false_alarm_rate, causal)

    def normalize(self, scores, stream: bool = False) -> np.ndarray:
        """Smoothed scores -> [0, 1], 0.5 at the threshold (:func:`sdmae.events.normalize`);
        ``stream``: scores from a stream (causal smoothing). Raises without a threshold."""
        threshold = self.stream_threshold if stream else self.threshold
        if threshold is None:
            raise CalibrationError(self.uncalibrated_reason())
        return threshold.normalize(scores)

    def uncalibrated_reason(self) -> str:
        if not self.calibrations:
            return ("the run has no calibration (trained before sdmae kept footage back for it, or with "
                    "calibration_fraction 0): give it one with sdmae calibrate RUN --data NORMAL_VIDEOS")
        return ("the run's calibration was scored with other score settings than these (sdmae calibrates the "
                "default and the fast score); calibrate again with sdmae calibrate RUN --data NORMAL_VIDEOS")

    def events(self, smoothed, fps: float | None, stream: bool = False) -> list[Event]:
        """The events of one video's smoothed scores, by ``cfg.alert`` (gap and minimum
        length in seconds, at ``fps``, 25 where unknown)."""
        threshold = self.stream_threshold if stream else self.threshold
        if threshold is None:
            raise CalibrationError(self.uncalibrated_reason())
        return to_events(smoothed, threshold.value, **self.event_frames(fps))

    def event_frames(self, fps: float | None) -> dict:
        """``gap`` and ``min_frames`` of :class:`~sdmae.events.EventTracker` at ``fps``."""
        fps = fps or DEFAULT_FPS
        return dict(gap=frames_for(self.cfg.alert.gap_seconds, fps),
                    min_frames=max(1, frames_for(self.cfg.alert.min_seconds, fps)))

    # ----------------------------------------------------------------- core

    def score_batch(self, frames: Any, centres: np.ndarray, keys: np.ndarray, with_maps: bool = False):
        """Raw scores of some centre frames of one frame window.

        frames : (T, H, W, 3) uint8 (NumPy, or a CUDA tensor on a GPU detector)
        centres : (N,) indices into ``frames``; keys : (N,) global frame indices (mask seeds)
        returns : (N,) float64 scores, (N, h, w) float32 maps or None
        """
        return self.score_prepared(self.prepare(frames, centres), keys, with_maps)

    def prepare(self, frames: Any, centres: np.ndarray) -> kernels.Prepared:
        """``kernels.prepare`` at the model's size, on the detector's device (a GPU
        detector uploads the uint8 frames and prepares there)."""
        if self.kernel_device.type == "cuda":
            frames = self._upload(frames)
        elif torch.is_tensor(frames):  # CPU kernels (see __init__) take CPU frames
            frames = frames.cpu()
        return kernels.prepare(frames, centres, self.size, self.patch, self.cfg.model.frame_offset,
                               self.cfg.model.grad_step)

    def score_prepared(self, prep: kernels.Prepared, keys: np.ndarray, with_maps: bool = False):
        """Raw scores of prepared samples, one forward pass for all of them (they may
        come from several streams: see :class:`StreamScorer`).

        prep : from :meth:`prepare` (or several concatenated); keys : (N,) global frame
            indices (mask seeds)
        returns : (N,) float64 scores, (N, h, w) float32 maps or None
        """
        sc, m = self.cfg.score, self.cfg.model
        inputs = torch.as_tensor(prep.inputs, device=self.device)
        l = m.num_tokens
        keys_t = torch.as_tensor(np.asarray(keys, dtype=np.int64))
        if sc.test_masks == 1:
            masks = [seeded_masks(keys_t, l, m.mask_ratio, seed=sc.mask_seed, device=self.device)]
        else:  # K complementary masks: every token hidden in one pass and visible in the others
            masks = complementary_masks(keys_t, l, m.mask_ratio, sc.test_masks, seed=sc.mask_seed,
                                        device=self.device)
        teachers, students, head_probabilities = [], [], []
        with torch.inference_mode():
            for ids_keep, ids_restore, _ in masks:
                out = self.model(inputs, ids_keep, ids_restore, student=True)
                teachers.append(out.teacher.float())
                students.append(out.student.float())
                if out.cls_logit is not None:
                    head_probabilities.append(torch.sigmoid(out.cls_logit.float()))
            teacher, student = torch.stack(teachers), torch.stack(students)  # (K, N, L, p*p*4)
            hidden = torch.stack([mask.float() for _, _, mask in masks])  # (K, N, L), 1 = hidden
        on_gpu = self.kernel_device.type == "cuda"

        def host(t):
            return t if on_gpu else t.cpu().contiguous().numpy()

        target = kernels.patchify(host(self._target_image(inputs)), self.patch)
        weights = torch.as_tensor(prep.weights, device=self.kernel_device)
        classification = host(torch.stack(head_probabilities)) if head_probabilities else None  # (K, N)
        scores = kernels.score(target, host(teacher.contiguous()), host(student.contiguous()), host(weights),
                               self.score_spec, hidden=host(hidden), classification=classification,
                               with_maps=with_maps)
        frame, maps = (None if a is None else (a.cpu().numpy() if torch.is_tensor(a) else a)
                       for a in (scores.frame, scores.maps))
        return frame.astype(np.float64), maps

    @property
    def score_spec(self) -> ScoreSpec:
        """The run's score rule (its ScoreConfig, patch, size and map target) as
        :func:`sdmae.kernels.score` takes it."""
        if self._spec is None or self._spec[0] is not self.cfg:  # configs are frozen: one spec per config
            self._spec = (self.cfg, ScoreSpec.from_config(self.cfg))
        return self._spec[1]

    def _upload(self, frames: Any) -> torch.Tensor:
        """uint8 frames -> the GPU, through a reused pinned buffer (asynchronous copy).

        uint8 frames are 12x smaller than the 9-channel float inputs prepare makes
        of them, so a GPU detector copies frames and prepares there. The buffer is
        overwritten only once the previous copy out of it has finished."""
        if torch.is_tensor(frames) and frames.is_cuda:
            return frames
        host = torch.as_tensor(np.ascontiguousarray(frames))
        if self._uploaded is not None:  # several streams prepare before one forward pass
            self._uploaded.synchronize()
        pinned = self._pinned
        if pinned is None or pinned.numel() < host.numel():
            pinned = self._pinned = torch.empty(host.numel(), dtype=torch.uint8).pin_memory()
        staged = pinned[:host.numel()].view(host.shape)
        staged.copy_(host)
        on_device = staged.to(self.device, non_blocking=True)
        self._uploaded = torch.cuda.Event()
        self._uploaded.record()
        return on_device

    @property
    def batch_size(self) -> int:
        """Frames per forward pass: ``ScoreConfig.batch_size``, capped on a CPU at
        ``CPU_TOKENS_PER_FORWARD`` tokens (see there)."""
        batch = self.cfg.score.batch_size
        if self.device.type == "cpu":
            batch = min(batch, max(1, CPU_TOKENS_PER_FORWARD // self.cfg.model.num_tokens))
        return batch

    def _target_image(self, inputs: torch.Tensor) -> torch.Tensor:
        """(N, 9, h, w) inputs -> (N, 4, h, w) test-time target (no anomaly anywhere), in a
        buffer kept between batches of one size."""
        buf = self._target_buffer
        if buf is not None and (buf.shape[0] != inputs.shape[0] or buf.device != inputs.device):
            buf = None
        self._target_buffer = make_target(inputs, self.cfg.model.map_normal, out=buf)
        return self._target_buffer

    # ----------------------------------------------------------------- offline

    def score_frames(self, frames: Iterable[np.ndarray], *, with_maps: bool = False,
                     normalize: bool = False, map_chunks: bool = False) -> VideoScores:
        """Score a whole video given as an iterable of (H, W, 3) uint8 frames (or a (T, H, W, 3) array;
        NumPy, or torch: frames already on a GPU detector's device stay there).

        Frames stream through a :class:`~sdmae.streams.FrameWindow` of at most ``batch +
        2 * reach`` frames: a long video is never held in memory (unless maps are asked for: T x h x w floats).
        ``map_chunks``: ``maps`` is the list of each forward pass's (n, h, w) maps, in
        frame order, rather than one array (joining them holds the maps twice).
        """
        raw, maps = [], []
        for batch in FrameWindow(self.reach, self.batch_size).feed(frames):  # one stream, closed at the end
            f, mp = self.score_batch(*batch, with_maps)
            raw.append(f)
            if with_maps:
                maps.append(clean_map(mp, self.cfg.score.erosion, self.cfg.score.dilation))
        if not raw:
            raise VideoError("the video has no frames")
        raw_scores = np.concatenate(raw)
        smoothed = smooth_scores(raw_scores, self.cfg.score.smoothing_sigma)
        if normalize:
            smoothed = normalize_per_video(smoothed)
        if with_maps and not map_chunks:
            maps = np.concatenate(maps)
        return VideoScores(raw_scores, smoothed, maps if with_maps else None)

    def score_video(self, source: str | os.PathLike, *, with_maps: bool = False,
                    normalize: bool = False, map_chunks: bool = False) -> VideoScores:
        """Score a video file or frame folder (decoded once, streamed; decoding runs in a
        worker thread, overlapping the model). ``map_chunks`` as in :meth:`score_frames`."""
        frames = prefetch(iter_frames(source), depth=self.batch_size + 2 * self.reach)
        try:
            return self.score_frames(frames, with_maps=with_maps, normalize=normalize, map_chunks=map_chunks)
        except VideoError as exc:
            if str(source) in str(exc):
                raise
            raise VideoError(f"{source}: {exc}") from None

    @property
    def reach(self) -> int:
        """Frames a centre's score reads on each side (its inputs t +- ``frame_offset``,
        its motion t +- ``grad_step``): frame t is ready once frame t + reach has arrived."""
        return max(self.cfg.model.frame_offset, self.cfg.model.grad_step)

    # ----------------------------------------------------------------- streaming

    def stream(self, frames: Iterable[np.ndarray]) -> Iterator[StreamScore]:
        """Score a live stream frame by frame.

        Frame t is scored as soon as frame t + offset has arrived (latency:
        ``offset`` frames, 3 by default, plus one forward pass); the smoothed
        value uses a causal half-Gaussian over past scores only. A bad frame raises
        :class:`FrameError` (ending the generator); a change of resolution restarts
        the scoring with a :class:`StreamWarning` (see :class:`StreamScorer`).
        """
        scorer = StreamScorer(self)
        for frame in frames:
            yield from scorer.push("stream", frame)
        yield from scorer.close("stream")
