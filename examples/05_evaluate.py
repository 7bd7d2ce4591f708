"""The four evaluation criteria of video anomaly detection, on toy videos.

Frame level: every frame has a score and a 0/1 label.
  * micro AUC pools the frames of all videos into one ROC curve, so scores
    of different videos are compared: a per-video offset (another scene,
    another light) changes it;
  * macro AUC averages one AUC per video; a video without abnormal frames has
    no AUC and is skipped (the official code instead pads every video with a
    fake normal frame scored 0 and a fake abnormal frame scored 1, which
    inflates the number; sdmae offers it only as ``padded=True``).

Region level (Ramachandra & Jones, 2020): detections are scored boxes
``[frame, x0, y0, x1, y1, score]``, the ground truth is boxes grouped into
tracks ``[track_id, frame, x0, y0, x1, y1]``. Lowering a threshold over the
detection scores traces the fraction of regions detected (RBDC) or of tracks
detected (TBDC, a track counts once 10 % of its boxes are found) against the
false positives per frame; the criteria are the areas for FP rate in [0, 1].

Run:  python examples/05_evaluate.py [figure.png]
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sdmae.metrics import macro_auc, micro_auc, rbdc_tbdc_curves, roc_curve  # noqa: E402
from sdmae.postprocess import normalize_per_video  # noqa: E402

def main(figure: str = "evaluate.png") -> dict:
    """Compute the four criteria on toy videos, draw them into ``figure``; return them."""
    rng = np.random.default_rng(0)

    # --- three toy videos: (length, abnormal frames, score baseline) -----------
    videos = [(60, range(20, 36), 0.2), (40, range(10, 31), 0.6), (50, range(0), 0.3)]
    scores, labels = [], []
    for length, abnormal, base in videos:
        y = np.zeros(length, dtype=int)
        y[list(abnormal)] = 1
        s = base + 0.3 * y + 0.2 * rng.standard_normal(length)  # bump where abnormal
        scores.append(s)
        labels.append(y)

    micro = micro_auc(scores, labels)
    macro = macro_auc(scores, labels)
    padded = macro_auc([normalize_per_video(s) for s in scores], labels, padded=True)
    print(f"micro AUC  {micro:.3f}   (all {sum(len(s) for s in scores)} frames pooled)")
    print(f"macro AUC  {macro:.3f}   (mean over {macro.used} videos, {macro.skipped} skipped)")
    print(f"  per video {np.round(macro.per_video, 3)}")
    print(f"macro AUC, official padding  {padded:.3f}   (for comparison with papers only)")

    # --- boxes: objects moving right 2 px per frame, found with some chance ---
    # (video, track id, frames, x at first frame, y, chance found, score range)
    objects = [(0, 0, range(20, 36), 10, 20, 0.7, (0.5, 1.0)),
               (1, 0, range(10, 31), 10, 20, 0.7, (0.5, 1.0)),
               (1, 1, range(15, 25), 80, 40, 0.3, (0.1, 0.4))]  # hard: rarely found, low scores
    detections = [[] for _ in videos]
    tracks = [[] for _ in videos]
    for v, tid, frames, x, y, p_found, (lo, hi) in objects:
        for t in frames:
            x0 = x + 2 * (t - frames.start)
            tracks[v].append([tid, t, x0, y, x0 + 15, y + 15])  # inclusive 16x16 box
            if rng.random() < p_found:  # box a little off
                dx, dy = rng.integers(-3, 4, size=2)
                score = rng.uniform(lo, hi)
                detections[v].append([t, x0 + dx, y + dy, x0 + dx + 15, y + dy + 15, score])
    for v, (length, _, _) in enumerate(videos):  # false alarms, mostly low scores
        for t in rng.choice(length, size=length // 4, replace=False):
            detections[v].append([t, 60, 5, 75, 20, 0.8 * rng.random()])
    tracks = [np.array(g).reshape(-1, 6) for g in tracks]
    detections = [np.array(d).reshape(-1, 6) for d in detections]

    num_frames = [length for length, _, _ in videos]
    curves = rbdc_tbdc_curves(detections, tracks, num_frames)
    print(f"RBDC {curves.rbdc:.3f}   TBDC {curves.tbdc:.3f}   "
          f"({sum(len(d) for d in detections)} detections, {sum(num_frames)} frames)")

    # --- figure ----------------------------------------------------------------
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.4))
    start = 0
    for s, y in zip(scores, labels):
        t = np.arange(start, start + len(s))
        ax[0].plot(t, s, color="C0", lw=1)
        ax[0].fill_between(t, 0, 1, where=y > 0, color="C3", alpha=0.25,
                           transform=ax[0].get_xaxis_transform(), lw=0)
        ax[0].axvline(start, color="k", lw=0.5)
        start += len(s)
    ax[0].set(title="frame scores (abnormal frames shaded)", xlabel="frame (videos concatenated)")
    fpr, tpr, _ = roc_curve(np.concatenate(scores), np.concatenate(labels))
    ax[1].plot(fpr, tpr, label=f"micro AUC {micro:.2f}")
    ax[1].plot([0, 1], [0, 1], "k:", lw=0.8)
    ax[1].set(title="pooled ROC", xlabel="false-positive rate", ylabel="true-positive rate")
    ax[1].legend(loc="lower right")
    ax[2].plot(curves.fpr, curves.rbdr, label=f"RBDC {curves.rbdc:.2f}")
    ax[2].plot(curves.fpr, curves.tbdr, label=f"TBDC {curves.tbdc:.2f}")
    ax[2].set(title="region / track detection", xlabel="false positives per frame",
              ylabel="detection rate", xlim=(0, 1), ylim=(0, 1.02))
    ax[2].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(figure, dpi=100)
    print(f"figure written to {figure}")
    return {"micro": float(micro), "macro": float(macro), "macro_used": macro.used, "macro_skipped": macro.skipped,
            "padded": float(padded), "rbdc": curves.rbdc, "tbdc": curves.tbdc}


if __name__ == "__main__":
    main(*sys.argv[1:2])
