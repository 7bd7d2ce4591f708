"""Detector: deterministic, batch-independent, streaming equals offline."""

import numpy as np
import pytest

from sdmae.data import load_dataset, read_video
from sdmae.detector import Detector, StreamScorer


@pytest.fixture(scope="module")
def detector(tiny_run):
    return Detector.load(tiny_run)


@pytest.fixture(scope="module")
def clip(tiny_data):
    return read_video(load_dataset(tiny_data, "avenue", "test")[0].source)[:30]


def test_same_run_scores_the_same_video_identically(detector, clip):
    a, b = detector.score_frames(clip), detector.score_frames(clip)
    assert np.array_equal(a.raw, b.raw)
    assert a.raw.shape == (len(clip),)


def test_scores_do_not_depend_on_the_batch(detector, clip):
    big = detector.score_frames(clip).raw
    detector.cfg.score.batch_size = 4
    try:
        small = detector.score_frames(clip).raw
    finally:
        detector.cfg.score.batch_size = 32
    np.testing.assert_allclose(small, big, rtol=1e-5)


def test_streaming_equals_offline_before_smoothing(detector, clip):
    offline = detector.score_frames(clip)
    streamed = list(detector.stream(iter(clip)))
    assert [s.index for s in streamed] == list(range(len(clip)))
    np.testing.assert_allclose([s.raw for s in streamed], offline.raw, rtol=1e-5)


def test_several_streams_batched_through_one_model(detector, clip):
    scorer = StreamScorer(detector)
    got = {"a": [], "b": []}
    for t in range(len(clip)):
        for sid, item in scorer.push_many({"a": clip[t], "b": clip[::-1][t]}):
            got[sid].append(item.raw)
    got["a"] += [s.raw for s in scorer.close("a")]
    got["b"] += [s.raw for s in scorer.close("b")]
    np.testing.assert_allclose(got["a"], detector.score_frames(clip).raw, rtol=1e-5)
    np.testing.assert_allclose(got["b"], detector.score_frames(clip[::-1]).raw, rtol=1e-5)


def test_maps_have_the_model_size(detector, clip):
    s = detector.score_frames(clip[:5], with_maps=True)
    assert s.maps.shape == (5,) + detector.size
    assert np.isfinite(s.maps).all() and (s.maps >= 0).all()


def test_missing_run_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no student.pt"):
        Detector.load(tmp_path)
