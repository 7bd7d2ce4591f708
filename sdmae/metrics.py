"""Evaluation criteria: frame-level AUC (micro, macro) and RBDC / TBDC.

Frame level
    ``micro_auc`` pools the frames of all test videos into one ROC curve;
    ``macro_auc`` averages the per-video AUCs. Both are rank statistics
    (Mann-Whitney U / (n0 * n1)) with tied scores counted as half.

Region / track level (Ramachandra & Jones, WACV 2020)
    ``rbdc_tbdc`` follows the conventions of the evaluation script that
    published numbers on Avenue / ShanghaiTech are computed with, so values
    compare directly; see its docstring for each convention.

Alerts
    ``alert_quality``: events at a threshold against the frame labels, the
    fraction of normal frames alerted and of abnormal segments found.

Only NumPy (and ``scipy.stats.rankdata`` for ranking) is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "roc_auc",
    "roc_curve",
    "micro_auc",
    "macro_auc",
    "MacroAUC",
    "rbdc_tbdc",
    "rbdc_tbdc_curves",
    "DetectionCurves",
    "alert_quality",
]


# ---------------------------------------------------------------- validation
def _as_scores_labels(scores, labels, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Flatten and check one (scores, labels) pair; return (float64, bool)."""
    s = np.asarray(scores)
    y = np.asarray(labels)
    if s.shape != y.shape:
        raise ValueError(
            f"scores{where} and labels{where} must have the same shape, "
            f"got {s.shape} and {y.shape}"
        )
    if not (np.issubdtype(s.dtype, np.number) or s.dtype == bool):
        raise ValueError(f"scores{where} must be numeric, got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False).ravel()
    if np.isnan(s).any():
        raise ValueError(f"scores{where} contain NaN")
    y = y.ravel()
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"labels{where} must be 0/1 (or bool)")
        y = y.astype(bool)
    return s, y


def _auc_ranked(s: np.ndarray, y: np.ndarray) -> float:
    """AUC of validated (float64, bool) arrays that contain both classes."""
    n1 = int(y.sum())
    n0 = y.size - n1
    # Average ranks give ties half a win: AUC = U / (n0 * n1).
    r = rankdata(s)  # average method by default
    u = r[y].sum() - n1 * (n1 + 1) / 2.0
    return float(u / (n0 * n1))


def _check_list(name: str, seq) -> list:
    if isinstance(seq, np.ndarray) and seq.ndim == 1 and seq.dtype != object:
        raise TypeError(
            f"{name} must be a list of per-video 1-D arrays, got one 1-D array; "
            f"wrap it as [{name}] or use roc_auc"
        )
    return list(seq)


def _check_videos(scores, labels) -> tuple[list, list]:
    """Per-video score and label lists of one non-zero length."""
    scores, labels = _check_list("scores", scores), _check_list("labels", labels)
    if len(scores) != len(labels):
        raise ValueError(
            f"scores and labels must list the same number of videos, "
            f"got {len(scores)} and {len(labels)}"
        )
    if not scores:
        raise ValueError("scores is empty: no videos to evaluate")
    return scores, labels


# ---------------------------------------------------------------- frame AUCs
def roc_auc(scores, labels) -> float:
    """Area under the ROC curve of one set of scores (rank statistic).

    Parameters
    ----------
    scores : (T,) array_like of float
        Anomaly scores, higher = more anomalous. Any shape is accepted and
        flattened as long as ``labels`` has the same shape.
    labels : (T,) array_like of {0, 1} or bool
        Ground truth, 1 = abnormal.

    Returns
    -------
    float
        ``U / (n0 * n1)`` with U the Mann-Whitney statistic of the abnormal
        frames; tied scores count half. Equals the trapezoidal area under the
        empirical ROC curve.

    Raises
    ------
    ValueError
        If the shapes differ, ``scores`` contain NaN, ``labels`` are not 0/1,
        or only one class is present (the AUC is then undefined).
    """
    s, y = _as_scores_labels(scores, labels)
    n1 = int(y.sum())
    if n1 == 0 or n1 == y.size:
        raise ValueError(
            "labels contain only one class "
            f"({'abnormal' if n1 else 'normal'}, {y.size} frames); AUC is undefined"
        )
    return _auc_ranked(s, y)


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical ROC curve, for plotting.

    Parameters
    ----------
    scores : (T,) array_like of float
    labels : (T,) array_like of {0, 1} or bool

    Returns
    -------
    fpr, tpr : (P,) ndarray of float64
        False- and true-positive rates, from (0, 0) to (1, 1); one point per
        distinct score (tied scores move diagonally).
    thresholds : (P,) ndarray of float64
        Frames with ``score >= threshold`` are flagged; the first is ``+inf``.
    """
    s, y = _as_scores_labels(scores, labels)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("labels contain only one class; ROC curve is undefined")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # Keep the last index of each run of equal scores: ties form one step.
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    fpr = np.r_[0.0, fp / n0]
    tpr = np.r_[0.0, tp / n1]
    return fpr, tpr, np.r_[np.inf, s[last]]


def micro_auc(scores: Sequence, labels: Sequence) -> float:
    """Frame-level AUC with the frames of all videos pooled.

    Parameters
    ----------
    scores : list of (T_v,) array_like of float
        Per-video frame scores.
    labels : list of (T_v,) array_like of {0, 1}
        Per-video ground truth, same lengths as ``scores``.

    Returns
    -------
    float
        ``roc_auc`` of the concatenated frames. Scores of different videos are
        compared with each other, so per-video offsets matter here.
    """
    scores, labels = _check_videos(scores, labels)
    pairs = [_as_scores_labels(s, y, f"[{v}]") for v, (s, y) in enumerate(zip(scores, labels))]
    return roc_auc(np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]))


class MacroAUC(float):
    """Macro AUC: a float with bookkeeping attached.

    Behaves as the plain float ``value`` (arithmetic, comparisons,
    formatting) and carries how it was obtained.

    Attributes
    ----------
    used : int
        Number of videos averaged (those containing both classes).
    skipped : int
        Number of videos left out because they contain one class only
        (their AUC is undefined). Always 0 with ``padded=True``.
    per_video : (V,) ndarray of float64
        AUC of each video in input order; NaN for skipped videos.
    padded : bool
        Whether the official code's padding convention was used.
    """

    used: int
    skipped: int
    per_video: np.ndarray
    padded: bool

    def __new__(cls, value: float, used: int, skipped: int, per_video, padded: bool = False):
        obj = super().__new__(cls, value)
        obj.used = int(used)
        obj.skipped = int(skipped)
        obj.per_video = np.asarray(per_video, dtype=np.float64)
        obj.padded = bool(padded)
        return obj

    @property
    def value(self) -> float:
        """The average as a plain float."""
        return float(self)

    def __getnewargs__(self):  # keeps the attributes through pickle / copy
        return (float(self), self.used, self.skipped, self.per_video, self.padded)

    def __repr__(self) -> str:
        extra = ", padded=True" if self.padded else ""
        return f"MacroAUC({float(self)!r}, used={self.used}, skipped={self.skipped}{extra})"


def macro_auc(scores: Sequence, labels: Sequence, *, padded: bool = False) -> MacroAUC:
    """Mean of the per-video frame-level AUCs.

    Parameters
    ----------
    scores, labels : per-video frame scores and 0/1 ground truth, as in :func:`micro_auc`
    padded : bool, default False
        Reproduce the official SSMTL / SDMAE evaluation code, for comparison
        with published numbers only. Every video gets one extra frame in
        front (label 0, score 0) and one behind (label 1, score 1) before its
        AUC is computed, so every video has both classes and none is skipped.
        The convention assumes scores min-max normalised to [0, 1] per video
        (see ``sdmae.postprocess.normalize_per_video``); this function does
        *not* normalise them. The fake pair is ranked correctly (ties aside,
        with real scores of exactly 0 or 1), which inflates the AUC, most for
        short videos and for entirely normal videos, whose true AUC is
        undefined and which then count with an AUC near 1.

    Returns
    -------
    MacroAUC
        A float (the mean over used videos) with ``used``, ``skipped``,
        ``per_video`` and ``padded`` attributes.

    Raises
    ------
    ValueError
        If no video contains both classes (unpadded), or inputs are invalid.
    """
    scores, labels = _check_videos(scores, labels)
    per_video = np.full(len(scores), np.nan)
    for v, (s_v, y_v) in enumerate(zip(scores, labels)):
        s, y = _as_scores_labels(s_v, y_v, f"[{v}]")
        if padded:
            s = np.concatenate(([0.0], s, [1.0]))
            y = np.concatenate(([False], y, [True]))
        n1 = int(y.sum())
        if 0 < n1 < y.size:
            per_video[v] = _auc_ranked(s, y)
    used = int(np.isfinite(per_video).sum())
    if used == 0:
        raise ValueError(
            f"none of the {len(scores)} videos contains both normal and abnormal "
            "frames; macro AUC is undefined"
        )
    return MacroAUC(float(np.nanmean(per_video)), used, len(scores) - used, per_video, padded)


# ---------------------------------------------------------------- RBDC / TBDC
@dataclass(frozen=True)
class DetectionCurves:
    """RBDR / TBDR curves over the false-positive rate.

    Attributes
    ----------
    fpr : (P,) ndarray of float64
        False positives per frame, non-decreasing, starts at 0 and ends at 1.
    rbdr, tbdr : (P,) ndarray of float64
        Region- and track-based detection rates at each point.
    rbdc, tbdc : float
        Trapezoidal areas under ``rbdr`` and ``tbdr`` over ``fpr`` in [0, 1].
    """

    fpr: np.ndarray
    rbdr: np.ndarray
    tbdr: np.ndarray
    rbdc: float
    tbdc: float


def _iou_inclusive(box: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box with (G, 4) boxes; inclusive pixel coordinates."""
    iw = np.minimum(box[2], gts[:, 2]) - np.maximum(box[0], gts[:, 0]) + 1
    ih = np.minimum(box[3], gts[:, 3]) - np.maximum(box[1], gts[:, 1]) + 1
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    area_b = (gts[:, 2] - gts[:, 0] + 1) * (gts[:, 3] - gts[:, 1] + 1)
    return inter / (area_a + area_b - inter)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid-rule area (np.trapezoid is NumPy >= 2 only)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def _as_table(arr, ncols: int, name: str) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, ncols))
    if a.ndim != 2 or a.shape[1] != ncols:
        raise ValueError(f"{name} must have shape (K, {ncols}), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _integer_column(col: np.ndarray, name: str) -> np.ndarray:
    if not np.array_equal(col, np.round(col)):
        raise ValueError(f"{name} must hold integer values")
    return col.astype(np.int64)


def rbdc_tbdc_curves(
    detections: Sequence,
    tracks: Sequence,
    num_frames,
    *,
    iou_threshold: float = 0.1,
    track_fraction: float = 0.1,
) -> DetectionCurves:
    """RBDR / TBDR curves and their areas; see :func:`rbdc_tbdc`.

    Takes the same arguments as :func:`rbdc_tbdc` and returns a
    :class:`DetectionCurves` (curves for plotting plus both areas).
    """
    detections = list(detections)
    tracks = list(tracks)
    if len(detections) != len(tracks):
        raise ValueError(
            f"detections and tracks must list the same number of videos, "
            f"got {len(detections)} and {len(tracks)}"
        )
    total_frames = int(np.sum(num_frames))
    if np.ndim(num_frames) == 1 and len(num_frames) != len(tracks):
        raise ValueError(f"num_frames lists {len(num_frames)} videos, tracks {len(tracks)}")
    if total_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")

    # Ground truth: one region per (video, frame, box); regions grouped by
    # (video, frame) for matching, tracks numbered globally.
    gt_boxes: dict[tuple[int, int], np.ndarray] = {}  # (video, frame) -> (G, 4)
    gt_ids: dict[tuple[int, int], np.ndarray] = {}  # (video, frame) -> (G,) region ids
    region_track: list[np.ndarray] = []  # per video: global track of each region
    track_len: list[np.ndarray] = []
    n_regions = 0
    n_tracks = 0
    for v, tr in enumerate(tracks):
        t = _as_table(tr, 6, f"tracks[{v}]")
        tid = _integer_column(t[:, 0], f"tracks[{v}] track ids (column 0)")
        frame = _integer_column(t[:, 1], f"tracks[{v}] frames (column 1)")
        uniq, local, counts = np.unique(tid, return_inverse=True, return_counts=True)
        pairs = np.unique(np.stack([tid, frame], 1), axis=0) if len(t) else t[:, :2]
        if len(pairs) != len(t):
            raise ValueError(
                f"tracks[{v}] has a track with two regions in one frame; "
                "each track holds at most one box per frame"
            )
        region_ids = n_regions + np.arange(len(t))
        region_track.append(n_tracks + local)
        track_len.append(counts)
        for f in np.unique(frame):
            sel = frame == f
            gt_boxes[(v, int(f))] = t[sel, 2:6]
            gt_ids[(v, int(f))] = region_ids[sel]
        n_regions += len(t)
        n_tracks += len(uniq)
    if n_regions == 0:
        raise ValueError("tracks contain no regions; RBDC / TBDC are undefined")
    region_track_all = np.concatenate(region_track)
    track_len_all = np.concatenate(track_len)

    # Detections from all videos ranked together by score (descending,
    # stable: ties keep input order, as in the reference script).
    dets = [_as_table(d, 6, f"detections[{v}]") for v, d in enumerate(detections)]
    video = np.concatenate([np.full(len(d), v) for v, d in enumerate(dets)]).astype(np.int64)
    dets_all = np.concatenate(dets) if dets else np.zeros((0, 6))
    det_frame = _integer_column(dets_all[:, 0], "detection frames (column 0)")
    order = np.argsort(-dets_all[:, 5], kind="stable")

    found = np.zeros(n_regions, dtype=bool)
    matched_per_track = np.zeros(n_tracks, dtype=np.int64)
    tracks_detected = 0
    k = len(order)
    tp = np.zeros(k)
    fp = np.zeros(k)
    tbdr = np.zeros(k)
    for i, j in enumerate(order):
        key = (int(video[j]), int(det_frame[j]))
        boxes = gt_boxes.get(key)
        if boxes is None:
            fp[i] = 1  # no ground truth in this frame
        else:
            hits = gt_ids[key][_iou_inclusive(dets_all[j, 1:5], boxes) >= iou_threshold]
            if hits.size == 0:
                fp[i] = 1
            else:
                # Only regions not yet detected count; a detection whose
                # matches were all found earlier is neither TP nor FP.
                new = hits[~found[hits]]
                found[new] = True
                tp[i] = new.size
                for r in new:
                    t_id = region_track_all[r]
                    before = (matched_per_track[t_id] / track_len_all[t_id]) >= track_fraction
                    matched_per_track[t_id] += 1
                    after = (matched_per_track[t_id] / track_len_all[t_id]) >= track_fraction
                    tracks_detected += int(after and not before)
        tbdr[i] = tracks_detected / n_tracks

    fpr = np.r_[0.0, np.cumsum(fp)] / total_frames
    rbdr = np.r_[0.0, np.cumsum(tp)] / n_regions
    tbdr = np.r_[0.0, tbdr]
    # Keep points up to FP rate 1, then extend flat (last kept value) to 1.
    keep = int(np.searchsorted(fpr, 1.0, side="right"))
    fpr, rbdr, tbdr = fpr[:keep], rbdr[:keep], tbdr[:keep]
    if fpr[-1] != 1.0:
        fpr, rbdr, tbdr = np.r_[fpr, 1.0], np.r_[rbdr, rbdr[-1]], np.r_[tbdr, tbdr[-1]]
    # FP-rate range is [0, 1], so the area needs no further normalisation.
    return DetectionCurves(
        fpr=fpr,
        rbdr=rbdr,
        tbdr=tbdr,
        rbdc=_trapezoid(rbdr, fpr),
        tbdc=_trapezoid(tbdr, fpr),
    )


def rbdc_tbdc(detections: Sequence, tracks: Sequence, num_frames, **options: float) -> tuple[float, float]:
    """Region- and Track-Based Detection Criteria (Ramachandra & Jones, 2020).

    Parameters
    ----------
    detections : list of (K_v, 6) array_like of float
        Per video, detected anomalous regions
        ``[frame, x0, y0, x1, y1, score]``; an empty array for none.
    tracks : list of (M_v, 6) array_like of int
        Per video, ground-truth regions ``[track_id, frame, x0, y0, x1, y1]``.
        Track ids are local to each video (any integers); a track has at most
        one region per frame. Frames are compared with detection frames as
        integers, so use the same indexing (e.g. 0-based) for both.
    num_frames : int or list of int
        Number of test frames in total, or per video (summed).
    iou_threshold : float, keyword, default 0.1
        A detection matches a region when their IoU is ``>=`` this.
    track_fraction : float, keyword, default 0.1
        A track counts as detected once ``>=`` this fraction of its regions
        have been detected.

    Returns
    -------
    rbdc, tbdc : float
        Areas under the region- and track-detection-rate curves for false
        positives per frame in [0, 1]; both lie in [0, 1].

    Notes
    -----
    The conventions follow the widely used reference script (Georgescu et
    al.), so the numbers compare with published ones:

    * Boxes are inclusive pixel boxes: width ``x1 - x0 + 1``; the
      intersection of ``[x0, x1]`` and ``[a0, a1]`` is
      ``max(0, min(x1, a1) - max(x0, a0) + 1)``.
    * Detections of all videos are sorted together by score, descending
      (stable, so ties keep their input order, video by video), and the
      threshold is lowered one detection at a time; tied scores are not
      grouped into a single point.
    * A detection in a frame without ground truth, or matching no region of
      its frame, is one false positive. A detection matching regions counts
      as ``n`` true positives, ``n`` being the number of its matched regions
      not detected before (one detection may detect several regions); if all
      of them were already detected it is neither true nor false positive.
    * RBDR = detected regions / all regions; TBDR = detected tracks / all
      tracks; FP rate = false positives / ``num_frames``.
    * The curves start at (0, 0); points with FP rate <= 1 are kept and, if
      the last one is below 1, the curve is extended flat (with its last
      value, not interpolated) to FP rate 1. Areas use the trapezoid rule;
      the FP-rate range has length 1, so no further normalisation.

    Use :func:`rbdc_tbdc_curves` to get the curves themselves.
    """
    c = rbdc_tbdc_curves(detections, tracks, num_frames, **options)  # the keywords are checked there
    return c.rbdc, c.tbdc


# ---------------------------------------------------------------- alerts
def alert_quality(smoothed: Sequence, labels: Sequence, threshold: float, gap: Sequence | int = 0,
                  min_frames: Sequence | int = 1) -> dict:
    """Events at ``threshold`` (:func:`sdmae.events.to_events`) against frame labels.

    smoothed, labels : per video, (T,) scores and 0/1 labels
    gap, min_frames : the event settings in frames, one for all videos or one per video
    returns : ``normal_alerted`` (fraction of the normal frames that lie inside an
        event), ``segments`` (maximal runs of abnormal frames), ``segments_found``
        (those an event overlaps) and ``events``
    """
    from .events import alert_mask, runs, to_events

    n = len(smoothed)
    gaps = [gap] * n if np.isscalar(gap) else list(gap)
    shortest = [min_frames] * n if np.isscalar(min_frames) else list(min_frames)
    normal, segments, found, events = [], 0, 0, 0
    for s, y, g, m in zip(smoothed, labels, gaps, shortest):
        found_events = to_events(s, threshold, gap=int(g), min_frames=int(m))
        alerts = alert_mask(found_events, len(s)).astype(bool)
        y = np.asarray(y).astype(bool)
        normal.append(alerts[~y])
        for a, b in runs(y):
            segments += 1
            found += bool(alerts[a:b].any())
        events += len(found_events)
    normal = np.concatenate(normal) if normal else np.zeros(0, bool)
    return {"normal_alerted": float(normal.mean()) if normal.size else None, "segments": segments,
            "segments_found": found, "events": events}
