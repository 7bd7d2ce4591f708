"""Checkpoints: the file format, atomic save, safe load, and the model they hold.

A checkpoint is one ``torch.save`` dict per training stage (``teacher.pt``,
``student.pt``) of tensors and plain values only, so it loads with
``weights_only=True``: ``format`` (:data:`CHECKPOINT_FORMAT`; older formats are
read through :func:`migrate`), ``stage``,
``config`` (``Config.to_dict()``), ``model`` (state dict), ``optimizer``,
``epoch`` (last finished, 0-based) and ``done``. Scoring imports this module,
never :mod:`sdmae.train`.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .config import Config
from .data.io import atomic_write
from .errors import SdmaeError
from .model import SDMAE

CHECKPOINT_FORMAT = "sdmae-checkpoint-v2"
# What each format differs in, read by migrate(): v1 held a version-1 config
# (sdmae.config.migrate brings it up to date); the weights are the same.
READABLE_FORMATS = ("sdmae-checkpoint-v1", CHECKPOINT_FORMAT)


class CheckpointError(SdmaeError):
    """A file that is not a usable sdmae checkpoint (the message names it)."""


def save_checkpoint(path: str | os.PathLike, *, stage: str, cfg: Config, model: SDMAE,
                    optimizer: torch.optim.Optimizer | None, epoch: int, done: bool) -> None:
    """One file per stage, written atomically (temp file + rename)."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "stage": stage,
        "config": cfg.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": int(epoch),
        "done": bool(done),
    }
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, expect_config: Config | None = None) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) and check that it is one.

    Raises CheckpointError naming the file for a missing, truncated or foreign
    file, and for a checkpoint of another preset than ``expect_config``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message would suggest weights_only=False, i.e. running the file's code
        raise CheckpointError(f"{path} is not an sdmae checkpoint and was not loaded: it holds Python objects "
                              "other than tensors and plain values, which a safe load refuses") from None
    except Exception as exc:  # truncated zip, not a torch file...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"{path} is not a readable sdmae checkpoint ({type(exc).__name__}: {reason})") from None
    if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
        raise CheckpointError(f"{path} is not an sdmae checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    try:
        state = migrate(state)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its config cannot be read ({exc})") from None
    if expect_config is not None and state["config"].model != expect_config.model:
        raise CheckpointError(f"{path} holds a model of preset {state['config'].preset!r} "
                              f"({state['config'].model}) that differs from this run's {expect_config.preset!r} "
                              f"({expect_config.model})")
    return state


def migrate(state: dict[str, Any]) -> dict[str, Any]:
    """A loaded checkpoint of any readable format -> the current one, its config a
    :class:`Config` (a v1 checkpoint's config is migrated by :func:`sdmae.config.migrate`)."""
    return {**state, "format": CHECKPOINT_FORMAT, "config": Config.from_dict(state["config"])}


def build_model(cfg: Config) -> SDMAE:
    return SDMAE(cfg.model, generator=torch.Generator().manual_seed(cfg.train.seed))


def load_model(state: dict[str, Any], path: str | os.PathLike = "checkpoint") -> SDMAE:
    """A model with a checkpoint's weights (a key mismatch is a CheckpointError)."""
    model = build_model(state["config"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model of its config ({exc})") from None
    return model
