"""sdmae.evaluate keeps boxes, not maps: the same metrics, in memory bounded by one video."""

import numpy as np

from sdmae.detector import Detector
from sdmae.evaluate import evaluate


def test_maps_become_boxes_per_video_and_are_kept_only_when_asked(tiny_run, tiny_data):
    detector = Detector.load(tiny_run)
    lean = evaluate(detector, tiny_data, "avenue", progress=False)
    kept = evaluate(detector, tiny_data, "avenue", progress=False, keep_maps=True)
    assert all(s.maps is None for s in lean.scores)
    assert all(s.maps is not None and len(s.maps) == len(s.raw) for s in kept.scores)
    assert lean.metrics["rbdc"] is not None
    for key in ("micro_auc", "macro_auc", "rbdc", "tbdc"):
        assert lean.metrics[key] == kept.metrics[key], key
    for a, b in zip(lean.detections, kept.detections):
        np.testing.assert_array_equal(a, b)
    assert sum(len(d) for d in lean.detections) > 0


def test_no_maps_are_computed_without_region_metrics(tiny_run, tiny_data, monkeypatch):
    detector = Detector.load(tiny_run)
    asked = []
    score_video = detector.score_video
    monkeypatch.setattr(detector, "score_video",
                        lambda source, **kw: asked.append(kw["with_maps"]) or score_video(source, **kw))
    result = evaluate(detector, tiny_data, "avenue", progress=False, with_maps=False)
    assert asked and not any(asked)
    assert result.metrics["rbdc"] is None and result.metrics["micro_auc"] is not None
    assert result.detections == [None] * len(result.videos)


def test_map_chunks_are_the_maps_in_pieces(tiny_run, tiny_data):
    from sdmae.data import load_dataset

    detector = Detector.load(tiny_run)
    source = load_dataset(tiny_data, "avenue", split="test")[0].source
    whole = detector.score_video(source, with_maps=True)
    pieces = detector.score_video(source, with_maps=True, map_chunks=True)
    assert isinstance(pieces.maps, list) and len(pieces.maps) > 1
    np.testing.assert_array_equal(np.concatenate(pieces.maps), whole.maps)
    np.testing.assert_array_equal(pieces.raw, whole.raw)
