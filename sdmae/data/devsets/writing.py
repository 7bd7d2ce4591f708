"""Write labelled clips to disk as a dataset tree, atomically and once per parameters.

Both dataset generators (:mod:`sdmae.data.devsets.synthetic` and
:mod:`sdmae.data.devsets.footage`) produce :class:`LabelledClip` lists and hand them
to :func:`write_dataset`, which has the layout's writer (:mod:`sdmae.data.layouts`)
write Avenue, ShanghaiTech, UCSD Ped1/Ped2, UBnormal or plain-folder trees that
:func:`sdmae.data.load_dataset` reads back.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdmae.data.layouts import get_layout

__all__ = ["LabelledClip", "up_to_date", "write_dataset"]


@dataclass
class LabelledClip:
    """One video with pixel-level ground truth."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    ids: np.ndarray  # (T, H, W) uint8: anomaly id per pixel, 0 = normal
    events: list  # dicts: kind, id, start, end (visible frames, inclusive)

    @property
    def labels(self) -> np.ndarray:
        """(T,) uint8: 1 where any pixel is abnormal."""
        return (self.ids.reshape(len(self.ids), -1) > 0).any(axis=1).astype(np.uint8)


def write_dataset(root: str | os.PathLike, layout: str, clips: dict[str, list[LabelledClip]], fps: float,
                  params: dict, marker: str, maker: str) -> Path:
    """Write ``clips`` ({"train": [...], "test": [...], "validation": [...]}) to ``root``.

    The tree is built under a temporary name and renamed, so ``root`` is
    either absent or complete; ``params`` goes into the hidden ``marker``
    file, from which :func:`up_to_date` recognises the output later.
    ``maker`` names the generator in messages.
    """
    root = Path(root)
    ours = (root / marker).is_file()
    if root.exists() and any(root.iterdir()) and not ours:
        raise FileExistsError(f"{root} is not empty and was not written by {maker}")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.{secrets.token_hex(4)}.tmp")
    tmp.mkdir()
    try:
        get_layout(layout).write(tmp, clips, fps)
        (tmp / marker).write_text(json.dumps(params, indent=1))
        if root.exists():
            shutil.rmtree(root) if ours else root.rmdir()
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def up_to_date(root: str | os.PathLike, params: dict, marker: str, maker: str) -> bool:
    """Whether ``root`` already holds the output of ``maker`` for exactly ``params``.

    Raises FileExistsError for a non-empty folder that ``maker`` did not write.
    """
    root = Path(root)
    if not (root.exists() and any(root.iterdir())):
        return False
    if not (root / marker).is_file():
        raise FileExistsError(f"{root} is not empty and was not written by {maker}")
    return json.loads((root / marker).read_text()) == params
