"""The synthetic scene: the embedded default data for demos and tests.

A static camera over a street front; people walk left to right in three
lanes. A test clip adds labelled anomalies (here a runner, a car and a thrown
ball), each with pixel masks. Training clips get a different, artificial kind
of anomaly: a foreign object pasted moving through the frames t-3 .. t+3,
while the target stays the clean frame (``maybe_paste``).

Run:  python examples/02_synthetic_scene.py [figure.png]
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sdmae.data import ObjectBank, make_clip, paste_moving_object  # noqa: E402

def main(figure: str = "synthetic_scene.png") -> dict:
    """Draw the figure into ``figure``; return what the scene holds."""
    frames, labels, masks = make_clip(seed=1, num_frames=200, anomalies=["running", "vehicle", "thrown"])
    print(f"{len(frames)} frames of {frames.shape[1]}x{frames.shape[2]}, {labels.mean():.0%} abnormal")

    # Frames in the middle of each anomaly, abnormal pixels outlined in magenta.
    runs = np.flatnonzero(np.diff(np.concatenate([[0], labels, [0]])) != 0).reshape(-1, 2)
    shown = [(a + b) // 2 for a, b in runs][:3]
    clip = frames[:7]  # seven consecutive normal frames: t-3 .. t+3
    pasted, paste_masks = paste_moving_object(clip, ObjectBank.builtin(), np.random.default_rng(3))

    fig, ax = plt.subplots(2, 4, figsize=(13, 5.2), gridspec_kw={"height_ratios": [3, 1.4]})
    for a, t in zip(ax[0], shown):
        a.imshow(frames[t])
        a.contour(masks[t], levels=[0.5], colors="magenta", linewidths=1)
        a.set_title(f"test frame {t} (abnormal)")
    ax[0, 3].imshow(pasted[3])
    for k, colour in ((0, "yellow"), (3, "cyan"), (6, "red")):
        ax[0, 3].contour(paste_masks[k], levels=[0.5], colors=colour, linewidths=1)
    ax[0, 3].set_title("training: pasted object at t\n(outlines at t-3, t, t+3)")
    for a in ax[0]:
        a.axis("off")
    gs = ax[1, 0].get_gridspec()
    for a in ax[1]:
        a.remove()
    timeline = fig.add_subplot(gs[1, :])
    timeline.fill_between(np.arange(len(labels)), labels, step="mid", color="C3", alpha=0.4, label="abnormal")
    timeline.plot(masks.reshape(len(masks), -1).mean(axis=1) * 20, color="k", lw=1, label="mask area x20")
    timeline.set(xlabel="frame", yticks=[], xlim=(0, len(labels) - 1))
    timeline.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(figure, dpi=90)
    print(f"figure written to {figure}")
    return {"frames": len(frames), "abnormal_share": float(labels.mean()), "anomalies": len(runs),
            "pasted_area": [float(m.mean()) for m in paste_masks],
            "pasted_centre_x": [float(np.nonzero(m)[1].mean()) for m in paste_masks]}


if __name__ == "__main__":
    main(*sys.argv[1:2])
