"""NumPy twins of the fused kernels: the method written as formulas.

This module is the specification. Every op in :mod:`sdmae.kernels` has a C++
(and, but for ``gather_patches``, a CUDA) implementation that the tests pin to
the function of the same name here. The functions assume validated input (``sdmae.kernels`` checks shapes and
dtypes); they favour clarity over speed, and the comments count memory traffic
so that the expected gain of fusion can be derived before it is measured.

Shapes: N batch, T frames, C channels, H/W image size, h/w model size,
p patch, L = (h // p) * (w // p) tokens.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .score import ScoreSpec, frame_scores, judged_passes


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
    frame : (N,) float32 -- frame anomaly score
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
    """Inverse of :func:`patchify`; :func:`score` lays out its maps with it
    (the kernels write each map pixel in place, so it has no kernel).

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
    # summed in float64, where the sum of L float32 values in [0, 255] is exact in any
    # order, so the twin and the kernels agree bit for bit
    total = m.sum(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
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


CENTRE_FRAME = slice(3, 6)  # the channels of frame t among prepare's 9 input channels
INPUT_SCALE = np.float32(1 / 127.5)  # uint8 range -> [-1, 1]: x * INPUT_SCALE - 1


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
            # times the float32 reciprocal, then minus one, each rounded: the kernels' exact arithmetic
            inputs[i, 3 * block: 3 * block + 3] = resized[int(clamp(c + s))] * INPUT_SCALE + np.float32(-1)
        gradients[i] = np.abs(resized[int(clamp(c - step))] - resized[int(clamp(c + step))])
    return Prepared(inputs, gradients, token_weights(gradients, patch))


class Passes(NamedTuple):
    """Output of :func:`score_passes`: the heavy half of the score.

    error : (K, N, L) float32 -- teacher reconstruction error of every token in every pass
    discrepancy : (K, N, L) float32 -- teacher-student discrepancy likewise
    maps : (N, h, w) float32 or None -- pixel anomaly map
    """

    error: np.ndarray
    discrepancy: np.ndarray
    maps: np.ndarray | None


def score_passes(target: np.ndarray, teacher: np.ndarray, student: np.ndarray, hidden: np.ndarray,
                 weights: np.ndarray, spec: ScoreSpec, with_maps: bool = True) -> Passes:
    """The fused kernels' half of the score: per-pass token values and pixel maps.

    Each pass k ran the model with its own mask (``hidden[k]``, 1 where the
    encoder did not see the token). With j over the p*p*C values of a token,
    c(j) its channel and a_c = 1 except for the last channel (the anomaly map),
    a_{C-1} = map_channel_weight:
      error_ki = sum_j a_c(j) (target_ij - teacher_kij)^2 / sum_j a_c(j)
      discrepancy_ki = sum_j a_c(j) (teacher_kij - student_kij)^2 / sum_j a_c(j)
    At test time the target's last channel is the map's normal value
    (``spec.map_normal``) everywhere, so the predicted anomaly map enters the
    error: the paper's third term. Pixel map, for a pixel of token i with
    values t_c (teacher), s_c (student), averaged over the passes that judge
    the token (``spec.tokens``, :func:`sdmae.score.judged_passes`):
      map = (map_weight * clip((t_last - map_normal) / (1 - map_normal), 0, 1)
             + discrepancy_weight * mean_c (t_c - s_c)^2) * weights_i / max_j weights_j
    the predicted anomaly probability plus the discrepancy, scaled by the
    token's motion relative to the sample's most moving token (0 where no pass
    judges it). Frame scores follow from ``error`` and ``discrepancy`` by
    :func:`sdmae.score.frame_scores`.

    target : (N, L, p*p*C) float32
    teacher, student : (K, N, L, p*p*C) float32
    hidden : (K, N, L) float32, 1 = hidden from the encoder in pass k
    weights : (N, L) float32 motion weights
    spec : ScoreSpec with (h/p) * (w/p) == L
    returns : :class:`Passes`
    """
    patch = spec.patch
    k, n, l, d = teacher.shape
    c = d // (patch * patch)
    # read (2K + 1) * N*L*D floats, write 2*K*N*L (+ N*h*w with maps)
    a = np.ones(c, np.float32)
    a[c - 1] = spec.map_channel_weight
    a_tok = np.tile(a, patch * patch)  # (D,): the channel weight of every token value
    norm = np.float32(a_tok.sum())
    error = ((target[None] - teacher) ** 2 * a_tok).sum(axis=-1, dtype=np.float32) / norm  # (K, N, L)
    discrepancy = ((teacher - student) ** 2 * a_tok).sum(axis=-1, dtype=np.float32) / norm
    maps = None
    if with_maps:
        use = judged_passes(spec.tokens, hidden)  # (K, N, L)
        count = use.sum(axis=0)
        safe = np.maximum(count, 1)
        peak = weights.max(axis=-1, keepdims=True)  # (N, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = np.where(peak > 0, weights / peak, np.float32(1)).astype(np.float32)  # (N, L)
        te = teacher.reshape(k, n, l, patch * patch, c)
        pixels = ((teacher - student) ** 2).reshape(k, n, l, patch * patch, c).mean(axis=-1)  # (K, N, L, p*p)
        predicted = np.clip((te[..., c - 1] - np.float32(spec.map_normal)) / np.float32(1 - spec.map_normal), 0, 1)
        per_pass = np.float32(spec.map_weight) * predicted + np.float32(spec.discrepancy_weight) * pixels
        pixel_score = (per_pass * use[..., None]).sum(axis=0) / safe[..., None] * (relative * (count > 0))[..., None]
        maps = unpatchify(pixel_score.astype(np.float32), patch, *spec.size)[:, 0]  # (N, h, w)
    return Passes(error.astype(np.float32), discrepancy.astype(np.float32), maps)


def score(target: np.ndarray, teacher: np.ndarray, student: np.ndarray, hidden: np.ndarray, weights: np.ndarray,
          spec: ScoreSpec, classification: np.ndarray | None = None, with_maps: bool = True) -> Scores:
    """The whole back end, the twin of :func:`sdmae.kernels.score`: :func:`score_passes`,
    then :func:`sdmae.score.frame_scores` (arguments as there)."""
    passes = score_passes(target, teacher, student, hidden, weights, spec, with_maps)
    return Scores(*frame_scores(spec, passes.error, passes.discrepancy, hidden, weights, classification),
                  passes.maps)
