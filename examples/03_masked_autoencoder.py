"""Stage 1, the teacher: a masked auto-encoder trained with a motion-weighted loss.

From frames t-3, t, t+3 with half of the tokens hidden, the model reconstructs
frame t (and a 4th anomaly-map channel). The loss of each token is weighted by
its motion, L_w = sum_i w_i * mean((p_i - p^_i)^2), so the few moving
people matter far more than the static background.

Run: python examples/03_masked_autoencoder.py [figure.png]   (about 20 s on 2 CPU cores)
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
from sdmae.model import SDMAE, patchify, random_masking, unpatchify, weighted_loss
from sdmae.target import make_target


def main(figure: str = "masked_autoencoder.png") -> dict:
    """Train for a few seconds, draw the figure into ``figure``; return the losses."""
    torch.manual_seed(0)
    cfg = get_preset("tiny").model  # 64 x 96 input, patch 8 -> 96 tokens
    frames, _, _ = make_clip(seed=1, num_frames=64)  # (T, H, W, 3) uint8, a normal scene

    # Front end: 9-channel inputs, motion gradients and token weights for every frame.
    batch = kernels.prepare(frames, np.arange(64), cfg.input_size, cfg.patch)
    inputs = torch.from_numpy(batch.inputs)  # (T, 9, h, w)
    weights = torch.from_numpy(batch.weights)  # (T, L)
    # frame t's RGB, and no anomaly: the map channel's target is its "normal" value (-1, the signed target)
    target = patchify(make_target(inputs, cfg.map_normal), cfg.patch)  # (T, L, p*p*4)

    model = SDMAE(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for step in range(120):
        idx = torch.randint(0, len(inputs), (16,), generator=gen)
        out = model(inputs[idx], generator=gen, student=False)  # a fresh random 50 % mask per sample
        loss = weighted_loss(out.teacher, target[idx], weights[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(f"weighted loss: {losses[0]:.4f} -> {np.mean(losses[-10:]):.4f} after {len(losses)} steps")

    model.eval()
    with torch.no_grad():
        ids_keep, ids_restore, mask = random_masking(1, model.num_tokens, cfg.mask_ratio, torch.Generator().manual_seed(1))
        recon = model(inputs[30:31], ids_keep, ids_restore, student=False).teacher
    rgb = unpatchify(recon, cfg.patch, cfg.grid)[0, :3].permute(1, 2, 0).clamp(-1, 1) / 2 + 0.5
    hidden = mask.reshape(cfg.grid)[0] if mask.dim() == 3 else mask[0].reshape(cfg.grid)

    fig, ax = plt.subplots(1, 4, figsize=(13, 2.8))
    ax[0].imshow(inputs[30, kernels.CENTRE_FRAME].permute(1, 2, 0) / 2 + 0.5)
    ax[0].set_title("frame t")
    ax[1].imshow(hidden, cmap="gray_r")
    ax[1].set_title("hidden tokens (black)")
    ax[2].imshow(rgb.numpy())
    ax[2].set_title("teacher reconstruction")
    ax[3].plot(losses)
    ax[3].set_title("motion-weighted loss")
    for a in ax[:3]:
        a.axis("off")
    fig.savefig(figure, dpi=80, bbox_inches="tight")
    print(f"figure written to {figure}")
    return {"loss_first": losses[0], "loss_last": float(np.mean(losses[-10:]))}


if __name__ == "__main__":
    main(*sys.argv[1:2])
