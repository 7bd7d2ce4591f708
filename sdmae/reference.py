"""NumPy twins of the fused kernels: the method written as formulas.

This module is the specification. Every op in :mod:`sdmae.kernels` has a C++
(and CUDA) implementation that the tests pin to the function of the same name
here. The functions assume validated input (``sdmae.kernels`` checks shapes and
dtypes); they favour clarity over speed, and the comments count memory traffic
so that the expected gain of fusion can be derived before it is measured.

Shapes: N batch, T frames, C channels, H/W image size, h/w model size,
p patch, L = (h // p) * (w // p) tokens.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Prepared(NamedTuple):
    """Output of :func:`prepare`.

    inputs : (N, 9, h, w) float32 -- frames t-offset, t, t+offset in [-1, 1]
    gradients : (N, 3, h, w) float32 -- |x(t-step) - x(t+step)| in [0, 255]
    weights : (N, L) float32 -- motion weights of the tokens, rows sum to 1
    """

    inputs: np.ndarray
    gradients: np.ndarray
    weights: np.ndarray


class Scores(NamedTuple):
    """Output of :func:`score`.

    token_error : (N, L) float32 -- teacher reconstruction error per token
    token_discrepancy : (N, L) float32 -- teacher-student discrepancy per token
    frame : (N,) float32 -- motion-weighted frame anomaly score
    maps : (N, h, w) float32 or None -- pixel anomaly map
    """

    token_error: np.ndarray
    token_discrepancy: np.ndarray
    frame: np.ndarray
    maps: np.ndarray | None


def patchify(x: np.ndarray, p: int) -> np.ndarray:
    """Cut images into non-overlapping p x p tokens (the MAE convention).

    x : (N, C, H, W) float32, H and W multiples of p
    returns : (N, L, p*p*C) float32; tokens row-major over the (H/p, W/p) grid,
        each token ordered (row in patch, column in patch, channel).
    """
    n, c, h, w = x.shape
    gh, gw = h // p, w // p
    t = x.reshape(n, c, gh, p, gw, p)  # (N, C, gh, p, gw, p)
    t = t.transpose(0, 2, 4, 3, 5, 1)  # (N, gh, gw, p, p, C)
    return np.ascontiguousarray(t.reshape(n, gh * gw, p * p * c))


def unpatchify(t: np.ndarray, p: int, h: int, w: int) -> np.ndarray:
    """Inverse of :func:`patchify`.

    t : (N, L, p*p*C) float32 with L = (h/p) * (w/p)
    returns : (N, C, h, w) float32
    """
    n, _, d = t.shape
    c = d // (p * p)
    gh, gw = h // p, w // p
    x = t.reshape(n, gh, gw, p, p, c)  # (N, gh, gw, p, p, C)
    x = x.transpose(0, 5, 1, 3, 2, 4)  # (N, C, gh, p, gw, p)
    return np.ascontiguousarray(x.reshape(n, c, h, w))


def gather_patches(x: np.ndarray, ids: np.ndarray, p: int) -> np.ndarray:
    """The p x p patches of x at chosen tokens, flattened as a conv kernel reads them.

    Each patch is ordered (channel, row in patch, column in patch), the order of
    ``nn.Conv2d(C, D, p, stride=p).weight.reshape(D, -1)``, so that
    ``gather_patches(x, ids, p) @ weight.reshape(D, -1).T + bias`` is the patch
    embedding of the tokens ``ids`` alone. This is deliberately not the
    (row, column, channel) order of :func:`patchify`, which follows the MAE
    reconstruction target. Reads and writes 4*N*K*C*p*p bytes: only the chosen
    patches are touched.

    x : (N, C, H, W) float32, H and W multiples of p
    ids : (N, K) int64 in [0, L), token indices into the row-major (H/p, W/p) grid
    returns : (N, K, C*p*p) float32; out[n, k] is the patch of x[n] at ids[n, k]
    """
    n, c, h, w = x.shape
    gh, gw = h // p, w // p
    grid = x.reshape(n, c, gh, p, gw, p)  # (N, C, gh, p, gw, p)
    rows, cols = ids // gw, ids % gw  # (N, K) each
    # Advanced indices separated by slices put their broadcast shape (N, K) first: (N, K, C, p, p).
    patches = grid[np.arange(n)[:, None], :, rows, :, cols, :]
    return np.ascontiguousarray(patches.reshape(n, ids.shape[1], c * p * p))


def token_weights(g: np.ndarray, p: int) -> np.ndarray:
    """Motion weight of every token.

    m_i = mean over channels of (max over the pixels of token i of g),
    w_i = m_i / sum_j m_j; a sample whose m sum to zero (no motion) gets
    uniform weights 1/L.

    g : (N, C, H, W) float32 motion gradients, H and W multiples of p
    returns : (N, L) float32, rows summing to 1
    """
    n, c, h, w = g.shape
    gh, gw = h // p, w // p
    peak = g.reshape(n, c, gh, p, gw, p).max(axis=(3, 5))  # (N, C, gh, gw); read N*C*H*W
    m = peak.mean(axis=1).reshape(n, gh * gw)  # (N, L)
    total = m.sum(axis=1, keepdims=True)
    uniform = np.float32(1.0 / (gh * gw))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, m / total, uniform).astype(np.float32)


def bilinear_table(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a 1-D bilinear resize, half-pixel centres.

    Output sample i reads input position s = (i + 0.5) * n_in / n_out - 0.5,
    clamped at 0 (the OpenCV / ``align_corners=False`` convention, no
    antialiasing). returns (i0, i1, frac): value = in[i0] * (1 - frac) + in[i1] * frac.
    """
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = (src - i0).astype(np.float32)
    return i0, i1, frac


def resize_bilinear(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize one RGB frame to the model size.

    frame : (H0, W0, 3) uint8
    returns : (3, h, w) float32 in [0, 255] (not rounded)
    """
    h, w = size
    y0, y1, fy = bilinear_table(frame.shape[0], h)
    x0, x1, fx = bilinear_table(frame.shape[1], w)
    f = frame.astype(np.float32)
    # vertical pass then horizontal pass (the C++ kernel interpolates in the same order)
    rows = f[y0] * (1 - fy)[:, None, None] + f[y1] * fy[:, None, None]  # (h, W0, 3)
    out = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]  # (h, w, 3)
    return np.ascontiguousarray(out.transpose(2, 0, 1))  # (3, h, w)


def prepare(
    frames: np.ndarray,
    centres: np.ndarray,
    size: tuple[int, int],
    patch: int,
    offset: int = 3,
    step: int = 1,
) -> Prepared:
    """The front end: model inputs, motion gradients and token weights.

    For every centre t:
      inputs[n]    = [x(t-offset), x(t), x(t+offset)] / 127.5 - 1   (9 channels)
      gradients[n] = |x(t-step) - x(t+step)|                        (3 channels)
      weights[n]   = token_weights(gradients[n], patch)
    where x(k) is frame k resized to ``size`` (bilinear, half-pixel centres) and
    k is clamped into [0, T). Each source frame is resized once.

    frames : (T, H0, W0, 3) uint8
    centres : (N,) int64 in [0, T)
    returns : :class:`Prepared`
    """
    t_count = frames.shape[0]
    h, w = size
    centres = np.asarray(centres, dtype=np.int64)

    def clamp(k: np.ndarray) -> np.ndarray:
        return np.clip(k, 0, t_count - 1)

    shifts = (-offset, 0, offset, -step, step)
    needed = np.unique(np.concatenate([clamp(centres + s) for s in shifts]))
    # read T*H0*W0*3 bytes once; write len(needed)*3*h*w floats
    resized = {int(k): resize_bilinear(frames[k], size) for k in needed}

    n = len(centres)
    inputs = np.empty((n, 9, h, w), np.float32)
    gradients = np.empty((n, 3, h, w), np.float32)
    for i, c in enumerate(centres):
        for block, s in enumerate((-offset, 0, offset)):
            inputs[i, 3 * block: 3 * block + 3] = resized[int(clamp(c + s))] / np.float32(127.5) - 1
        gradients[i] = np.abs(resized[int(clamp(c - step))] - resized[int(clamp(c + step))])
    return Prepared(inputs, gradients, token_weights(gradients, patch))


def score(
    target: np.ndarray,
    teacher: np.ndarray,
    student: np.ndarray,
    weights: np.ndarray,
    patch: int,
    size: tuple[int, int],
    discrepancy_weight: float = 1.0,
    map_weight: float = 1.0,
    with_maps: bool = True,
) -> Scores:
    """The back end: token errors, frame scores and pixel anomaly maps.

    With j running over the p*p*C values of token i and c over channels:
      e_i = mean_j (target_ij - teacher_ij)^2           teacher error
      d_i = mean_j (teacher_ij - student_ij)^2          teacher-student discrepancy
      frame = sum_i w_i * (e_i + discrepancy_weight * d_i)
    At test time the target's last channel (the anomaly map) is all zero, so
    the predicted map enters e_i: the paper's third term.
    Pixel map, for a pixel of token i with values t_c (teacher), s_c (student):
      map = (map_weight * clip(t_last, 0, 1) + discrepancy_weight * mean_c (t_c - s_c)^2)
            * w_i / max_j w_j
    i.e. the predicted anomaly channel plus the discrepancy, scaled by the
    token's motion weight relative to the sample's most moving token.

    target, teacher, student : (N, L, p*p*C) float32
    weights : (N, L) float32
    size : (h, w) with (h/p) * (w/p) == L
    returns : :class:`Scores`
    """
    n, l, d = target.shape
    c = d // (patch * patch)
    # read 3*N*L*D floats, write 2*N*L + N (+ N*h*w with maps)
    sq_err = (target - teacher) ** 2  # (N, L, D)
    sq_disc = (teacher - student) ** 2  # (N, L, D)
    token_error = sq_err.mean(axis=-1, dtype=np.float32)
    token_discrepancy = sq_disc.mean(axis=-1, dtype=np.float32)
    dw = np.float32(discrepancy_weight)
    frame = (weights * (token_error + dw * token_discrepancy)).sum(axis=-1, dtype=np.float32)

    maps = None
    if with_maps:
        peak = weights.max(axis=-1, keepdims=True)  # (N, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = np.where(peak > 0, weights / peak, np.float32(1)).astype(np.float32)  # (N, L)
        pixels = sq_disc.reshape(n, l, patch * patch, c).mean(axis=-1)  # (N, L, p*p)
        predicted = np.clip(teacher.reshape(n, l, patch * patch, c)[..., c - 1], 0, 1)  # (N, L, p*p)
        pixel_score = (np.float32(map_weight) * predicted + dw * pixels) * relative[..., None]
        maps = unpatchify(pixel_score.astype(np.float32), patch, *size)[:, 0]  # (N, h, w)
    return Scores(token_error, token_discrepancy, frame.astype(np.float32), maps)
