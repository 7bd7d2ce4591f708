"""The training frame cache: the same frames as decoding into memory, built once, never half-built."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from helpers import tiny_config
from sdmae.data import ObjectBank, load_dataset
from sdmae.data.records import DatasetError
from sdmae.data.training.frame_cache import MANIFEST, cache_key, open_or_build
from sdmae.train import TrainFrames, TrainSamples

SIZE = (64, 96)


def cache_folders(cache_dir):
    return sorted(p.name for p in cache_dir.iterdir())


def test_cached_frames_and_samples_equal_the_in_memory_ones(tiny_data, tmp_path):
    memory = TrainFrames.from_dataset(tiny_data, "avenue", SIZE, progress=False)
    cached = TrainFrames.from_cache(tiny_data, "avenue", SIZE, tmp_path, progress=False)
    np.testing.assert_array_equal(cached.index, memory.index)
    for a, b in zip(cached.videos, memory.videos):
        np.testing.assert_array_equal(a[np.arange(len(b))], b)
        np.testing.assert_array_equal(a[np.array([0, 5, 5, len(b) - 1])], b[[0, 5, 5, len(b) - 1]])
    cfg = tiny_config()
    bank = ObjectBank.builtin()
    for i in (0, 17, len(memory) - 1):
        want = TrainSamples(memory, cfg, bank)[i]
        got = TrainSamples(cached, cfg, bank)[i]
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, msg=key)


def test_a_second_open_reuses_the_cache_and_a_changed_source_file_gets_a_new_one(tiny_data, tmp_path):
    TrainFrames.from_cache(tiny_data, "avenue", SIZE, tmp_path, progress=False)
    (folder,) = tmp_path.iterdir()
    built_at = (folder / MANIFEST).stat().st_mtime_ns
    TrainFrames.from_cache(tiny_data, "avenue", SIZE, tmp_path, progress=False)
    assert cache_folders(tmp_path) == [folder.name]
    assert (folder / MANIFEST).stat().st_mtime_ns == built_at
    TrainFrames.from_cache(tiny_data, "avenue", (32, 48), tmp_path, progress=False)  # another size
    assert len(cache_folders(tmp_path)) == 2
    source = load_dataset(tiny_data, "avenue", split="train")[0].source
    records = load_dataset(tiny_data, "avenue", split="train")
    before = cache_key(tiny_data, records, SIZE)
    stat = os.stat(source)
    try:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert cache_key(tiny_data, load_dataset(tiny_data, "avenue", split="train"), SIZE) != before
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_training_on_labelled_videos_keeps_only_normal_runs_in_the_cache_too(tmp_path):
    from sdmae.data import make_dataset

    root = make_dataset(tmp_path / "ub", layout="ubnormal", seed=2, num_train=2, num_test=1, num_frames=40)
    memory = TrainFrames.from_dataset(root, "ubnormal", SIZE, progress=False)
    cached = TrainFrames.from_cache(root, "ubnormal", SIZE, tmp_path / "cache", progress=False)
    assert [len(v) for v in cached.videos] == [len(v) for v in memory.videos]
    for a, b in zip(cached.videos, memory.videos):
        np.testing.assert_array_equal(a[np.arange(len(b))], b)


def test_reads_out_of_range_and_from_a_truncated_file_are_clear_errors(tiny_data, tmp_path):
    video = TrainFrames.from_cache(tiny_data, "avenue", SIZE, tmp_path, progress=False).videos[0]
    with pytest.raises(IndexError, match="out of range"):
        video[np.array([len(video)])]
    with open(video.path, "r+b") as f:
        f.truncate(video.offset + 3 * video.height * video.width * 3)
    with pytest.raises(DatasetError, match="truncated"):
        video[np.array([5])]


def test_a_waiting_rank_opens_the_cache_once_the_builder_has_finished(tiny_data, tmp_path):
    records = load_dataset(tiny_data, "avenue", split="train")
    got = {}
    waiter = threading.Thread(target=lambda: got.setdefault(
        "cache", open_or_build(tiny_data, records, SIZE, tmp_path, build=False, poll_seconds=0.05)))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()  # nothing to open yet: it waits, it does not build
    assert not any(tmp_path.iterdir())
    open_or_build(tiny_data, records, SIZE, tmp_path, progress=False)
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert len(got["cache"].videos) == len(records)


KILL_AFTER_FIRST_CHUNK = """
import os, signal, sys
from sdmae.data.training import frame_cache
from sdmae.train import TrainFrames

append = frame_cache._NpyFrameWriter.append
def append_then_die(self, chunk):
    append(self, chunk)
    os.kill(os.getpid(), signal.SIGKILL)
frame_cache._NpyFrameWriter.append = append_then_die
TrainFrames.from_cache(sys.argv[1], "avenue", (64, 96), sys.argv[2], progress=False)
"""


def test_a_build_killed_midway_leaves_no_cache_that_looks_complete(tiny_data, tmp_path):
    cache = tmp_path / "cache"
    done = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_CHUNK, str(tiny_data), str(cache)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    (leftover,) = cache.iterdir()
    assert leftover.name.startswith(".") and ".building-" in leftover.name
    assert not list(cache.glob(f"*/{MANIFEST}"))
    # the next run removes the dead build's folder and builds the whole cache
    cached = TrainFrames.from_cache(tiny_data, "avenue", SIZE, cache, progress=False)
    (folder,) = cache.iterdir()
    assert not folder.name.startswith(".")
    memory = TrainFrames.from_dataset(tiny_data, "avenue", SIZE, progress=False)
    for a, b in zip(cached.videos, memory.videos):
        np.testing.assert_array_equal(a[np.arange(len(b))], b)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert [v["frames"] for v in manifest["videos"]] == [len(v) for v in memory.videos]


def test_the_cli_trains_from_the_cache_dir_it_is_given(tiny_data, tmp_path):
    from sdmae.cli import main

    assert main(["train", "--data", str(tiny_data), "--layout", "avenue", "--out", str(tmp_path / "run"),
                 "--preset", "tiny", "--input-size", "64x96", "--epochs", "1", "--student-epochs", "0",
                 "--batch-size", "16", "--cache-dir", str(tmp_path / "frames")]) == 0
    (folder,) = (tmp_path / "frames").iterdir()
    assert (folder / MANIFEST).exists()
    assert (tmp_path / "run" / "student.pt").exists()
