"""One writer per cell: an advisory lock on a file in the run's folder.

The lock is an ``flock`` held for the whole run, so it belongs to a live process: the kernel
releases it when that process ends, however it ends (SIGKILL included), and the next launch
takes it over. The file also names the holder (host and pid) for the message a second launch
prints. Locks work on local disks and on the network file systems clusters use for home and
scratch folders (NFSv4 and Lustre map ``flock`` to their own locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tasks.errors import UserError
from tasks.files import open_regular

LOCK = ".lock"


class Stopped(Exception):
    """``stopped()`` became true while waiting for the lock."""


@contextlib.contextmanager
def cell_lock(folder: Path, wait: bool = False,
              stopped: Callable[[], bool] | None = None) -> Iterator[None]:
    """Hold the lock of a run folder; a second holder is refused in one line, or waits (until
    ``stopped()``, polled, says otherwise: then :class:`Stopped`)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    # Never through a link or onto another file's hard link: the lock file is truncated below.
    fd = open_regular(path, os.O_RDWR | os.O_CREAT, single_link=True)
    with os.fdopen(fd, "r+") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                if not wait:
                    raise UserError(f"{folder} is being trained by {holder}; wait for it to "
                                    "finish, or add wait=true to wait for it and then use its "
                                    "result") from None
                if stopped is not None and stopped():
                    raise Stopped(f"stopped while waiting for {holder}") from None
                time.sleep(0.5)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)
