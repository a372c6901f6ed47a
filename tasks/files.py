"""Files written whole or not at all: records, checkpoints and data caches."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def write_atomically(path: Path, write: Callable[[BinaryIO], object], prefix: str | None = None) -> None:
    """Write ``path`` through ``write(file)``: a temporary file in the same folder, flushed to
    disk, then renamed over ``path``. Readers see the old file or the whole new one; a crash or a
    kill leaves at most a temporary file named ``<prefix>...`` (``.<name>.*.tmp`` by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # as a plain open() would: readable by the group's jobs
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
