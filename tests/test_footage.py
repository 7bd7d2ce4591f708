"""Dev sets cut from fixed-camera footage: disjoint splits, anomalies made of the footage, labels."""

import numpy as np
import pytest

from sdmae.data import load_dataset, make_clip
from sdmae.data.devsets.footage import (FOOTAGE_KINDS, SCENES, _Patches, event_plan, find_footage,
                                        make_footage_clips, make_footage_dataset)


@pytest.fixture(scope="module")
def footage():
    # the synthetic street stands in for real footage: a fixed camera and walking people
    return make_clip(0, num_frames=200, size=(144, 192))[0]


@pytest.mark.parametrize("split", [0, 1])
def test_training_videos_are_the_untouched_other_half(footage, split):
    clips = make_footage_clips(footage, split=split, seed=0, num_test=2)
    train = np.concatenate([c.frames for c in clips["train"]])
    half = len(footage) // 2
    expected = footage[: half - 5] if split == 0 else footage[half + 5:]
    np.testing.assert_array_equal(train, expected)
    assert all(not c.ids.any() for c in clips["train"])
    test_part = footage[half + 5:] if split == 0 else footage[: half - 5]
    for c in clips["test"]:
        assert c.labels.any() and not c.labels.all() or len(c.frames) < 40
        assert c.events and {e["kind"] for e in c.events} <= set(FOOTAGE_KINDS)
        for t in np.nonzero(c.labels == 0)[0]:  # a normal test frame is a frame of the test part, as it was
            assert any(np.array_equal(c.frames[t], f) for f in test_part)


def test_sprites_change_pixels_only_where_labelled(footage):
    clips = make_footage_clips(footage, split=0, seed=1, num_test=2)
    half = len(footage) // 2
    parts = np.array_split(np.arange(half + 5, len(footage)), 2)
    checked = 0
    for c, part in zip(clips["test"], parts):
        if any(e["kind"] == "speedup" for e in c.events):
            continue  # a speed-up reorders frames
        changed = np.abs(c.frames.astype(int) - footage[part].astype(int)).max(axis=-1) > 2
        assert changed.any()
        assert (changed & (c.ids == 0)).sum() <= 0.25 * changed.sum()  # only the soft edges of sprites
        checked += 1
    assert checked


def test_the_plan_puts_every_kind_at_start_middle_and_end():
    plans = event_plan(4, seed=0, split=0) + event_plan(4, seed=0, split=1)
    events = [e for video in plans for e in video]
    assert {k for k, _ in events} == set(FOOTAGE_KINDS)
    assert {w for _, w in events} == {"start", "middle", "end"}
    assert event_plan(4, 0, 0) == event_plan(4, 0, 0)


def test_dataset_round_trips_in_the_avenue_layout(footage, tmp_path):
    root = make_footage_dataset(footage, tmp_path / "dev", split=0, seed=0, num_test=2, width=0, fps=10)
    train = load_dataset(root, "avenue", "train")
    test = load_dataset(root, "avenue", "test")
    assert len(train) == 2 and len(test) == 2
    clips = make_footage_clips(footage, split=0, seed=0, num_test=2)
    for rec, clip in zip(test, clips["test"]):
        np.testing.assert_array_equal(rec.labels, clip.labels)
        assert rec.masks().shape == clip.ids.shape
    assert make_footage_dataset(footage, root, split=0, seed=0, num_test=2, width=0, fps=10) == root  # cached


def test_bad_footage_is_refused(footage):
    with pytest.raises(ValueError, match="at least 100"):
        make_footage_clips(footage[:50])
    with pytest.raises(ValueError, match="uint8"):
        make_footage_clips(footage.astype(np.float32))
    with pytest.raises(ValueError, match="split"):
        make_footage_clips(footage, split=2)
    empty = np.full((120, 96, 128, 3), 100, np.uint8)  # nobody walks: nothing to cut out
    with pytest.raises(ValueError, match="no person"):
        make_footage_clips(empty)


def test_a_crowd_gets_followed_windows_and_events_a_third_of_a_video_long(footage):
    clips = make_footage_clips(footage, split=0, seed=0, num_test=2, crowd=True)
    for c in clips["test"]:
        for e in c.events:
            if e["kind"] != "speedup":
                assert e["end"] - e["start"] + 1 <= len(c.frames) // 3 + 1
        assert c.labels.any() and not c.labels.all()


def test_patch_tracks_follow_what_moves():
    # a dark square walks right 2 px a frame over a grey floor: the window must follow it
    frames = np.full((30, 96, 96, 3), 128, np.uint8)
    for t in range(30):
        frames[t, 60:84, 10 + 2 * t: 20 + 2 * t] = 20
    (track,) = _Patches(frames, 24).tracks(np.random.default_rng(0), count=1, length=10)
    x0 = [box[1] for box in track.boxes]
    assert np.allclose(np.diff(x0), 2, atol=1)


def test_frame_step_keeps_every_other_frame(footage, tmp_path):
    root = make_footage_dataset(footage, tmp_path / "dev", split=0, seed=0, num_test=2, width=0, fps=10,
                                frame_step=2)
    frames = sum(r.num_frames for r in load_dataset(root, "avenue", "train"))
    assert frames == len(footage[::2]) // 2 - 5


def test_scenes_say_where_their_clips_are(monkeypatch, tmp_path):
    clip = tmp_path / "skaters.mp4"
    clip.write_bytes(b"")
    monkeypatch.setenv(SCENES["skaters"].env, str(clip))
    assert find_footage("skaters") == clip
    with pytest.raises(ValueError, match="unknown scene"):
        find_footage("moon")


def test_the_small_object_set_throws_balls_smaller_than_people(footage):
    clips = make_footage_clips(footage, split=0, seed=0, num_test=2, kinds=("ball",))
    people = make_footage_clips(footage, split=0, seed=0, num_test=2, kinds=("running",))
    for balls, runners in zip(clips["test"], people["test"]):
        assert balls.events and {e["kind"] for e in balls.events} == {"ball"}
        ball_area = max((balls.ids[t] > 0).sum() for t in np.nonzero(balls.labels)[0])
        runner_area = max((runners.ids[t] > 0).sum() for t in np.nonzero(runners.labels)[0])
        assert 0 < ball_area < runner_area / 4
    assert len(clips["test"][0].events) == 2  # the first video is thrown at twice
    # the default rotation is unchanged by the extra kind: dev sets written before stay valid
    assert event_plan(4, 0, 0) == event_plan(4, 0, 0, FOOTAGE_KINDS)
    assert {k for video in event_plan(4, 0, 0) for k, _ in video} == set(FOOTAGE_KINDS)
    with pytest.raises(ValueError, match="kinds must name"):
        event_plan(4, 0, 0, ("meteor",))
