"""Evaluate a trained run on a dataset's test split: micro/macro AUC, RBDC, TBDC.

Under torchrun the test videos are sharded across ranks (video i goes to rank
i % world) and the scores are gathered on rank 0, so the result is identical
to a single process.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from . import distributed as dist
from .data import DatasetError, VideoRecord, load_dataset
from .detector import Detector, VideoScores
from .metrics import macro_auc, micro_auc, rbdc_tbdc
from .postprocess import map_threshold, maps_to_detections, scale_boxes

# Candidate regions come from one low threshold on the maps (a quantile of all
# map values of the video); RBDC/TBDC then sweep over the region scores.
MAP_QUANTILE = 0.97


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    videos: list[VideoRecord]
    scores: list[VideoScores]
    per_video: list[dict[str, Any]] = field(default_factory=list)


def evaluate(detector: Detector, data: str | os.PathLike, layout: str | None = None, *,
             with_maps: bool = True, progress: bool = True, device: str = "cpu",
             normalize: bool = False) -> Evaluation | None:
    """Score every test video of ``data`` and compute the paper's four metrics.

    Returns the Evaluation on rank 0 (None on other ranks). ``metrics`` holds
    micro_auc, macro_auc (with videos used/skipped), rbdc, tbdc (None where the
    dataset has no pixel ground truth), frames, fps (end-to-end, decode
    included) and the settings used.
    """
    ctx = dist.setup(device)
    records = load_dataset(data, layout, split="test")
    mine = list(range(ctx.rank, len(records), ctx.world_size))
    started = time.perf_counter()
    results = {}
    from tqdm.auto import tqdm

    for i in tqdm(mine, desc="scoring test videos", disable=not (progress and ctx.is_main), leave=False):
        rec = records[i]
        scores = detector.score_video(rec.source, with_maps=with_maps, normalize=normalize)
        if len(scores.raw) != rec.num_frames:
            raise DatasetError(f"video {rec.name} ({rec.source}): decoded {len(scores.raw)} frames but the "
                               f"dataset lists {rec.num_frames}")
        results[i] = scores
    elapsed = time.perf_counter() - started
    gathered = dist.gather((results, elapsed), ctx)
    if not ctx.is_main:
        return None
    all_scores: dict[int, VideoScores] = {}
    for part, _ in gathered:
        all_scores.update(part)
    wall = max(t for _, t in gathered)
    ordered = [all_scores[i] for i in range(len(records))]
    return Evaluation(_metrics(detector, records, ordered, wall, normalize), records, ordered)


def _metrics(detector: Detector, records: list[VideoRecord], scores: list[VideoScores], wall: float,
             normalize: bool) -> dict[str, Any]:
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

    if scores and scores[0].maps is not None:
        detections, tracks = [], []
        for rec, s in zip(records, scores):
            gt = rec.tracks()
            if gt is None:
                break
            threshold = map_threshold(s.maps, MAP_QUANTILE)
            dets = maps_to_detections(s.maps, threshold)
            size = _frame_size(rec)
            detections.append(scale_boxes(dets, s.maps.shape[1:], size) if len(dets) else dets)
            tracks.append(gt)
        else:
            if sum(len(t) for t in tracks):
                rbdc, tbdc = rbdc_tbdc(detections, tracks, [len(s.raw) for s in scores])
                out["rbdc"], out["tbdc"] = float(rbdc), float(tbdc)
    cfg = detector.cfg
    out["settings"] = {
        "preset": cfg.preset, "input_size": list(cfg.model.input_size), "patch": cfg.model.patch,
        "smoothing_sigma": cfg.score.smoothing_sigma, "discrepancy_weight": cfg.score.discrepancy_weight,
        "map_weight": cfg.score.map_weight, "cls_weight": cfg.score.cls_weight,
        "frame_reduce": cfg.score.frame_reduce, "test_masks": cfg.score.test_masks, "tokens": cfg.score.tokens,
        "token_weighting": cfg.score.token_weighting, "map_channel_weight": cfg.score.map_channel_weight,
        "top_fraction": cfg.score.top_fraction,
        "mask_seed": cfg.score.mask_seed, "per_video_normalization": normalize,
        "map_threshold_quantile": MAP_QUANTILE, "device": str(detector.device),
        "precision": detector.precision,
    }
    return out


def _frame_size(rec: VideoRecord) -> tuple[int, int]:
    from .data import video_info

    info = video_info(rec.source)
    return info.size
