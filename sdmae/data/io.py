"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` on success.

    The temporary file lives in the same directory (so ``os.replace`` is an
    atomic rename on one file system) and keeps the suffix of ``path``, so
    writers that choose a format from the extension (PyAV, ``np.save``,
    ``PIL.Image.save``, ``torch.save``) behave as if writing ``path``. If the
    body raises, the temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or PathLike
        Final destination. Its parent directory must exist.

    Yields
    ------
    tmp : Path
        Where to write.

    Examples
    --------
    >>> with atomic_write("scores.npy") as tmp:      # doctest: +SKIP
    ...     np.save(tmp, scores)
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory does not exist: {path.parent}")
    # Hidden, random name: concurrent writers of the same path do not collide.
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        # Best effort: on a read-only file system the removal fails too, and its
        # error must not hide the one that stopped the write.
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
