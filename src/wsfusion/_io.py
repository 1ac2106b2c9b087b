"""Atomic file writes, shared by checkpoints, run caches and the data cache."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None], mode: int = 0o644) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file beside it, then ``os.replace``.

    A reader, or a process killed mid-write, sees the old file or the new one,
    never half of one; a write that raises leaves no temporary file behind.
    The file gets permissions ``mode`` (``mkstemp`` would leave 0600, and
    caches and checkpoints are meant to be shared).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write` of a UTF-8 text (result files: a reader never sees half of one)."""
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))
