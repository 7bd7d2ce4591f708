"""Smoothing, map cleaning and maps -> boxes."""

import numpy as np
import pytest
from scipy import ndimage

from sdmae.data import tracks_from_masks
from sdmae.metrics import rbdc_tbdc
from sdmae.postprocess import (
    CausalSmoother,
    causal_smooth,
    clean_map,
    map_threshold,
    maps_to_detections,
    normalize_per_video,
    scale_boxes,
    smooth_scores,
)

SIGMAS = [0.0, 0.4, 1.0, 2.5, 7.3]


# ---------------------------------------------------------------- frame scores
@pytest.mark.parametrize("sigma", SIGMAS)
def test_smooth_scores_is_centred_normalised_gaussian(sigma):
    rng = np.random.default_rng(0)
    s = rng.random(57)
    out = smooth_scores(s, sigma)
    assert out.dtype == np.float64 and out.shape == s.shape
    if sigma == 0:
        np.testing.assert_array_equal(out, s)
        assert out is not s
    else:
        np.testing.assert_allclose(out, ndimage.gaussian_filter1d(s, sigma, mode="nearest"))
    np.testing.assert_allclose(smooth_scores(np.full(9, 3.0), sigma), 3.0)  # normalised
    impulse = np.zeros(41)
    impulse[20] = 1
    resp = smooth_scores(impulse, sigma)
    assert np.argmax(resp) == 20  # centred: no lag
    np.testing.assert_allclose(resp, resp[::-1], atol=1e-15)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_causal_smooth_equals_streaming(sigma):
    rng = np.random.default_rng(1)
    s = rng.normal(size=80)
    sm = CausalSmoother(sigma)
    stream = np.array([sm(x) for x in s])
    np.testing.assert_allclose(causal_smooth(s, sigma), stream, rtol=1e-12, atol=1e-12)
    sm.reset()
    assert sm.update(s[0]) == pytest.approx(s[0])  # first output is the sample itself


@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_causal_smooth_uses_only_the_past(sigma):
    rng = np.random.default_rng(2)
    s = rng.random(50)
    t = 30
    changed = s.copy()
    changed[t + 1 :] = rng.random(50 - t - 1) + 10
    np.testing.assert_array_equal(
        causal_smooth(s, sigma)[: t + 1], causal_smooth(changed, sigma)[: t + 1]
    )
    # Only the last ceil(3 sigma) + 1 samples matter.
    radius = CausalSmoother(sigma).radius
    assert radius == int(np.ceil(3 * sigma))
    far = s.copy()
    far[: t - radius] = -5
    assert causal_smooth(far, sigma)[t] == pytest.approx(causal_smooth(s, sigma)[t], abs=1e-12)
    np.testing.assert_allclose(causal_smooth(np.full(20, 2.0), sigma), 2.0)  # normalised


def test_smoothing_errors():
    with pytest.raises(ValueError, match="sigma"):
        smooth_scores(np.zeros(4), -1)
    with pytest.raises(ValueError, match="1-D"):
        causal_smooth(np.zeros((2, 2)), 1)
    with pytest.raises(ValueError, match="NaN"):
        smooth_scores([0.0, np.nan], 1)


def test_normalize_per_video():
    rng = np.random.default_rng(3)
    s = rng.normal(size=30) * 5 + 2
    out = normalize_per_video(s)
    assert out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out, (s - s.min()) / np.ptp(s))
    np.testing.assert_array_equal(normalize_per_video(np.full(4, 7.0)), np.zeros(4))


# ---------------------------------------------------------------- pixel maps
def test_clean_map_removes_isolated_pixels_keeps_blobs():
    maps = np.zeros((3, 20, 24), dtype=np.float64)
    maps[0, 5, 5] = 1.0  # isolated pixel
    maps[0, 10:15, 10:15] = 0.8  # 5x5 blob
    maps[1, 2:4, 2:4] = 0.5  # 2x2: smaller than the 3x3 footprint
    out = clean_map(maps, erosion=3, dilation=3)
    assert out.dtype == np.float32 and out.shape == maps.shape
    assert out[0, 5, 5] == 0.0
    np.testing.assert_array_equal(out[0, 10:15, 10:15], np.float32(0.8))
    assert out[0].sum() == pytest.approx(0.8 * 25)  # opening restores the blob exactly
    assert not out[1].any() and not out[2].any()  # no leakage across frames
    np.testing.assert_array_equal(clean_map(maps[0], erosion=3, dilation=3), out[0])


def test_clean_map_options():
    rng = np.random.default_rng(4)
    maps = rng.random((2, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(clean_map(maps, erosion=0, dilation=1), maps)
    disk = clean_map(maps, erosion=5, dilation=5, footprint="disk")
    square = clean_map(maps, erosion=5, dilation=5)
    assert not np.array_equal(disk, square)
    blurred = clean_map(maps, erosion=0, dilation=0, blur_sigma=1.0)
    np.testing.assert_allclose(blurred[1], ndimage.gaussian_filter(maps[1], 1.0), rtol=1e-5)
    with pytest.raises(ValueError, match="footprint"):
        clean_map(maps, footprint="star")
    with pytest.raises(ValueError, match="erosion"):
        clean_map(maps, erosion=-1)


def test_map_threshold_is_a_quantile():
    rng = np.random.default_rng(5)
    maps = rng.random((4, 10, 10)).astype(np.float32)
    assert map_threshold(maps, 0.9) == pytest.approx(np.quantile(maps, 0.9))
    assert map_threshold([maps[:2], maps[2:]], 0.5) == pytest.approx(np.quantile(maps, 0.5))
    a = map_threshold(maps, 0.9, max_samples=100, seed=1)
    assert a == map_threshold(maps, 0.9, max_samples=100, seed=1)  # seeded subsample


def test_maps_to_detections_boxes_and_scores():
    maps = np.zeros((2, 12, 16), dtype=np.float32)
    maps[0, 2:5, 3:7] = 0.4
    maps[0, 3, 4] = 0.9  # peak inside the first blob
    maps[0, 5, 7] = 0.3  # touches the blob diagonally: same component (8-conn)
    maps[0, 9, 14] = 0.6  # single pixel
    maps[1, 0:2, 0:2] = 0.2
    det = maps_to_detections(maps, 0.1, frame_offset=100)
    assert det.shape == (3, 6) and det.dtype == np.float64
    np.testing.assert_allclose(det[0], [100, 3, 2, 7, 5, 0.9], rtol=1e-6)  # inclusive x1 = 7
    np.testing.assert_allclose(det[1], [100, 14, 9, 14, 9, 0.6], rtol=1e-6)
    np.testing.assert_allclose(det[2], [101, 0, 0, 1, 1, 0.2], rtol=1e-6)
    big = maps_to_detections(maps, 0.1, min_area=2)
    assert len(big) == 2 and not np.any(big[:, 5] == np.float32(0.6))
    assert maps_to_detections(maps, 0.95).shape == (0, 6)
    assert len(maps_to_detections(maps[0], 0.1)) == 2  # (H, W) input


def test_maps_of_the_masks_detect_their_tracks_perfectly():
    """Detections and ground-truth tracks agree on what a region's box is."""
    rng = np.random.default_rng(6)
    m = np.zeros((6, 24, 32), dtype=bool)
    for t in range(6):
        y, x = 4 + t, 3 + 3 * t
        m[t, y : y + 5, x : x + 6] = True
    m[2:4, 18:22, 25:30] = True
    maps = m * rng.uniform(0.5, 1.0, size=m.shape)
    dets = maps_to_detections(maps, 0.1)
    assert rbdc_tbdc([dets], [tracks_from_masks(m)], len(m)) == (1.0, 1.0)


def test_scale_boxes_inclusive():
    det = np.array([[3, 0, 0, 1, 1, 0.5], [4, 3, 3, 7, 7, 0.2]])
    out = scale_boxes(det, (8, 8), (16, 12))  # (H, W): x * 1.5, y * 2
    np.testing.assert_allclose(out, [[3, 0, 0, 2, 3, 0.5], [4, 4, 6, 11, 15, 0.2]])
    np.testing.assert_array_equal(scale_boxes(det, (8, 8), (8, 8)), det)
    down = scale_boxes(det, (8, 8), (4, 4))  # covers every touched pixel
    np.testing.assert_allclose(down[:, 1:5], [[0, 0, 0, 0], [1, 1, 3, 3]])
    tr = np.array([[0, 9, 0, 0, 7, 7]], dtype=np.int64)
    np.testing.assert_array_equal(scale_boxes(tr, (8, 8), (4, 4), start=2), [[0, 9, 0, 0, 3, 3]])


@pytest.mark.parametrize("size", [3, 5, 7])
def test_clean_map_separable_square_equals_the_footprint_filter(size):
    maps = np.random.default_rng(size).random((3, 17, 23)).astype(np.float32)
    square = np.ones((1, size, size), bool)
    want = ndimage.grey_dilation(ndimage.grey_erosion(maps, footprint=square), footprint=square)
    np.testing.assert_array_equal(clean_map(maps, erosion=size, dilation=size), want)


def test_map_threshold_subsample_is_close_and_the_same_for_an_array_or_its_pieces():
    maps = np.random.default_rng(3).gamma(2.0, size=(40, 50, 60)).astype(np.float32)
    exact = np.quantile(maps, 0.97)
    sampled = map_threshold(maps, 0.97, max_samples=20_000)
    assert sampled == pytest.approx(exact, rel=0.03)
    assert map_threshold([maps[:7], maps[7:]], 0.97, max_samples=20_000) == sampled
