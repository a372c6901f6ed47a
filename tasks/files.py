"""Files written whole or not at all (records, checkpoints and data caches), and files of a run
folder opened only if they are what they claim to be.

A run folder may be shared, or prepared by someone else: a symbolic link planted as ``.lock``
would have the lock truncate the file it points to, and a FIFO as ``record.json`` would hang the
run forever. The run's own files are therefore opened with ``O_NOFOLLOW`` (a link is refused,
never followed) and ``O_NONBLOCK`` (a FIFO opens at once), then checked to be a regular file
before a byte is read or written; anything else is refused in one line.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from tasks.errors import UserError


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


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def refuse(path: Path, what: str) -> UserError:
    return UserError(f"{path} is {what}, not a regular file of its own; this suite never "
                     "follows or opens such a file in a run folder: remove it and run again")


def check_regular(paths: Iterable[Path], folders: Iterable[Path] = ()) -> None:
    """Refuse, before anything is created, a path that exists and is not a regular file (or, for
    ``folders``, not a real folder); absent paths are fine."""
    for path in folders:
        mode = _lstat_mode(path)
        if mode is not None and not stat.S_ISDIR(mode):
            raise UserError(f"{path} is {_kind(mode) if stat.S_ISLNK(mode) else 'a file'}, not a "
                            "folder; this suite never writes through it: remove it and run again")
    for path in paths:
        mode = _lstat_mode(path)
        if mode is not None and not stat.S_ISREG(mode):
            raise refuse(path, _kind(mode))


def _lstat_mode(path: Path) -> int | None:
    """The mode of ``path`` itself (a link is not followed), or None when it is absent."""
    try:
        return os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None


def open_regular(path: Path, flags: int = os.O_RDONLY, *, single_link: bool = False) -> int:
    """A file descriptor of ``path``, only if it is a regular file: never through a symbolic link
    (``O_NOFOLLOW``), never blocking on a FIFO. ``single_link``: also refuse a file with other
    hard links (for a file that will be truncated). Raises FileNotFoundError when absent."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666 & ~_UMASK)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise refuse(path, "a symbolic link") from None
        if err.errno == errno.EISDIR:
            raise refuse(path, "a folder") from None
        if err.errno == errno.ENXIO:  # a FIFO with no reader, opened for writing
            raise refuse(path, "a FIFO") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or (single_link and info.st_nlink > 1):
        os.close(fd)
        what = _kind(info.st_mode) if not stat.S_ISREG(info.st_mode) else (
            "a hard link to another file")
        raise refuse(path, what)
    os.set_blocking(fd, True)
    return fd


def read_regular(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file (see :func:`open_regular`)."""
    with os.fdopen(open_regular(path), "rb") as f:
        return f.read()
