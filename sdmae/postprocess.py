"""Post-processing: frame-score smoothing and anomaly maps -> scored regions.

Frame scores
    ``smooth_scores`` (offline, centred Gaussian), ``CausalSmoother`` /
    ``causal_smooth`` (streaming, past samples only), ``normalize_per_video``.

Pixel maps
    ``clean_map`` (morphological opening + optional blur),
    ``map_threshold`` (one global threshold), ``maps_to_detections``
    (connected components -> scored boxes for RBDC / TBDC, matched against
    the tracks of ``sdmae.data.tracks_from_masks``), ``scale_boxes`` (model
    size -> video size).

All boxes are inclusive pixel boxes ``[x0, y0, x1, y1]`` (width
``x1 - x0 + 1``), the convention of the RBDC / TBDC reference script.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "smooth_scores",
    "CausalSmoother",
    "causal_smooth",
    "normalize_per_video",
    "clean_map",
    "map_threshold",
    "maps_to_detections",
    "scale_boxes",
]

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity for 2-D labelling


# ---------------------------------------------------------------- validation
def _scores_1d(scores, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"{name} must be 1-D (T,), got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError(f"{name} contain NaN")
    return s


def _check_sigma(sigma: float) -> float:
    sigma = float(sigma)
    if not sigma >= 0.0:  # also rejects NaN
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    return sigma


def _maps_3d(maps) -> np.ndarray:
    m = np.asarray(maps)
    if m.ndim == 2:
        m = m[None]  # (1, H, W)
    if m.ndim != 3:
        raise ValueError(f"maps must be (N, H, W) or (H, W), got shape {m.shape}")
    return m


# ---------------------------------------------------------------- frame scores
def smooth_scores(scores, sigma: float) -> np.ndarray:
    """Offline temporal smoothing of one video's frame scores.

    Parameters
    ----------
    scores : (T,) array_like of float
        Frame scores of one video.
    sigma : float
        Standard deviation of the Gaussian in frames; 0 returns a copy.

    Returns
    -------
    (T,) ndarray of float64
        ``scipy.ndimage.gaussian_filter1d(scores, sigma, mode="nearest")``:
        a normalised kernel centred on each frame (no lag), truncated at
        4 sigma, edges padded with the first / last score. Uses future
        frames, so it needs the whole video; see :class:`CausalSmoother`.
    """
    s = _scores_1d(scores)
    sigma = _check_sigma(sigma)
    if sigma == 0.0 or s.size == 0:
        return s.copy()
    return ndimage.gaussian_filter1d(s, sigma, mode="nearest")


def _half_gaussian(sigma: float) -> np.ndarray:
    """Weights for lags 0..R, R = ceil(3 sigma); (R + 1,) float64."""
    radius = int(np.ceil(3.0 * sigma))
    lag = np.arange(radius + 1, dtype=np.float64)
    return np.exp(-0.5 * (lag / sigma) ** 2)


class CausalSmoother:
    """Streaming Gaussian smoothing that uses past samples only.

    The output at time t is ``sum_k w_k x[t-k] / sum_k w_k`` over lags
    ``k = 0 .. min(t, R)``, with ``w_k = exp(-k^2 / (2 sigma^2))`` and
    ``R = ceil(3 sigma)``: a half-Gaussian over the last R + 1 samples,
    renormalised over the samples seen so far, so the first outputs are not
    pulled towards zero. Being one-sided, it delays a step in the scores by
    about ``0.8 sigma`` frames (the kernel's mean lag); that is the price of
    not waiting for future frames.

    Parameters
    ----------
    sigma : float
        Standard deviation in frames; 0 makes the smoother the identity.

    Examples
    --------
    >>> sm = CausalSmoother(2.0)
    >>> [round(sm(x), 3) for x in (0.0, 1.0, 1.0)]
    [0.0, 0.531, 0.756]
    """

    def __init__(self, sigma: float):
        self.sigma = _check_sigma(sigma)
        self.weights = _half_gaussian(self.sigma) if self.sigma > 0 else np.ones(1)
        self._buf: deque[float] = deque(maxlen=self.weights.size)  # newest first

    @property
    def radius(self) -> int:
        """Number of past samples used besides the current one."""
        return self.weights.size - 1

    def reset(self) -> None:
        """Forget the past (start of a new video)."""
        self._buf.clear()

    def update(self, score: float) -> float:
        """Push one score, return the smoothed value for this time step."""
        score = float(score)
        if np.isnan(score):
            raise ValueError("score is NaN")
        self._buf.appendleft(score)
        n = len(self._buf)
        w = self.weights[:n]
        return float(np.dot(w, np.fromiter(self._buf, np.float64, n)) / w.sum())

    __call__ = update


def causal_smooth(scores, sigma: float) -> np.ndarray:
    """Array version of :class:`CausalSmoother`: equal to streaming ``scores``.

    Parameters
    ----------
    scores : (T,) array_like of float
    sigma : float
        Standard deviation in frames; 0 returns a copy.

    Returns
    -------
    (T,) ndarray of float64
    """
    s = _scores_1d(scores)
    sigma = _check_sigma(sigma)
    if sigma == 0.0 or s.size == 0:
        return s.copy()
    w = _half_gaussian(sigma)
    num = np.convolve(s, w)[: s.size]  # full convolution: num[t] = sum_k w_k s[t-k]
    den = np.cumsum(w)[np.minimum(np.arange(s.size), w.size - 1)]
    return num / den


def normalize_per_video(scores) -> np.ndarray:
    """Min-max normalise one video's scores to [0, 1].

    Needs the whole video (its min and max), so it is an offline step and
    optional in scoring; it removes per-video offsets, which changes the micro
    AUC but not the per-video (macro) AUC.

    Parameters
    ----------
    scores : (T,) array_like of float

    Returns
    -------
    (T,) ndarray of float64
        ``(s - min) / (max - min)``; all zeros when the scores are constant.
    """
    s = _scores_1d(scores)
    if s.size == 0:
        return s.copy()
    lo, hi = s.min(), s.max()
    if hi == lo:
        return np.zeros_like(s)
    return (s - lo) / (hi - lo)


# ---------------------------------------------------------------- pixel maps
def _footprint(size: int, shape: str) -> np.ndarray:
    """(1, size, size) bool footprint: per-frame, never across time."""
    if shape == "square":
        fp = np.ones((size, size), dtype=bool)
    elif shape == "disk":
        c = (size - 1) / 2.0
        yy, xx = np.mgrid[:size, :size]
        fp = (yy - c) ** 2 + (xx - c) ** 2 <= (size / 2.0) ** 2
    else:
        raise ValueError(f"footprint must be 'square' or 'disk', got {shape!r}")
    return fp[None]


def _grey(m: np.ndarray, size: int, shape: str, minimum: bool) -> np.ndarray:
    """Grey erosion (``minimum``) or dilation of each frame. An odd square is the same
    filter as two 1-d passes, rows then columns (SciPy's separable min/max filters,
    about 3x faster than a footprint); other footprints go through SciPy's footprint."""
    if shape == "square" and size % 2:
        f = ndimage.minimum_filter if minimum else ndimage.maximum_filter
        return f(m, size=(1, size, size))
    op = ndimage.grey_erosion if minimum else ndimage.grey_dilation
    return op(m, footprint=_footprint(size, shape))


def clean_map(
    maps,
    erosion: int = 3,
    dilation: int = 3,
    *,
    blur_sigma: float = 0.0,
    footprint: str = "square",
) -> np.ndarray:
    """Clean pixel anomaly maps with a grey-level opening and an optional blur.

    Erosion replaces each pixel by the minimum of its neighbourhood, so a high
    blob smaller than the footprint (an isolated noisy pixel, a texture edge)
    disappears; dilation then grows the surviving blobs back to about their
    size. Fewer spurious peaks means fewer false-positive regions in RBDC.

    Parameters
    ----------
    maps : (N, H, W) or (H, W) array_like of float
        Anomaly maps; frames are processed independently.
    erosion, dilation : int, default 3
        Side (square) or diameter (disk) of the footprints in pixels;
        0 or 1 skips that step.
    blur_sigma : float, default 0
        Gaussian blur applied after the opening (pixels, per frame); 0 skips.
    footprint : {"square", "disk"}
        Shape of the footprints.

    Returns
    -------
    ndarray of float32, same shape as ``maps``
        Borders are handled by reflection (SciPy's default).
    """
    m = np.asarray(maps)
    squeeze = m.ndim == 2
    m = _maps_3d(m).astype(np.float32)
    for name, size in (("erosion", erosion), ("dilation", dilation)):
        if int(size) != size or size < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {size}")
    if erosion > 1:
        m = _grey(m, int(erosion), footprint, minimum=True)
    if dilation > 1:
        m = _grey(m, int(dilation), footprint, minimum=False)
    if blur_sigma < 0:
        raise ValueError(f"blur_sigma must be >= 0, got {blur_sigma}")
    if blur_sigma > 0:
        m = ndimage.gaussian_filter(m, sigma=(0.0, blur_sigma, blur_sigma))
    return m[0] if squeeze else m


def map_threshold(
    maps,
    quantile: float = 0.95,
    *,
    max_samples: int = 2_000_000,
    seed: int = 0,
) -> float:
    """A threshold for :func:`maps_to_detections`: a quantile of the values of ``maps``.

    RBDC / TBDC already sweep a threshold over the *detection scores*, so the
    maps need only one fixed, low threshold that cuts out candidate regions;
    scoring each region by the map maximum inside it lets the metric's sweep
    do the rest. Detections at several map thresholds are therefore not
    needed. Lower keeps more (and larger, sometimes merged) regions.
    :func:`sdmae.evaluate.evaluate` calls it once per video, on that video's
    maps, with ``evaluate.MAP_QUANTILE`` (0.97), so no video waits for the
    others' maps.

    Parameters
    ----------
    maps : (N, H, W) ndarray or list of such arrays (float)
        The maps the threshold applies to (``evaluate``: one video's).
    quantile : float, default 0.95
        In [0, 1].
    max_samples : int, default 2_000_000
        Above this many values, the quantile is that of this many values drawn
        uniformly (with replacement; memory and time); seeded, so deterministic.
    seed : int, default 0
        Seed of the subsampling generator.

    Returns
    -------
    float
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    parts = [maps] if isinstance(maps, np.ndarray) else list(maps)
    flats = [np.asarray(p, dtype=np.float32).reshape(-1) for p in parts]  # views where possible
    size = sum(f.size for f in flats)
    if size == 0:
        raise ValueError("maps is empty")
    if size > max_samples:
        # drawn with replacement: without, NumPy permutes all `size` indices (8 bytes each,
        # twice the maps themselves), and the quantile of 2M draws is as good either way
        picks = np.sort(np.random.default_rng(seed).integers(0, size, max_samples))
        starts = np.cumsum([0] + [f.size for f in flats])
        flat = np.concatenate([f[picks[(picks >= a) & (picks < b)] - a]
                               for f, a, b in zip(flats, starts[:-1], starts[1:])])
    else:
        flat = np.concatenate(flats)
    return float(np.quantile(flat, quantile))


def _components(mask: np.ndarray) -> tuple[np.ndarray, int, list]:
    """8-connected components of a (H, W) bool mask: labels, count, slices."""
    labels, n = ndimage.label(mask, structure=_EIGHT)
    return labels, n, ndimage.find_objects(labels)


def _boxes(slices: list) -> np.ndarray:
    """Inclusive (n, 4) [x0, y0, x1, y1] boxes from find_objects slices."""
    return np.array(
        [[sx.start, sy.start, sx.stop - 1, sy.stop - 1] for sy, sx in slices], dtype=np.int64
    ).reshape(-1, 4)


def maps_to_detections(
    maps,
    threshold: float,
    *,
    min_area: int = 1,
    frame_offset: int = 0,
) -> np.ndarray:
    """Turn pixel anomaly maps into scored boxes for RBDC / TBDC.

    Each map is thresholded (``map > threshold``), split into 8-connected
    components, and every component of at least ``min_area`` pixels becomes a
    detection whose score is the *maximum* map value inside it (the peak, so
    a region's score does not shrink when a low threshold makes it larger).

    Parameters
    ----------
    maps : (T, H, W) or (H, W) array_like of float
        Anomaly maps of consecutive frames of one video.
    threshold : float
        Pixels strictly above it are foreground (see :func:`map_threshold`).
    min_area : int, default 1
        Smaller components (in pixels) are dropped.
    frame_offset : int, default 0
        Frame index of ``maps[0]`` (to process a video in chunks).

    Returns
    -------
    (K, 6) ndarray of float64
        ``[frame, x0, y0, x1, y1, score]``, inclusive pixel boxes at map
        resolution, ordered by frame then by component label (raster order).
    """
    m = _maps_3d(maps)
    rows = []
    for t, frame in enumerate(m):
        labels, n, slices = _components(frame > threshold)
        if n == 0:
            continue
        idx = np.arange(1, n + 1)
        area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        peak = np.asarray(ndimage.maximum(frame, labels, idx), dtype=np.float64)
        keep = area >= min_area
        if not keep.any():
            continue
        boxes = _boxes(slices)[keep]
        rows.append(
            np.column_stack([np.full(len(boxes), t + frame_offset), boxes, peak[keep]])
        )
    if not rows:
        return np.zeros((0, 6))
    return np.concatenate(rows).astype(np.float64)


def scale_boxes(
    boxes,
    from_size: Sequence[int],
    to_size: Sequence[int],
    *,
    start: int = 1,
) -> np.ndarray:
    """Rescale inclusive pixel boxes between resolutions (e.g. model -> video).

    A box covers pixels ``x0 .. x1``, i.e. the interval ``[x0, x1 + 1)``; the
    interval is scaled and rounded outwards, so the new box covers every
    target pixel the old one touches, then clipped to the image.

    Parameters
    ----------
    boxes : (K, C) array_like
        Table holding ``x0, y0, x1, y1`` in columns ``start .. start + 3``;
        other columns are copied. ``start=1`` fits detections
        ``[frame, x0, y0, x1, y1, score]``, ``start=2`` fits tracks.
    from_size, to_size : (int, int)
        ``(H, W)`` of the source and target images.
    start : int, default 1
        Column of ``x0``.

    Returns
    -------
    (K, C) ndarray, same dtype as ``boxes`` (float64 if not numeric)
    """
    b = np.asarray(boxes)
    if not np.issubdtype(b.dtype, np.number):
        b = b.astype(np.float64)
    if b.ndim != 2 or b.shape[1] < start + 4:
        raise ValueError(f"boxes must be (K, >= {start + 4}), got shape {b.shape}")
    (h0, w0), (h1, w1) = from_size, to_size
    sx, sy = w1 / w0, h1 / h0
    out = b.copy()
    xy = b[:, start : start + 4].astype(np.float64)  # (K, 4) x0 y0 x1 y1
    new = np.empty_like(xy)
    # Small epsilon keeps exact multiples from being pushed a pixel outwards.
    eps = 1e-9
    new[:, 0] = np.floor(xy[:, 0] * sx + eps)
    new[:, 1] = np.floor(xy[:, 1] * sy + eps)
    new[:, 2] = np.ceil((xy[:, 2] + 1) * sx - eps) - 1
    new[:, 3] = np.ceil((xy[:, 3] + 1) * sy - eps) - 1
    new[:, [0, 2]] = np.clip(new[:, [0, 2]], 0, w1 - 1)
    new[:, [1, 3]] = np.clip(new[:, [1, 3]], 0, h1 - 1)
    out[:, start : start + 4] = new
    return out
