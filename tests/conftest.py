"""Shared fixtures: a small synthetic dataset and a tiny run trained on it once per session."""

import os

import pytest
import torch
from helpers import tiny_config

torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def frame_cache_dir(tmp_path_factory):
    """Training frame caches (sdmae.data.training.frame_cache) go to a temporary folder, not the
    user's ~/.cache; subprocesses (the CLI, torchrun) inherit the variable."""
    path = tmp_path_factory.mktemp("frame-cache")
    before = os.environ.get("SDMAE_CACHE_DIR")
    os.environ["SDMAE_CACHE_DIR"] = str(path)
    yield path
    if before is None:
        del os.environ["SDMAE_CACHE_DIR"]
    else:
        os.environ["SDMAE_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """An Avenue-layout synthetic dataset: 2 training and 2 test videos of 48 frames."""
    from sdmae.data import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data") / "avenue", layout="avenue", seed=3, num_train=2,
                        num_test=2, num_frames=48)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_data):
    from sdmae.train import train

    run = tmp_path_factory.mktemp("run") / "run"
    train(tiny_config(), tiny_data, "avenue", run, progress=False)
    return run
