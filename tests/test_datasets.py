"""Dataset readers on tiny fixtures built in each benchmark's exact on-disk layout."""

import pickle

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from sdmae.data import (
    DatasetError,
    detect_layout,
    load_dataset,
    tracks_from_masks,
    write_frames,
    write_video,
)

H, W = 24, 32


def clip(t, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(60, 200, (t, H, W, 3), dtype=np.uint8)


def blob_masks(t, frames, box=(4, 10, 6, 14)):
    """(t, H, W) bool with a rectangle on the given frames."""
    m = np.zeros((t, H, W), bool)
    y0, y1, x0, x1 = box
    m[list(frames), y0:y1, x0:x1] = True
    return m


def save_images(folder, frames, pattern, start=0):
    folder.mkdir(parents=True)
    for k, f in enumerate(frames):
        Image.fromarray(f).save(folder / pattern.format(start + k))


# --------------------------------------------------------------------------- Avenue


def make_avenue(root, gt_dir="ground_truth_demo/testing_label_mask", n_labels=None):
    (root / "training_videos").mkdir(parents=True)
    (root / "testing_videos").mkdir()
    write_video(root / "training_videos" / "01.avi", clip(6))
    gt = root / gt_dir
    gt.mkdir(parents=True)
    masks = {1: blob_masks(8, [2, 3, 4]), 2: blob_masks(6, [0, 5])}
    for n, m in masks.items():
        write_video(root / "testing_videos" / f"{n:02d}.avi", clip(len(m), n))
        m = m[:n_labels] if n_labels else m
        cell = np.empty((1, len(m)), object)  # MATLAB 1xN cell
        for t in range(len(m)):
            cell[0, t] = m[t].astype(np.uint8)
        savemat(gt / f"{n}_label.mat", {"volLabel": cell})
    return masks


@pytest.mark.parametrize("gt_dir", ["testing_label_mask", "ground_truth_demo/testing_label_mask"])
def test_avenue(tmp_path, gt_dir):
    masks = make_avenue(tmp_path, gt_dir)
    assert detect_layout(tmp_path) == "avenue"
    test = load_dataset(tmp_path)
    assert [r.name for r in test] == ["01", "02"]
    assert [r.num_frames for r in test] == [8, 6]
    np.testing.assert_array_equal(test[0].labels, [0, 0, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(test[1].labels, [1, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(test[0].masks(), masks[1])
    assert test[0].fps == pytest.approx(25.0)
    assert test[0].frames().shape == (8, H, W, 3)
    np.testing.assert_array_equal(test[0].tracks(), [[0, t, 6, 4, 13, 9] for t in (2, 3, 4)])
    train = load_dataset(tmp_path, "avenue", split="train")
    assert [(r.name, r.num_frames, r.labels) for r in train] == [("01", 6, None)]
    assert train[0].masks() is None and train[0].tracks() is None


def test_avenue_label_count_mismatch_names_video_and_counts(tmp_path):
    make_avenue(tmp_path, n_labels=5)
    with pytest.raises(DatasetError, match=r"'01'.*5 label masks.*8 frames"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 50, "cut"])
def test_unreadable_mat_label_file_is_named(tmp_path, content):
    make_avenue(tmp_path)
    mat = tmp_path / "ground_truth_demo" / "testing_label_mask" / "2_label.mat"
    mat.write_bytes(mat.read_bytes()[:200] if content == "cut" else content)
    with pytest.raises(DatasetError, match=r"2_label\.mat is not a readable MATLAB file"):
        load_dataset(tmp_path)


def test_avenue_missing_label_file_and_folder(tmp_path):
    make_avenue(tmp_path)
    (tmp_path / "ground_truth_demo" / "testing_label_mask" / "2_label.mat").unlink()
    with pytest.raises(FileNotFoundError, match="2_label.mat"):
        load_dataset(tmp_path)
    (tmp_path / "testing_videos").rename(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match="testing_videos"):
        load_dataset(tmp_path, "avenue")


def test_wrapper_folder_is_tolerated(tmp_path):
    make_avenue(tmp_path / "Avenue Dataset")
    assert detect_layout(tmp_path) == "avenue"
    assert len(load_dataset(tmp_path)) == 2
    assert len(load_dataset(tmp_path, "avenue")) == 2


# --------------------------------------------------------------------------- ShanghaiTech


def make_shanghaitech(root, n_labels=7):
    (root / "training" / "videos").mkdir(parents=True)
    write_video(root / "training" / "videos" / "01_001.avi", clip(5))
    write_video(root / "training" / "videos" / "01_002.avi", clip(4))
    save_images(root / "testing" / "frames" / "01_0014", clip(7), "{:03d}.jpg")
    save_images(root / "testing" / "frames" / "01_0015", clip(3), "{:03d}.jpg")
    for d in ("test_frame_mask", "test_pixel_mask"):
        (root / "testing" / d).mkdir()
    labels = np.array([0, 1, 1, 0, 0, 0, 1][:n_labels])
    np.save(root / "testing" / "test_frame_mask" / "01_0014.npy", labels)
    np.save(root / "testing" / "test_frame_mask" / "01_0015.npy", np.zeros(3, np.int64))
    masks = blob_masks(7, [1, 2, 6]).astype(np.uint8)
    np.save(root / "testing" / "test_pixel_mask" / "01_0014.npy", masks)
    return masks


def test_shanghaitech(tmp_path):
    masks = make_shanghaitech(tmp_path)
    assert detect_layout(tmp_path) == "shanghaitech"
    test = load_dataset(tmp_path)
    assert [(r.name, r.num_frames, r.fps) for r in test] == [("01_0014", 7, None), ("01_0015", 3, None)]
    np.testing.assert_array_equal(test[0].labels, [0, 1, 1, 0, 0, 0, 1])
    assert test[0].labels.dtype == np.uint8
    np.testing.assert_array_equal(test[0].masks(), masks.astype(bool))
    assert test[1].masks() is None and test[1].labels.sum() == 0
    assert len(test[0].frames()) == 7 and len(list(test[0].iter_frames())) == 7
    train = load_dataset(tmp_path, split="train")
    assert [(r.name, r.num_frames) for r in train] == [("01_001", 5), ("01_002", 4)]


def test_shanghaitech_label_mismatch(tmp_path):
    make_shanghaitech(tmp_path, n_labels=6)
    with pytest.raises(DatasetError, match=r"'01_0014'.*6 labels.*7 frames"):
        load_dataset(tmp_path, "shanghaitech")


@pytest.mark.parametrize("saved", ["objects", "pickle", "cut", "empty"])
def test_npy_labels_that_are_not_numbers_are_named_and_never_unpickled(tmp_path, saved):
    make_shanghaitech(tmp_path)
    path = tmp_path / "testing" / "test_frame_mask" / "01_0014.npy"
    if saved == "objects":
        np.save(path, np.array([0, 1, None, 0, 0, 0, 1], dtype=object), allow_pickle=True)
    elif saved == "pickle":
        path.write_bytes(pickle.dumps([0, 1, 1, 0, 0, 0, 1]))
    else:
        path.write_bytes(path.read_bytes()[:100] if saved == "cut" else b"")
    with pytest.raises(DatasetError, match=r"01_0014\.npy is not a (numeric|readable) \.npy array") as err:
        load_dataset(tmp_path, "shanghaitech")
    assert "allow_pickle" not in str(err.value)



def test_npy_labels_of_strings_are_refused(tmp_path):
    make_shanghaitech(tmp_path)
    np.save(tmp_path / "testing" / "test_frame_mask" / "01_0014.npy", np.array(list("0110001")))
    with pytest.raises(DatasetError, match=r"'01_0014'.*01_0014\.npy must be numbers"):
        load_dataset(tmp_path, "shanghaitech")


# --------------------------------------------------------------------------- UCSD

UCSD_M = """TestVideoFile = {};
% abnormal frame ranges, 1-based inclusive
TestVideoFile{end+1}.gt_frame = [3:5, 8:9];
TestVideoFile{end+1}.gt_frame = [2:8];
"""


def make_ucsd(base, m_text=UCSD_M, which="ped2"):
    gray = clip(10)[..., 0]
    write_frames(base / "Train" / "Train001", gray[:6], "{:03d}.tif", start=1)
    write_frames(base / "Test" / "Test001", gray, "{:03d}.tif", start=1)
    write_frames(base / "Test" / "Test002", gray[:8], "{:03d}.tif", start=1)
    for folder in (base / "Test" / "Test001", base / "Train" / "Train001"):
        (folder / "._001.tif").write_bytes(b"\x00\x05\x16\x07macOS")
        (folder / ".DS_Store").write_bytes(b"junk")
    masks = blob_masks(10, [2, 3, 4, 7, 8])
    write_frames(base / "Test" / "Test001_gt", masks.astype(np.uint8) * 255, "{:03d}.bmp", start=1)
    (base / "Test" / f"UCSD{which}.m").write_text(m_text)
    return masks


@pytest.mark.parametrize("root_is_parent", [True, False])
def test_ucsd_ped2(tmp_path, root_is_parent):
    masks = make_ucsd(tmp_path / "UCSDped2")
    root = tmp_path if root_is_parent else tmp_path / "UCSDped2"
    assert detect_layout(root) == "ped2"
    test = load_dataset(root)
    assert [(r.name, r.num_frames) for r in test] == [("Test001", 10), ("Test002", 8)]
    np.testing.assert_array_equal(test[0].labels, [0, 0, 1, 1, 1, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(test[1].labels, [0, 1, 1, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(test[0].masks(), masks)
    assert test[1].masks() is None
    # Hidden files are not frames; grayscale comes back as RGB.
    assert test[0].frames().shape == (10, H, W, 3)
    train = load_dataset(root, "ped2", split="train")
    assert [(r.name, r.num_frames) for r in train] == [("Train001", 6)]


def test_ucsd_ped1_and_ambiguity(tmp_path):
    make_ucsd(tmp_path / "UCSDped1", which="ped1")
    assert detect_layout(tmp_path) == "ped1"
    make_ucsd(tmp_path / "UCSDped2")
    with pytest.raises(DatasetError, match="ped1.*ped2"):
        detect_layout(tmp_path)
    assert load_dataset(tmp_path, "ped2")[0].layout == "ped2"
    assert len(load_dataset(tmp_path, "ped1")) == 2


def test_ucsd_bad_ranges(tmp_path):
    make_ucsd(tmp_path / "UCSDped2", UCSD_M.replace("[2:8]", "[2:9]"))
    with pytest.raises(DatasetError, match=r"'Test002'.*2:9.*8 frames"):
        load_dataset(tmp_path)
    (tmp_path / "UCSDped2" / "Test" / "UCSDped2.m").write_text(UCSD_M.split("TestVideoFile{end+1}")[0])
    with pytest.raises(DatasetError, match="0 gt_frame entries.*2 videos"):
        load_dataset(tmp_path)
    (tmp_path / "UCSDped2" / "Test" / "UCSDped2.m").write_text(UCSD_M.replace("[2:8]", "[2:end]"))
    with pytest.raises(DatasetError, match=r"UCSDped2\.m: gt_frame range '2:end'"):
        load_dataset(tmp_path)


# --------------------------------------------------------------------------- UBnormal


def make_ubnormal(root, video_ext=True, extra_listed=None):
    s1, s2 = root / "Scene1", root / "Scene2"
    s1.mkdir(parents=True)
    s2.mkdir()
    ab, no = "abnormal_scene_1_scenario_1", "normal_scene_2_scenario_3"
    write_video(s1 / f"{ab}.mp4", clip(10))
    write_video(s2 / f"{no}.mp4", clip(6))
    write_video(s2 / "normal_scene_2_scenario_1.mp4", clip(5))
    ann = s1 / f"{ab}_annotations"
    ann.mkdir()
    (ann / f"{ab}_tracks.txt").write_text("3,2,5\n7,4,6\n")
    ids = np.zeros((10, H, W), np.uint8)
    ids[2:6, 2:8, 3:9] = 3  # object 3 on frames 2..5
    ids[4:7, 12:20, 20:25] = 7  # object 7 on frames 4..6
    ids[8, 0:3, 0:3] = 9  # a normal object: not in tracks.txt
    write_frames(ann / f"{ab}_gt", ids, "{:04d}_gt.png")
    scripts = root / "scripts"
    scripts.mkdir()
    ext = ".mp4" if video_ext else ""
    (scripts / "abnormal_test_video_names.txt").write_text(f"{ab}{ext}\n" + (extra_listed or ""))
    (scripts / "normal_test_video_names.txt").write_text(f"{no}\n\n")
    (scripts / "abnormal_train_video_names.txt").write_text("")
    (scripts / "normal_training_video_names.txt").write_text("normal_scene_2_scenario_1\n")
    (scripts / "abnormal_validation_video_names.txt").write_text("")
    (scripts / "normal_validation_video_names.txt").write_text(f"{no}\n")
    return ids


@pytest.mark.parametrize("video_ext", [True, False])
def test_ubnormal(tmp_path, video_ext):
    ids = make_ubnormal(tmp_path, video_ext)
    assert detect_layout(tmp_path) == "ubnormal"
    test = load_dataset(tmp_path)
    assert [(r.name, r.num_frames) for r in test] == [
        ("abnormal_scene_1_scenario_1", 10),
        ("normal_scene_2_scenario_3", 6),
    ]
    np.testing.assert_array_equal(test[0].labels, [0, 0, 1, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(test[1].labels, np.zeros(6))
    np.testing.assert_array_equal(test[0].masks(), (ids == 3) | (ids == 7))  # not object 9
    tracks = test[0].tracks()
    assert tracks.shape == (7, 6)
    np.testing.assert_array_equal(tracks[0], [3, 2, 3, 2, 8, 7])
    np.testing.assert_array_equal(np.unique(tracks[:, 0]), [3, 7])
    assert test[1].masks().shape == (6, H, W) and not test[1].masks().any()
    assert test[1].tracks().shape == (0, 6)
    assert [r.name for r in load_dataset(tmp_path, split="train")] == ["normal_scene_2_scenario_1"]
    assert [r.name for r in load_dataset(tmp_path, split="validation")] == ["normal_scene_2_scenario_3"]


def test_ubnormal_in_a_wrapper_folder_with_and_without_the_layout_named(tmp_path):
    make_ubnormal(tmp_path / "UBnormal")
    assert detect_layout(tmp_path) == "ubnormal"
    direct = [(r.name, r.source) for r in load_dataset(tmp_path / "UBnormal", "ubnormal", "test")]
    assert direct and [(r.name, r.source) for r in load_dataset(tmp_path, "ubnormal", "test")] == direct
    assert [(r.name, r.source) for r in load_dataset(tmp_path, split="test")] == direct


def test_ubnormal_listed_video_missing(tmp_path):
    make_ubnormal(tmp_path, extra_listed="abnormal_scene_4_scenario_9\n")
    with pytest.raises(FileNotFoundError, match="abnormal_scene_4_scenario_9"):
        load_dataset(tmp_path)


def test_ubnormal_without_split_files(tmp_path):
    make_ubnormal(tmp_path)
    for f in (tmp_path / "scripts").iterdir():
        f.unlink()
    with pytest.raises(FileNotFoundError, match="abnormal_test_video_names.txt"):
        load_dataset(tmp_path)


# --------------------------------------------------------------------------- folder


def make_folder(root, labels_c=(0, 1, 1, 0, 0, 0)):
    for d in ("train", "test", "labels", "masks"):
        (root / d).mkdir(parents=True)
    write_video(root / "train" / "a.avi", clip(5))
    save_images(root / "train" / "b", clip(4), "{}.png")
    write_video(root / "test" / "c.mp4", clip(6))
    np.save(root / "test" / "c.npy", np.array(labels_c))
    save_images(root / "test" / "d", clip(3), "frame_{:02d}.jpg")
    (root / "labels" / "d.txt").write_text("0\n1\n1\n")
    write_video(root / "test" / "e.avi", clip(4))  # no labels
    masks = blob_masks(6, [1, 2])
    np.save(root / "masks" / "c.npy", masks)
    return masks


def test_folder(tmp_path):
    masks = make_folder(tmp_path)
    assert detect_layout(tmp_path) == "folder"
    test = load_dataset(tmp_path)
    assert [(r.name, r.num_frames) for r in test] == [("c", 6), ("d", 3), ("e", 4)]
    np.testing.assert_array_equal(test[0].labels, [0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(test[1].labels, [0, 1, 1])
    assert test[2].labels is None
    np.testing.assert_array_equal(test[0].masks(), masks)
    assert test[1].masks() is None and test[1].tracks() is None
    train = load_dataset(tmp_path, "folder", "train")
    assert [(r.name, r.num_frames, r.labels) for r in train] == [("a", 5, None), ("b", 4, None)]


def test_folder_label_mismatch_names_video_and_counts(tmp_path):
    make_folder(tmp_path, labels_c=(0, 1, 1))
    with pytest.raises(DatasetError, match=r"'c'.*3 labels.*6 frames"):
        load_dataset(tmp_path)


# --------------------------------------------------------------------------- errors and tracks


def test_unknown_layout_lists_what_was_looked_for(tmp_path):
    (tmp_path / "random").mkdir()
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetError, match="looked for: avenue.*shanghaitech.*ped1/ped2.*ubnormal.*folder"):
        load_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="unknown layout"):
        load_dataset(tmp_path, "kitti")
    with pytest.raises(DatasetError, match="unknown split"):
        load_dataset(tmp_path, "folder", split="dev")
    with pytest.raises(FileNotFoundError, match="test"):
        load_dataset(tmp_path, "folder")


def test_tracks_from_masks_links_fast_objects_and_separates_others():
    m = np.zeros((6, 40, 60), bool)
    for t in range(6):
        m[t, 5:10, 8 * t : 8 * t + 5] = True  # 5 px wide, 8 px/frame: never overlaps itself
        if t >= 2:
            m[t, 30:36, 50:55] = True  # a second, still object from frame 2
    tracks = tracks_from_masks(m)
    assert tracks.shape == (10, 6)
    fast, still = tracks[tracks[:, 0] == 0], tracks[tracks[:, 0] == 1]
    np.testing.assert_array_equal(fast[:, 1], np.arange(6))
    np.testing.assert_array_equal(fast[3], [0, 3, 24, 5, 28, 9])
    np.testing.assert_array_equal(still[:, 1], np.arange(2, 6))
    assert tracks_from_masks(np.zeros((3, 4, 4), bool)).shape == (0, 6)


def test_tracks_from_masks_keeps_one_region_per_track_and_frame():
    m = np.zeros((2, 10, 20), bool)
    m[0, 2:6, 2:14] = True
    m[1, 2:6, 2:10] = True  # the larger part continues the track
    m[1, 2:6, 12:14] = True  # the smaller part starts a new one
    np.testing.assert_array_equal(tracks_from_masks(m, merge_distance=0),
                                  [[0, 0, 2, 2, 13, 5], [0, 1, 2, 2, 9, 5], [1, 1, 12, 2, 13, 5]])
    # 2 px apart (an occluder's cut) the parts are one region by default
    np.testing.assert_array_equal(tracks_from_masks(m), [[0, 0, 2, 2, 13, 5], [0, 1, 2, 2, 13, 5]])


def test_tracks_from_masks_bridges_gaps_up_to_max_gap():
    m = np.zeros((9, 20, 30), bool)
    for t in (0, 1, 3, 4, 8):  # gone on frame 2 (occluded), then on frames 5-7 (longer than max_gap)
        m[t, 5:9, 2 + 2 * t : 6 + 2 * t] = True
    np.testing.assert_array_equal(tracks_from_masks(m)[:, 0], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(tracks_from_masks(m, max_gap=0)[:, 0], [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(tracks_from_masks(m)[2], [0, 3, 8, 5, 11, 8])
