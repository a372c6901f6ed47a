"""Checkpoints that are checked before anything in them is used.

A checkpoint file is a header line, the SHA-256 of the rest, then a ``torch.save`` payload that
loads with ``weights_only=True`` (a checkpoint cannot run code). The digest covers every byte of
the payload, so a bad disk, a truncated copy or a stray write is refused with one line instead
of resuming from damaged state. Files are written atomically (temporary file, fsync, rename):
a crash, a full disk or a kill mid-write leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import errno
import hashlib
import io
import random
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from tasks.errors import UserError
from tasks.files import read_regular, write_atomically

MAGIC = b"nero-checkpoint 2 sha256="
TEMP_PREFIX = ".ckpt.tmp"


def rng_state() -> dict[str, Any]:
    """Every random-number generator a run draws from, as tensors and plain numbers only."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": list(random.getstate()[1]) + [random.getstate()[2]],
        "python_version": random.getstate()[0],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((state["python_version"], tuple(py[:-1]), py[-1]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def disk_error(path: Path, err: OSError) -> UserError:
    """One line for a write that failed: the path, the reason, what to do."""
    reason = "no space left on the device" if err.errno == errno.ENOSPC else (
        err.strerror or str(err))
    return UserError(f"cannot write {path}: {reason}; the last good checkpoint (if any) is "
                     "kept: free some space or fix the folder, then run the same command again "
                     "to resume")


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically, with a digest over all of it."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getbuffer()
    header = MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n"

    def write(f: BinaryIO) -> None:
        f.write(header)
        f.write(body)

    try:
        write_atomically(path, write, prefix=TEMP_PREFIX)
    except OSError as err:
        raise disk_error(path, err) from None


def remove_stale_temporaries(folder: Path) -> None:
    """Temporary files of writes that a kill interrupted (only called under the cell's lock)."""
    for stale in folder.glob(f"{TEMP_PREFIX}*"):
        stale.unlink(missing_ok=True)


def load(path: Path, fingerprint: str) -> dict[str, Any]:
    """The payload of a checkpoint written by :func:`save` for the same run configuration.

    A damaged or foreign file is an error that names the file and the way out; it is never
    silently replaced by a fresh start.
    """
    delete = "delete it to start this run from scratch"
    try:
        data = read_regular(path)
    except OSError as err:
        raise UserError(f"checkpoint {path} cannot be read ({err.strerror}); {delete}") from None
    header, _, body = data.partition(b"\n")
    if not header.startswith(MAGIC):
        raise UserError(f"checkpoint {path} is corrupt or not one of this suite's checkpoints "
                        f"(an older version wrote no integrity check); {delete}")
    if hashlib.sha256(body).hexdigest().encode() != header[len(MAGIC):]:
        raise UserError(f"checkpoint {path} is corrupt (its content does not match its "
                        f"checksum: a damaged disk or an incomplete copy); {delete}")
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"checkpoint {path} is corrupt or unreadable ({type(err).__name__}); "
                        f"{delete}") from None
    if not isinstance(payload, dict) or payload.get("fingerprint") != fingerprint:
        raise UserError(f"checkpoint {path} was written by a run with a different configuration; "
                        f"{delete}, or rerun with the configuration that wrote it")
    return payload
