"""The training augmentation: moving foreign objects pasted into clips, pinned down."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sdmae.data import ObjectBank, ObjectTrack, make_clip, make_dataset, maybe_paste, paste_moving_object


@pytest.fixture(scope="module")
def clip():
    return make_clip(0, num_frames=7, size=(60, 80))[0]  # (7, 60, 80, 3): t-3 .. t+3


@pytest.fixture(scope="module")
def bank():
    return ObjectBank.builtin()


def test_builtin_bank(bank):
    assert len(bank) >= 5
    for obj in bank:
        assert obj.dtype == np.uint8 and obj.ndim == 3 and obj.shape[2] == 4
        assert max(obj.shape[:2]) <= 128 and obj[..., 3].any()
        assert not obj.flags.writeable
    assert ObjectBank.builtin()[0] is bank[0]  # built once per process


def test_paste_changes_pixels_only_under_the_mask(clip, bank):
    before = clip.copy()
    out, masks = paste_moving_object(clip, bank, np.random.default_rng(1))
    np.testing.assert_array_equal(clip, before)  # input untouched
    assert out.shape == clip.shape and out.dtype == np.uint8
    assert masks.shape == clip.shape[:3] and masks.dtype == np.float32
    assert masks.min() >= 0 and masks.max() <= 1
    changed = (out != clip).any(axis=-1)
    assert not (changed & (masks == 0)).any()  # nothing outside the object
    assert changed[masks >= 0.5].mean() > 0.5  # and the object does show
    assert masks[3].sum() > 0  # visible in the centre frame


def test_paste_moves_the_object(clip, bank):
    for seed in range(5):
        _, masks = paste_moving_object(clip, bank, np.random.default_rng(seed), speed=(3.0, 3.0))
        ys, xs = np.mgrid[0:60, 0:80]
        cy = [(ys * m).sum() / m.sum() for m in masks[2:5]]
        cx = [(xs * m).sum() / m.sum() for m in masks[2:5]]
        step = np.hypot(np.diff(cy), np.diff(cx))  # centroid motion t-1 -> t -> t+1
        assert (step > 1.5).all() and (step < 4.5).all()


def test_paste_is_deterministic_per_generator(clip, bank):
    a = paste_moving_object(clip, bank, np.random.default_rng(7))
    b = paste_moving_object(clip, bank, np.random.default_rng(7))
    c = paste_moving_object(clip, bank, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 7), h=st.integers(8, 50), w=st.integers(8, 50), seed=st.integers(0, 2**32 - 1))
def test_paste_on_awkward_shapes(k, h, w, seed):
    rng = np.random.default_rng(seed)
    clip = rng.integers(0, 256, (k, h, w, 3), dtype=np.uint8)
    out, masks = paste_moving_object(clip, ObjectBank.builtin(), rng)
    assert out.shape == clip.shape and masks.shape == (k, h, w)
    assert not ((out != clip).any(axis=-1) & (masks == 0)).any()
    assert masks[k // 2].any()


def test_maybe_paste_probability(clip, bank):
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        out, centre, pasted = maybe_paste(clip, bank, rng, probability=0.25)
        hits += pasted
        assert centre.shape == clip.shape[1:3] and centre.dtype == np.float32
        if pasted:
            assert centre.any() and not ((out[3] != clip[3]).any(-1) & (centre == 0)).any()
        else:
            assert out is clip and not centre.any()
    assert 0.19 < hits / 400 < 0.31  # binomial sd 0.022: about 3 sd each side
    assert not maybe_paste(clip, bank, rng, probability=0.0)[2]
    assert maybe_paste(clip, bank, rng, probability=1.0)[2]
    with pytest.raises(ValueError, match="probability"):
        maybe_paste(clip, bank, rng, probability=1.5)
    with pytest.raises(TypeError, match="rng"):
        maybe_paste(clip, bank)


def test_centre_mask_matches_the_chosen_frame(clip, bank):
    out, centre, pasted = maybe_paste(clip, bank, np.random.default_rng(4), probability=1.0, centre=1)
    rng = np.random.default_rng(4)
    rng.random()  # the draw maybe_paste spends on deciding
    _, masks = paste_moving_object(clip, bank, rng, centre=1)
    assert pasted
    np.testing.assert_array_equal(centre, masks[1])


def test_bad_clips_are_refused(bank):
    with pytest.raises(ValueError, match=r"\(K, H, W, 3\) uint8"):
        paste_moving_object(np.zeros((7, 10, 10, 3), np.float32), bank, np.random.default_rng(0))
    with pytest.raises(ValueError, match="centre"):
        paste_moving_object(np.zeros((3, 10, 10, 3), np.uint8), bank, np.random.default_rng(0), centre=3)


def test_bank_from_folder(tmp_path):
    obj = np.zeros((20, 10, 4), np.uint8)
    obj[5:15, 2:8] = (250, 0, 0, 255)
    Image.fromarray(obj).save(tmp_path / "2.png")
    Image.fromarray(obj).save(tmp_path / "10.png")
    bank = ObjectBank.from_folder(tmp_path)
    assert len(bank) == 2 and bank[0].shape == (10, 6, 4)  # cropped to its alpha
    Image.fromarray(obj[..., :3]).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="rgb.png.*alpha"):
        ObjectBank.from_folder(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty"):
        ObjectBank.from_folder(empty)
    with pytest.raises(FileNotFoundError, match="missing"):
        ObjectBank.from_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="alpha channel is empty"):
        ObjectBank([np.zeros((4, 4, 4), np.uint8)])


def test_bank_from_ubnormal_cuts_whole_tracks(tmp_path):
    root = make_dataset(tmp_path / "ub", "ubnormal", seed=1, num_train=1, num_test=1, num_frames=60)
    bank = ObjectBank.from_ubnormal(root, split="test")
    assert len(bank) >= 1
    for track in bank:
        assert isinstance(track, ObjectTrack) and len(track.frames) == len(track.offsets) > 1
        assert all(f.ndim == 3 and f.shape[2] == 4 and f[..., 3].any() for f in track.frames)
        assert np.abs(np.diff(track.offsets, axis=0)).sum() > 0  # the object moves along its track
    with pytest.raises(ValueError, match="no annotated abnormal objects.*'train'"):
        ObjectBank.from_ubnormal(root, split="train")  # the synthetic train split is all normal
    # --objects takes a UBnormal root as well as a folder of cut-outs (its training split's objects)
    (root / "scripts" / "abnormal_train_video_names.txt").write_text(
        (root / "scripts" / "abnormal_test_video_names.txt").read_text())
    assert ObjectBank.from_path(root).name == "ubnormal:train"


def test_a_pasted_track_follows_its_own_motion():
    # a square moving 3 px right per frame, 12 frames; pasted at its own scale (max_area off)
    frames = []
    for _ in range(12):
        f = np.zeros((10, 10, 4), np.uint8)
        f[...] = (90, 90, 90, 255)
        frames.append(f)
    track = ObjectTrack(tuple(frames), np.array([[0.0, 3.0 * k] for k in range(12)]))
    bank = ObjectBank([track])
    clip = np.zeros((7, 60, 80, 3), np.uint8)
    for seed in range(4):
        _, masks = paste_moving_object(clip, bank, np.random.default_rng(seed), scale=(10 / 60, 10 / 60),
                                       max_rotation=0, flip=False)
        left = [np.nonzero(m.max(axis=0) > 0.5)[0].min() for m in masks[2:5]]  # fully inside near the centre
        right = [np.nonzero(m.max(axis=0) > 0.5)[0].max() for m in masks[2:5]]
        inside = [0 < lo and hi < 79 for lo, hi in zip(left, right)]
        if all(inside):
            np.testing.assert_array_equal(np.diff(left), 3)


def test_object_style_grey_blurred_and_capped(bank):
    clip = make_clip(0, num_frames=7, size=(240, 320))[0]
    for seed in range(6):
        out, masks = paste_moving_object(clip, bank, np.random.default_rng(seed), grey=True, blur=1.0,
                                         max_area=0.024)
        assert 0.024 / 4 * 0.7 <= (masks[3] > 0.5).mean() <= 0.024 * 1.2
    obj = masks[3] > 0.95
    rgb = out[3][obj].astype(int)
    assert np.abs(rgb - rgb.mean(axis=1, keepdims=True)).max() <= 2  # grey where the object is opaque
