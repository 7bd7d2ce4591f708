"""Motion gradients and token weights: where the loss of sdmae looks.

A small square crosses a textured, static background. The motion gradient
|x(t-1) - x(t+1)| is zero on the background and large on the square's edges;
token weights w_i = mean_c(max_patch g) / sum_j(...) therefore put almost all
of the reconstruction loss on the few tokens that move.

Run: python examples/01_motion_gradients.py [figure.png]
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from skimage import data, transform

from sdmae import kernels

def main(out: str = "motion_gradients.png") -> dict:
    """Draw the figure into ``out``; return the numbers the text above claims."""
    # A static camera: a grass texture, 96 x 128 pixels, and a red square moving 3 px per frame.
    background = (transform.resize(data.grass(), (96, 128)) * 255).astype(np.uint8)
    frames = np.repeat(np.repeat(background[None, :, :, None], 3, axis=3), 9, axis=0)  # (T, H, W, 3)
    for t in range(9):
        x = 20 + 3 * t
        frames[t, 40:56, x:x + 16] = (220, 40, 40)

    size, patch = (64, 96), 8  # the model size is chosen by the preset; here 8 x 12 = 96 tokens
    prepared = kernels.prepare(frames, centres=[4], size=size, patch=patch, offset=3, step=1)
    g = prepared.gradients[0].mean(axis=0)  # (h, w), averaged over RGB for display
    w = prepared.weights[0].reshape(size[0] // patch, size[1] // patch)  # (h/p, w/p)

    top = np.argsort(prepared.weights[0])[::-1][:4]
    share = float(prepared.weights[0][top].sum())
    print(f"tokens: {w.size}, weights sum to {w.sum():.3f}")
    print(f"4 heaviest tokens hold {share:.1%} of the loss (uniform: {4 / w.size:.1%})")

    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    axes[0].imshow((prepared.inputs[0, kernels.CENTRE_FRAME].transpose(1, 2, 0) + 1) / 2)
    axes[0].set_title("frame t (model input, centre)")
    axes[1].imshow(g, cmap="magma")
    axes[1].set_title("motion gradient |x(t-1) - x(t+1)|")
    axes[2].imshow(w, cmap="viridis")
    axes[2].set_title("token weights w_i")
    for ax in axes:
        ax.axis("off")
    fig.savefig(out, dpi=80, bbox_inches="tight")
    print(f"figure written to {out}")
    return {"tokens": int(w.size), "weights_sum": float(w.sum()), "heaviest_4_share": share}


if __name__ == "__main__":
    main(*sys.argv[1:2])
