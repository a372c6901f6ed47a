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
from collections.abc import Iterator
from pathlib import Path

from tasks.errors import UserError

LOCK = ".lock"


@contextlib.contextmanager
def cell_lock(folder: Path, wait: bool = False) -> Iterator[None]:
    """Hold the lock of a run folder; a second holder is refused in one line (or waits)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise UserError(f"{folder} is being trained by {holder}; wait for it to finish, or "
                            "add wait=true to wait for it and then use its result") from None
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
