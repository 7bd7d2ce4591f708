"""Dataset layouts: benchmarks exactly as distributed, or a folder of your own videos.

:func:`load_dataset` turns a dataset root into a list of
:class:`~sdmae.data.records.VideoRecord`, one per video, with frame labels
read (and checked against the frame count) up front and pixel masks /
ground-truth tracks loaded lazily on request.

One module per layout recognises, reads and writes it (see each module's
docstring for its tree); :data:`LAYOUTS` names them, for ``layout=`` and the
CLI's ``--layout``:

``avenue``        CUHK Avenue
``shanghaitech``  ShanghaiTech Campus
``ped2``/``ped1`` UCSD Pedestrian (module ``ucsd``)
``ubnormal``      UBnormal, with its official splits and object tracks
``folder``        ``train/`` and ``test/`` folders of your own videos
``base``          what a layout is (:class:`~sdmae.data.layouts.base.Layout`), the readers' shared helpers

A layout's module loads on first use, so the CLI lists the names without
loading NumPy.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdmae.data.layouts.base import Layout
    from sdmae.data.records import VideoRecord

__all__ = ["LAYOUTS", "detect_layout", "get_layout", "load_dataset"]

# Name -> (module, its Layout object), in the order detection tries them.
_REGISTRY = {
    "avenue": ("avenue", "AVENUE"),
    "shanghaitech": ("shanghaitech", "SHANGHAITECH"),
    "ped2": ("ucsd", "PED2"),
    "ped1": ("ucsd", "PED1"),
    "ubnormal": ("ubnormal", "UBNORMAL"),
    "folder": ("folder", "FOLDER"),
}
LAYOUTS = tuple(_REGISTRY)
_SPLITS = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "validation": "validation",
    "val": "validation",
}


def get_layout(name: str) -> Layout:
    """The layout registered as ``name``, one of :data:`LAYOUTS`; DatasetError for another."""
    if name not in _REGISTRY:
        from sdmae.data.records import DatasetError

        raise DatasetError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}")
    module, attribute = _REGISTRY[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)


def _detect_here(root: Path) -> str | None:
    return next((name for name in LAYOUTS if get_layout(name).detect(root)), None)


def _wrapped(root: Path) -> Path | None:
    """The one visible folder in ``root``, where archives often unpack ("Avenue Dataset/")."""
    subs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return subs[0] if len(subs) == 1 else None


def _resolve(root: Path) -> tuple[str, Path]:
    from sdmae.data.records import DatasetError

    layout = _detect_here(root)
    if layout is not None:
        return layout, root
    inner = _wrapped(root)
    if inner is not None and (layout := _detect_here(inner)) is not None:
        return layout, inner
    looked_for = ", ".join(dict.fromkeys(get_layout(name).looks_for for name in LAYOUTS))  # ped1/ped2 once
    raise DatasetError(f"cannot tell the dataset layout of {root}; looked for: {looked_for}")


def detect_layout(root: str | os.PathLike) -> str:
    """Name the layout of a dataset tree.

    Parameters
    ----------
    root : str or PathLike

    Returns
    -------
    layout : str
        One of :data:`LAYOUTS`.

    Raises
    ------
    DatasetError
        Nothing matches (the message lists what was looked for), or the tree
        is ambiguous (both UCSD pedestrian sets).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root}")
    return _resolve(root)[0]


def load_dataset(
    root: str | os.PathLike, layout: str | None = None, split: str = "test"
) -> list[VideoRecord]:
    """Read a dataset tree as distributed, without preprocessing.

    Parameters
    ----------
    root : str or PathLike
        Dataset root (see each layout module's docstring); one wrapper
        folder above it is tolerated.
    layout : str, optional
        One of :data:`LAYOUTS`; detected with :func:`detect_layout` when None.
    split : {"train", "test", "validation"}
        ``"validation"`` exists for UBnormal only.

    Returns
    -------
    records : list of VideoRecord
        In the dataset's natural order. Test labels are read and checked
        against frame counts now; masks and tracks load on request.

    Raises
    ------
    FileNotFoundError
        Missing root, split folder, label file or listed video.
    DatasetError
        Unknown layout or split, no videos, or a label count that differs
        from the frame count (the message names the video and both counts).
    """
    from sdmae.data.records import DatasetError

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root}")
    if split not in _SPLITS:
        raise DatasetError(f"unknown split {split!r}; use 'train', 'test' or 'validation'")
    split = _SPLITS[split]
    if layout is None:
        layout, root = _resolve(root)
        chosen = get_layout(layout)
    else:
        chosen = get_layout(layout)
        if chosen.unwrap and _detect_here(root) is None:
            # Tolerate one wrapper folder, as detection does.
            inner = _wrapped(root)
            if inner is not None and _detect_here(inner) == layout:
                root = inner
    if split not in chosen.splits:
        raise DatasetError(f"layout {layout!r} has no {split} split; use 'train' or 'test'")
    records = chosen.read(root, split)
    if not records:
        raise DatasetError(f"{layout}: no {split} videos found in {root}")
    return records
