"""Atomic checkpoints that load with ``weights_only=True`` (a checkpoint cannot run code)."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tasks.errors import UserError

FORMAT = 1


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


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically: a crash leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ckpt.tmp")
    os.close(fd)
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path, fingerprint: str) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save` for the same run configuration.

    A file that cannot be read, or that belongs to another configuration, is an error that names
    the file and the way out; it is never silently replaced by a fresh start.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(
            f"checkpoint {path} is corrupt or unreadable ({type(err).__name__}); delete it to "
            "start this run from scratch"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} has an unknown format; delete it to start this run "
                        "from scratch")
    if payload.get("fingerprint") != fingerprint:
        raise UserError(
            f"checkpoint {path} was written by a run with a different configuration; delete it "
            "to start this run from scratch, or rerun with the configuration that wrote it"
        )
    return payload
