"""Synthetic scenes: determinism, anomaly kinds, and round trips through every registered layout."""

import json

import numpy as np
import pytest

from sdmae.data import ANOMALY_KINDS, LAYOUTS, load_dataset, make_background, make_clip, make_dataset

TINY = dict(num_train=1, num_test=2, num_frames=30, size=(48, 64))  # a few hundred ms per layout
RGB_LAYOUTS = ("avenue", "shanghaitech", "ubnormal", "folder")  # the others, UCSD, are grayscale
CODEC_TOLERANCE = 6.0  # mean |a - b| between two lossy encodings of the same frames


def runs(labels):
    """(start, end) inclusive of each run of ones."""
    d = np.diff(np.concatenate([[0], labels, [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1))


def test_clip_shapes_and_determinism():
    frames, labels, masks = make_clip(5, num_frames=40, size=(60, 80), anomalies=["thrown"])
    assert frames.shape == (40, 60, 80, 3) and frames.dtype == np.uint8
    assert labels.shape == (40,) and labels.dtype == np.uint8
    assert masks.shape == (40, 60, 80) and masks.dtype == bool
    np.testing.assert_array_equal(labels, masks.reshape(40, -1).any(axis=1))
    again = make_clip(5, num_frames=40, size=(60, 80), anomalies=["thrown"])
    for a, b in zip((frames, labels, masks), again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(frames, make_clip(6, num_frames=40, size=(60, 80))[0])


def test_normal_clip_has_people_moving_but_no_anomaly():
    frames, labels, masks = make_clip(0, num_frames=20)
    assert labels.sum() == 0 and not masks.any()
    background = make_background()
    moving = np.abs(frames.astype(int) - background).max(axis=-1) > 40
    assert 0.01 < moving.mean() < 0.2  # walkers present, small part of the scene
    # Normal speed: the frames change little between neighbours (1-2 px/frame).
    assert np.abs(np.diff(frames.astype(np.int16), axis=0)).mean() < 6


@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_each_anomaly_kind_is_visible_20_to_60_frames(kind):
    frames, labels, masks = make_clip(1, num_frames=90, anomalies=[(kind, 10)])
    (start, end), = runs(labels)
    assert start == 10
    assert 20 <= end - start + 1 <= 60
    # Large enough to see: the mask spans at least 8 % of the frame height at its widest.
    rows = masks.any(axis=2)
    assert max(np.ptp(np.flatnonzero(r)) + 1 for r in rows if r.any()) >= 0.08 * masks.shape[1]
    # Bright: abnormal pixels differ clearly from the background.
    diff = np.abs(frames.astype(int) - make_background()).max(axis=-1)
    assert np.median(diff[masks]) > 40


def test_anomaly_arguments():
    _, labels, _ = make_clip(2, num_frames=200, anomalies=2)
    assert len(runs(labels)) == 2
    _, labels, _ = make_clip(2, num_frames=200, anomalies="auto")
    assert 0.3 <= labels.mean() <= 0.55
    with pytest.raises(ValueError, match="unknown anomaly kind"):
        make_clip(0, num_frames=10, anomalies=["dancing"])
    with pytest.raises(ValueError, match="'auto'"):
        make_clip(0, num_frames=10, anomalies="running")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return {layout: make_dataset(root / layout, layout, seed=3, **TINY) for layout in LAYOUTS}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_make_dataset_round_trips_through_its_reader(datasets, layout):
    """Each layout's writer, detection and reader, through make_dataset and load_dataset."""
    test = load_dataset(datasets[layout])  # layout detected
    train = load_dataset(datasets[layout], layout, split="train")
    assert len(test) == 2 and len(train) == 1
    assert all(r.layout == layout for r in test + train)
    assert all(r.num_frames == 30 for r in test + train)
    assert all(r.labels is None or not r.labels.any() for r in train)
    # Every layout holds the same content: same labels and masks as Avenue's.
    reference = load_dataset(datasets["avenue"])
    for rec, ref in zip(test, reference):
        np.testing.assert_array_equal(rec.labels, ref.labels)
        masks = rec.masks()
        np.testing.assert_array_equal(masks, ref.masks())
        np.testing.assert_array_equal(rec.labels, masks.reshape(30, -1).any(axis=1))
        tracks = rec.tracks()
        assert set(tracks[:, 1].astype(int)) == set(np.flatnonzero(rec.labels))
        frames = rec.frames()
        assert frames.shape == (30, 48, 64, 3)
        other = ref.frames()
        if layout in RGB_LAYOUTS:
            assert np.abs(frames.astype(int) - other).mean() < CODEC_TOLERANCE
        else:  # UCSD is grayscale, as the originals
            assert (frames[..., 0] == frames[..., 2]).all()
    assert any(r.labels.any() for r in test)


def test_ubnormal_writes_validation_split(datasets):
    (val,) = load_dataset(datasets["ubnormal"], split="validation")
    assert val.labels.any() and val.tracks().shape[1] == 6


def test_make_dataset_is_cached_and_refuses_foreign_folders(tmp_path):
    root = make_dataset(tmp_path / "d", "folder", seed=0, **TINY)
    video = root / "test" / "cam_01.avi"
    stamp = video.stat().st_mtime_ns
    assert make_dataset(root, "folder", seed=0, **TINY) == root
    assert video.stat().st_mtime_ns == stamp  # same parameters: nothing rewritten
    make_dataset(root, "avenue", seed=0, **TINY)  # other parameters: rewritten
    assert not (root / "test").exists() and (root / "testing_videos").is_dir()
    assert json.loads((root / ".sdmae-synthetic.json").read_text())["layout"] == "avenue"
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "holiday.mp4").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="not written by make_dataset"):
        make_dataset(foreign, overwrite=True)
    assert (foreign / "holiday.mp4").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "mine"]  # no temp folders left
    with pytest.raises(ValueError, match="unknown layout"):
        make_dataset(tmp_path / "x", "kitti")


@pytest.mark.slow
def test_demo_default(tmp_path):
    import time

    start = time.perf_counter()
    root = make_dataset(tmp_path / "demo")
    elapsed = time.perf_counter() - start
    test, train = load_dataset(root), load_dataset(root, split="train")
    assert (len(train), len(test)) == (4, 4)
    assert all(r.num_frames == 180 for r in train + test)
    share = np.concatenate([r.labels for r in test]).mean()
    assert 0.3 <= share <= 0.5
    for rec in test:
        assert all(15 <= b - a + 1 <= 65 for a, b in runs(rec.labels))
    assert elapsed < 60, f"writing the demo dataset took {elapsed:.0f} s"


def test_example_02_shows_labelled_anomalies_and_a_pasted_moving_object(tmp_path):
    from helpers import run_example

    n = run_example("02_synthetic_scene.py", tmp_path / "scene.png")
    assert n["anomalies"] == 3  # a runner, a car, a thrown ball
    assert 0.2 < n["abnormal_share"] < 0.7
    assert all(area > 0 for area in n["pasted_area"])  # the object is in every frame t-3 .. t+3
    assert n["pasted_centre_x"][6] != n["pasted_centre_x"][0]  # and it moves
