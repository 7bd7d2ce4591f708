"""Stage 2, self-distillation: a student head learns to imitate the frozen teacher.

The student branches after the first teacher decoder block and is trained on
normal frames only, L_sd = sum_i w_i * mean((p^_i - p~_i)^2). The paper's idea:
where the data looks like training data teacher and student agree, on an
anomaly they drift apart, and that discrepancy is the second term of the
anomaly score.

What this example measures, honestly: after seconds of training the
discrepancy alone does NOT separate the vehicle's frames (its frame AUC comes
out below 0.5: the student copies the teacher as well there as elsewhere),
while the frame score, carried by the teacher's error, does (AUC ~1). On real
footage the discrepancy adds little either (benchmarks/RESULTS.md, accuracy);
sdmae keeps it in the score with weight 1, as the paper does.

Run: python examples/04_self_distillation.py [figure.png]   (about 30 s on 2 CPU cores)
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from sdmae import kernels
from sdmae.config import get_preset
from sdmae.data import make_clip
from sdmae.metrics import roc_auc
from sdmae.model import SDMAE, patchify, seeded_masks, weighted_loss
from sdmae.score import ScoreSpec
from sdmae.target import make_target

torch.manual_seed(0)
cfg = get_preset("tiny").model


def batch_of(frames):
    """Frames -> model inputs (N, 9, h, w), patchified targets (N, L, p*p*4), weights (N, L)."""
    b = kernels.prepare(frames, np.arange(len(frames)), cfg.input_size, cfg.patch)
    x, w = torch.from_numpy(b.inputs), torch.from_numpy(b.weights)
    target = patchify(make_target(x, cfg.map_normal), cfg.patch)  # no anomaly: the map's target is "normal"
    return x, target, w


def main(out_path: str = "self_distillation.png") -> dict:
    """Train both stages for seconds, draw the figure; return what separates the vehicle."""
    train_x, train_t, train_w = batch_of(make_clip(seed=1, num_frames=96)[0])
    model = SDMAE(cfg)
    gen = torch.Generator().manual_seed(0)

    def fit(params, loss_of, steps):
        opt = torch.optim.AdamW(params, lr=2e-3)
        for _ in range(steps):
            idx = torch.randint(0, len(train_x), (16,), generator=gen)
            loss = loss_of(model(train_x[idx], generator=gen), idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    print("teacher loss", fit(model.teacher_parameters(), lambda o, i: weighted_loss(o.teacher, train_t[i], train_w[i]), 150))
    model.freeze_teacher()  # encoder + teacher decoder: no gradients, BatchNorm in eval mode
    print("student loss", fit(model.student_parameters(), lambda o, i: weighted_loss(o.student, o.teacher.detach(), train_w[i]), 80))

    # A test clip with a vehicle driving through: per-frame teacher-student discrepancy.
    frames, labels, _ = make_clip(seed=7, num_frames=96, anomalies=("vehicle",))
    x, target, w = batch_of(frames)
    model.eval()
    with torch.no_grad():
        ids_keep, ids_restore, _ = seeded_masks(range(len(x)), model.num_tokens, cfg.mask_ratio)
        out = model(x, ids_keep, ids_restore)
    # the paper's frame score: a motion-weighted mean over tokens, the map channel weighing as one RGB channel
    spec = ScoreSpec(cfg.patch, cfg.input_size, token_weighting="motion", frame_reduce="mean", map_channel_weight=1.0)
    s = kernels.score(target.numpy(), out.teacher.numpy(), out.student.numpy(), w.numpy(), spec)
    disc = (s.token_discrepancy * w.numpy()).sum(1)
    for name, v in (("teacher-student discrepancy", disc), ("frame score", s.frame)):
        print(f"{name}: abnormal frames {v[labels == 1].mean():.4f}, normal frames {v[labels == 0].mean():.4f}")
    frame_auc, discrepancy_auc = roc_auc(s.frame, labels), roc_auc(disc, labels)
    print(f"frame AUC: frame score {frame_auc:.3f}, teacher-student discrepancy {discrepancy_auc:.3f}")

    fig, ax = plt.subplots(figsize=(8, 2.6))
    ax.fill_between(np.arange(len(labels)), 0, 1, where=labels.astype(bool), transform=ax.get_xaxis_transform(),
                    color="tab:red", alpha=0.15, label="vehicle in the scene")
    ax.plot(disc, label="teacher-student discrepancy")
    ax.plot(s.frame, label="frame score (error + discrepancy)")
    ax.set_xlabel("frame")
    ax.legend(fontsize=8)
    fig.savefig(out_path, dpi=80, bbox_inches="tight")
    print(f"figure written to {out_path}")
    return {"frame_auc": frame_auc, "discrepancy_auc": discrepancy_auc}


if __name__ == "__main__":
    main(*sys.argv[1:2])
