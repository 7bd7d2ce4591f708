"""Evaluate a trained run on a dataset's test split: micro/macro AUC, RBDC, TBDC.

Memory stays bounded by the longest video, not the test set: as soon as a
video is scored, its pixel maps become region detections (boxes and scores)
and are dropped. Under torchrun the test videos are sharded across ranks
(video i goes to rank i % world) and rank 0 gathers the frame scores, boxes
and ground-truth tracks, never maps, so the result is identical to a single
process.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from . import distributed as dist
from .data import DatasetError, VideoRecord, load_dataset
from .detector import Detector, VideoScores
from .metrics import alert_quality, macro_auc, micro_auc, rbdc_tbdc
from .postprocess import map_threshold, maps_to_detections, scale_boxes

# Candidate regions come from one low threshold on the maps (a quantile of all
# map values of the video); RBDC/TBDC then sweep over the region scores.
MAP_QUANTILE = 0.97


@dataclass
class Evaluation:
    """``scores[i]`` and ``detections[i]`` belong to ``videos[i]``. ``scores[i].maps`` is
    None unless :func:`evaluate` was asked to ``keep_maps``; ``detections[i]`` is the
    video's (M, 6) ``[frame, x0, y0, x1, y1, score]`` boxes in frame pixels, or None where
    no maps were computed."""

    metrics: dict[str, Any]
    videos: list[VideoRecord]
    scores: list[VideoScores]
    per_video: list[dict[str, Any]] = field(default_factory=list)
    detections: list[np.ndarray | None] = field(default_factory=list)


@dataclass
class _VideoResult:
    """What one video's scoring leaves: its scores, and its boxes and ground-truth tracks
    where region metrics are computed."""

    scores: VideoScores
    detections: np.ndarray | None = None
    tracks: np.ndarray | None = None


def evaluate(detector: Detector, data: str | os.PathLike, layout: str | None = None, *,
             with_maps: bool = True, progress: bool = True, device: str = "cpu",
             normalize: bool = False, keep_maps: bool = False) -> Evaluation | None:
    """Score every test video of ``data`` and compute the paper's four metrics.

    Returns the Evaluation on rank 0 (None on other ranks). ``metrics`` holds
    micro_auc, macro_auc (with videos used/skipped), rbdc, tbdc (None where the
    dataset has no pixel ground truth, or ``with_maps`` is False), frames, fps
    (end to end: decoding, scoring, and each video's boxes and ground-truth tracks)
    and the settings used. Maps are computed only
    for RBDC/TBDC (every test video has pixel ground truth) or for ``keep_maps``,
    which also returns them (T x h x w float32 per video, all in memory).
    """
    ctx = dist.setup(device)
    records = load_dataset(data, layout, split="test")
    regions = with_maps and all(r.has_tracks for r in records)
    mine = list(range(ctx.rank, len(records), ctx.world_size))
    started = time.perf_counter()
    results: dict[int, _VideoResult] = {}
    from tqdm.auto import tqdm

    for i in tqdm(mine, desc="scoring test videos", disable=not (progress and ctx.is_main), leave=False):
        results[i] = _score_video(detector, records[i], regions, keep_maps, normalize)
    elapsed = time.perf_counter() - started
    gathered = dist.gather((results, elapsed), ctx)
    if not ctx.is_main:
        return None
    every: dict[int, _VideoResult] = {}
    for part, _ in gathered:
        every.update(part)
    wall = max(t for _, t in gathered)
    ordered = [every[i] for i in range(len(records))]
    return Evaluation(_metrics(detector, records, ordered, wall, normalize, regions), records,
                      [r.scores for r in ordered], detections=[r.detections for r in ordered])


def _score_video(detector: Detector, rec: VideoRecord, regions: bool, keep_maps: bool,
                 normalize: bool) -> _VideoResult:
    """Score one test video; its maps become boxes here, and are dropped unless kept."""
    scores = detector.score_video(rec.source, with_maps=regions or keep_maps, normalize=normalize,
                                  map_chunks=not keep_maps)  # pieces: never the maps twice
    if len(scores.raw) != rec.num_frames:
        raise DatasetError(f"video {rec.name} ({rec.source}): decoded {len(scores.raw)} frames but the "
                           f"dataset lists {rec.num_frames}")
    if not regions:
        return _VideoResult(scores)
    pieces = [scores.maps] if keep_maps else scores.maps
    threshold = map_threshold(pieces, MAP_QUANTILE)
    starts = np.cumsum([0] + [len(m) for m in pieces])
    detections = np.concatenate([maps_to_detections(m, threshold, frame_offset=int(t))
                                 for m, t in zip(pieces, starts)])
    if len(detections):
        detections = scale_boxes(detections, pieces[0].shape[1:], _frame_size(rec))
    if not keep_maps:
        scores = replace(scores, maps=None)
    return _VideoResult(scores, detections, rec.tracks())


def _metrics(detector: Detector, records: list[VideoRecord], results: list[_VideoResult], wall: float,
             normalize: bool, regions: bool) -> dict[str, Any]:
    scores = [r.scores for r in results]
    labelled = [(r, s) for r, s in zip(records, scores) if r.labels is not None]
    frames = int(sum(len(s.raw) for s in scores))
    out: dict[str, Any] = {"micro_auc": None, "macro_auc": None, "rbdc": None, "tbdc": None,
                           "frames": frames, "fps": frames / wall if wall > 0 else None,
                           "videos": len(records)}
    if labelled:
        smoothed = [s.smoothed for _, s in labelled]
        labels = [r.labels for r, _ in labelled]
        if any(lab.any() for lab in labels) and not all(lab.all() for lab in labels):
            out["micro_auc"] = float(micro_auc(smoothed, labels))
            try:
                mac = macro_auc(smoothed, labels)
                out["macro_auc"] = float(mac)
                out["macro_auc_videos_used"] = int(mac.used)
                out["macro_auc_videos_skipped"] = int(mac.skipped)
            except ValueError:  # no video holds both classes
                pass
    else:
        warnings.warn("no test video has frame labels: AUCs are not computed", RuntimeWarning, stacklevel=2)

    if regions and sum(len(r.tracks) for r in results):
        rbdc, tbdc = rbdc_tbdc([r.detections for r in results], [r.tracks for r in results],
                               [len(s.raw) for s in scores])
        out["rbdc"], out["tbdc"] = float(rbdc), float(tbdc)
    threshold = detector.threshold
    if threshold is not None and labelled and not normalize:
        # the run's alerts against the labels: what a user of `sdmae score` or `watch` would get
        frames = [detector.event_frames(r.fps) for r, _ in labelled]
        out["alerts"] = {"threshold": threshold.value, "false_alarm_rate": detector.cfg.alert.false_alarm_rate,
                         **alert_quality([s.smoothed for _, s in labelled], [r.labels for r, _ in labelled],
                                         threshold.value, [f["gap"] for f in frames],
                                         [f["min_frames"] for f in frames])}
    cfg = detector.cfg
    out["settings"] = {
        "preset": cfg.preset, "input_size": list(cfg.model.input_size), "patch": cfg.model.patch,
        **asdict(cfg.score), **asdict(cfg.alert), "per_video_normalization": normalize,
        "map_threshold_quantile": MAP_QUANTILE, "device": str(detector.device),
        "precision": detector.precision,
    }
    return out


def _frame_size(rec: VideoRecord) -> tuple[int, int]:
    from .data import video_info

    info = video_info(rec.source)
    return info.size
