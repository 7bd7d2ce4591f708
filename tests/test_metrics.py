"""Frame AUCs against Mann-Whitney U; RBDC / TBDC on hand-made cases."""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from sdmae.metrics import (
    MacroAUC,
    macro_auc,
    micro_auc,
    rbdc_tbdc,
    rbdc_tbdc_curves,
    roc_auc,
    roc_curve,
)



def _mwu_auc(s, y):
    y = np.asarray(y, dtype=bool)
    u = mannwhitneyu(s[y], s[~y], alternative="two-sided", method="asymptotic").statistic
    return u / (y.sum() * (~y).sum())


def _tied_data(rng, n):
    # Few distinct values so that ties are frequent, within and across classes.
    s = rng.integers(0, 6, size=n).astype(float) / 5
    y = rng.random(n) < 0.3
    y[:2] = [True, False]
    return s, y


# ---------------------------------------------------------------- roc_auc
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_roc_auc_matches_mannwhitneyu_with_ties(seed):
    rng = np.random.default_rng(seed)
    s, y = _tied_data(rng, 200 + 37 * seed)
    assert roc_auc(s, y) == pytest.approx(_mwu_auc(s, y), abs=1e-12)
    assert roc_auc(s, y.astype(int)) == roc_auc(s, y)


def test_roc_auc_simple_values():
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5], [0, 1, 0]) == 0.5


@pytest.mark.parametrize(
    "scores, labels, match",
    [
        ([0.1, 0.2], [0, 0], "one class"),
        ([0.1, 0.2], [1, 1], "one class"),
        ([0.1, 0.2, 0.3], [0, 1], "same shape"),
        ([0.1, np.nan], [0, 1], "scores contain NaN"),
        ([0.1, 0.2], [0, 2], "labels must be 0/1"),
    ],
)
def test_roc_auc_errors(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        roc_auc(scores, labels)


def test_roc_curve_area_equals_auc():
    rng = np.random.default_rng(7)
    s, y = _tied_data(rng, 300)
    fpr, tpr, thr = roc_curve(s, y)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.isinf(thr[0])
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
    assert area == pytest.approx(roc_auc(s, y), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_roc_auc_invariant_to_monotone_transform(seed):
    rng = np.random.default_rng(seed)
    s, y = _tied_data(rng, 50)
    a = roc_auc(s, y)
    assert 0.0 <= a <= 1.0
    assert roc_auc(np.exp(3 * s) - 7, y) == pytest.approx(a, abs=1e-12)
    assert roc_auc(-s, y) == pytest.approx(1 - a, abs=1e-12)


# ---------------------------------------------------------------- micro / macro
def _videos(seed, n_videos=4):
    rng = np.random.default_rng(seed)
    scores, labels = [], []
    for v in range(n_videos):
        s, y = _tied_data(rng, 40 + 11 * v)
        scores.append(s + v)  # per-video offsets separate micro from macro
        labels.append(y.astype(int))
    return scores, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_micro_auc_pools_frames(seed):
    scores, labels = _videos(seed)
    s, y = np.concatenate(scores), np.concatenate(labels)
    assert micro_auc(scores, labels) == pytest.approx(_mwu_auc(s, y), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_auc_is_mean_of_per_video_mannwhitneyu(seed):
    scores, labels = _videos(seed)
    res = macro_auc(scores, labels)
    expected = [_mwu_auc(s, y) for s, y in zip(scores, labels)]
    assert isinstance(res, MacroAUC) and isinstance(res, float)
    assert res == pytest.approx(np.mean(expected), abs=1e-12)
    np.testing.assert_allclose(res.per_video, expected, atol=1e-12)
    assert (res.used, res.skipped, res.padded) == (4, 0, False)


def test_macro_auc_skips_single_class_videos_and_pickles():
    scores = [np.array([0.2, 0.8]), np.array([0.9, 0.1]), np.array([0.5, 0.4, 0.3])]
    labels = [[0, 1], [0, 1], [0, 0, 0]]
    res = macro_auc(scores, labels)
    assert res == 0.5 and res.value == 0.5
    assert (res.used, res.skipped) == (2, 1)
    assert np.isnan(res.per_video[2])
    assert f"{res:.2f}" == "0.50"
    back = pickle.loads(pickle.dumps(res))
    assert back == res and back.used == 2 and back.skipped == 1
    assert "skipped=1" in repr(res)


def test_macro_auc_padded_convention_by_hand():
    scores = [np.array([0.2, 0.8]), np.array([0.9, 0.1]), np.array([0.5, 0.5])]
    labels = [[0, 1], [0, 1], [0, 0]]
    res = macro_auc(scores, labels, padded=True)
    # Padded: [0, s, 1] with labels [0, y, 1].
    #   video 0: [0, .2, .8, 1] / [0, 0, 1, 1] -> 1
    #   video 1: [0, .9, .1, 1] / [0, 0, 1, 1] -> 3 of 4 pairs ordered -> .75
    #   video 2: [0, .5, .5, 1] / [0, 0, 0, 1] -> 1 (now has both classes)
    assert res == pytest.approx((1 + 0.75 + 1) / 3)
    assert (res.used, res.skipped, res.padded) == (3, 0, True)
    assert macro_auc(scores, labels) == 0.5  # default stays unpadded


def test_frame_auc_input_errors():
    with pytest.raises(ValueError, match="none of the 1 videos"):
        macro_auc([np.zeros(3)], [np.zeros(3)])
    with pytest.raises(ValueError, match="same number of videos"):
        micro_auc([np.zeros(3)], [])
    with pytest.raises(ValueError, match=r"scores\[1\] contain NaN"):
        macro_auc([np.zeros(2), np.array([0.0, np.nan])], [[0, 1], [0, 1]])
    with pytest.raises(TypeError, match="list of per-video"):
        micro_auc(np.zeros(3), np.zeros(3))


# ---------------------------------------------------------------- RBDC / TBDC
def _det(frame, box, score):
    return [frame, *box, score]


def test_perfect_detector_scores_one():
    tracks = [
        np.array([[0, 2, 0, 0, 9, 9], [0, 3, 1, 0, 10, 9], [1, 3, 20, 20, 29, 29]]),
        np.array([[5, 0, 3, 3, 8, 8]]),
    ]
    dets = [np.c_[t[:, 1], t[:, 2:], np.ones(len(t))] for t in tracks]
    assert rbdc_tbdc(dets, tracks, 10) == (1.0, 1.0)
    assert rbdc_tbdc(dets, tracks, [6, 4]) == (1.0, 1.0)


def test_nothing_detected_scores_zero():
    tracks = [np.array([[0, 1, 0, 0, 9, 9]])]
    assert rbdc_tbdc([np.zeros((0, 6))], tracks, 5) == (0.0, 0.0)
    # Detections only in frames without ground truth are false positives.
    dets = [np.array([_det(0, (0, 0, 9, 9), 0.9), _det(2, (0, 0, 9, 9), 0.8)])]
    c = rbdc_tbdc_curves(dets, tracks, 5)
    assert (c.rbdc, c.tbdc) == (0.0, 0.0)
    np.testing.assert_allclose(c.fpr, [0, 0.2, 0.4, 1.0])


def test_one_false_positive_per_frame_interleaved():
    # Two frames, one region each (one track); one false positive per frame.
    tracks = [np.array([[0, 0, 0, 0, 9, 9], [0, 1, 0, 0, 9, 9]])]
    far = (50, 50, 59, 59)
    dets = [np.array([
        _det(0, (0, 0, 9, 9), 0.9),
        _det(0, far, 0.8),
        _det(1, (0, 0, 9, 9), 0.7),
        _det(1, far, 0.6),
    ])]
    c = rbdc_tbdc_curves(dets, tracks, 2)
    # Points (fpr, rbdr): (0,0) (0,.5) (.5,.5) (.5,1) (1,1)
    # -> area .5 * .5 + .5 * 1 = .75; the track is found at once -> TBDC 1.
    np.testing.assert_allclose(c.fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(c.rbdr, [0, 0.5, 0.5, 1, 1])
    assert (c.rbdc, c.tbdc) == (0.75, 1.0)


def test_false_positives_first_reach_fpr_one_before_any_detection():
    tracks = [np.array([[0, 0, 0, 0, 9, 9], [0, 1, 0, 0, 9, 9]])]
    far = (50, 50, 59, 59)
    dets = np.array([_det(0, far, 0.9), _det(1, far, 0.8),
                     _det(0, (0, 0, 9, 9), 0.7), _det(1, (0, 0, 9, 9), 0.6)])
    assert rbdc_tbdc([dets], tracks, 2) == (0.0, 0.0)
    dets[:2, 5] = [0.1, 0.05]  # false positives last -> perfect
    assert rbdc_tbdc([dets], tracks, 2) == (1.0, 1.0)


def test_curve_extended_flat_with_last_value():
    # 4 frames: one FP, then half the regions; FP rate stops at .25.
    tracks = [np.array([[0, 0, 0, 0, 9, 9], [0, 1, 0, 0, 9, 9]])]
    dets = [np.array([_det(2, (0, 0, 9, 9), 0.9), _det(0, (0, 0, 9, 9), 0.8)])]
    c = rbdc_tbdc_curves(dets, tracks, 4)
    np.testing.assert_allclose(c.fpr, [0, 0.25, 0.25, 1])
    np.testing.assert_allclose(c.rbdr, [0, 0, 0.5, 0.5])
    assert c.rbdc == pytest.approx(0.75 * 0.5)
    assert c.tbdc == pytest.approx(0.75 * 1.0)


def test_half_detected_track_and_fraction_threshold():
    box = (0, 0, 9, 9)
    a = [[0, f, *box] for f in range(4)]  # track 0: 4 regions, 2 found (50 %)
    b = [[1, f, 20, 20, 29, 29] for f in range(20)]  # track 1: 20 regions, 1 found (5 %)
    tracks = [np.array(a + b)]
    dets = [np.array([_det(0, box, 0.9), _det(1, box, 0.8), _det(0, (20, 20, 29, 29), 0.7)])]
    assert rbdc_tbdc(dets, tracks, 20) == (pytest.approx(3 / 24), 0.5)
    assert rbdc_tbdc(dets, tracks, 20, track_fraction=0.6)[1] == 0.0
    assert rbdc_tbdc(dets, tracks, 20, track_fraction=0.05)[1] == 1.0


def test_track_detected_at_exactly_ten_percent():
    tracks = [np.array([[3, f, 0, 0, 9, 9] for f in range(10)])]
    dets = [np.array([_det(4, (0, 0, 9, 9), 0.5)])]
    assert rbdc_tbdc(dets, tracks, 10) == (pytest.approx(0.1), 1.0)


@pytest.mark.parametrize(
    "box, matched",
    [
        ((0, 0, 9, 0), True),  # 10 px inside a 100 px box: IoU = .1 exactly
        ((0, 0, 8, 0), False),  # 9 px: IoU .09
        ((0, 0, 10, 0), False),  # 11 px, 10 inside: 10 / 101
        ((0, 0, 9, 1), True),  # IoU .2
        ((9, 0, 9, 9), True),  # one inclusive column: 10 / 100
    ],
)
def test_iou_threshold_inclusive_boxes(box, matched):
    tracks = [np.array([[0, 0, 0, 0, 9, 9]])]
    dets = [np.array([_det(0, box, 1.0)])]
    assert rbdc_tbdc(dets, tracks, 1) == ((1.0, 1.0) if matched else (0.0, 0.0))


def test_single_pixel_boxes_are_inclusive():
    # With exclusive widths these boxes would have zero area.
    tracks = [np.array([[0, 0, 5, 5, 5, 5]])]
    assert rbdc_tbdc([np.array([_det(0, (5, 5, 5, 5), 1.0)])], tracks, 1) == (1.0, 1.0)
    # 1 px inside a 10 px detection: IoU = 1 / 10.
    assert rbdc_tbdc([np.array([_det(0, (5, 5, 14, 5), 1.0)])], tracks, 1) == (1.0, 1.0)
    assert rbdc_tbdc([np.array([_det(0, (5, 5, 15, 5), 1.0)])], tracks, 1) == (0.0, 0.0)


def test_one_detection_detects_several_regions():
    tracks = [np.array([[0, 0, 0, 0, 9, 9], [1, 0, 10, 0, 19, 9]])]
    dets = [np.array([_det(0, (0, 0, 19, 9), 1.0)])]  # IoU .5 with each
    assert rbdc_tbdc(dets, tracks, 1) == (1.0, 1.0)


def test_repeated_detection_is_neither_true_nor_false_positive():
    tracks = [np.array([[0, 0, 0, 0, 9, 9], [1, 1, 0, 0, 9, 9]])]
    dets = [np.array([
        _det(0, (0, 0, 9, 9), 0.9),
        _det(0, (1, 1, 9, 9), 0.8),  # same region again
        _det(1, (0, 0, 9, 9), 0.7),
    ])]
    # As a false positive the duplicate would end the curve (1 frame) at .5.
    assert rbdc_tbdc(dets, tracks, 1) == (1.0, 1.0)


def test_videos_are_kept_apart_and_ranked_together():
    box = (0, 0, 9, 9)
    tracks = [np.array([[0, 0, *box]]), np.array([[0, 0, *box]])]
    # Video 1's detection is in frame 1, where video 1 has no ground truth,
    # even though video 0 has a region with this box in frame 0.
    dets = [np.zeros((0, 6)), np.array([_det(1, box, 0.9), _det(0, box, 0.5)])]
    c = rbdc_tbdc_curves(dets, tracks, 2)
    np.testing.assert_allclose(c.fpr, [0, 0.5, 0.5, 1])
    np.testing.assert_allclose(c.rbdr, [0, 0, 0.5, 0.5])
    # Video 0's detection outranks video 1's false positive in the sweep:
    # (0,0) (0,.5) (.5,.5) (.5,1) -> flat to (1,1): area .25 + .5.
    dets[0] = np.array([_det(0, box, 0.95)])
    assert rbdc_tbdc(dets, tracks, 2)[0] == pytest.approx(0.75)


def test_rbdc_tbdc_input_errors():
    good = [np.array([[0, 0, 0, 0, 9, 9]])]
    with pytest.raises(ValueError, match="no regions"):
        rbdc_tbdc([np.zeros((0, 6))], [np.zeros((0, 6))], 3)
    with pytest.raises(ValueError, match="two regions in one frame"):
        rbdc_tbdc([np.zeros((0, 6))], [np.array([[0, 0, 0, 0, 9, 9], [0, 0, 5, 5, 9, 9]])], 3)
    with pytest.raises(ValueError, match="same number of videos"):
        rbdc_tbdc([], good, 3)
    with pytest.raises(ValueError, match=r"\(K, 6\)"):
        rbdc_tbdc([np.zeros((2, 5))], good, 3)
    with pytest.raises(ValueError, match="num_frames must be positive"):
        rbdc_tbdc([np.zeros((0, 6))], good, 0)


# ---------------------------------------------------------------- example
def test_example_05_shows_what_each_criterion_does(tmp_path):
    from helpers import run_example

    n = run_example("05_evaluate.py", tmp_path / "eval.png")
    assert (n["macro_used"], n["macro_skipped"]) == (2, 1)  # the video without anomalies has no AUC
    assert n["padded"] > n["macro"]  # the official padding inflates macro AUC
    assert 0 < n["rbdc"] < n["tbdc"] <= 1  # the hard, rarely found object costs regions more than tracks
