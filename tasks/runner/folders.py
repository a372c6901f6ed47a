"""A run's folder: the files the runner and Hydra keep in it, and the checks made before anything
writes there. Free of torch, so that a sweep's preflight checks every cell's folder, and a bad
command line is refused, before the seconds torch takes to import."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tasks.errors import UserError
from tasks.files import check_regular

from .locks import LOCK
from .records import RECORD

CHECKPOINT = "checkpoint.pt"
FIGURE = "diagnostics.png"  # the per-neuron diagnostics (tasks/runner/diagnostics.py)
# Files Hydra writes into a run folder, which it opens following links (its job log,
# ``<job name>.log``, too: every ``*.log`` there is checked).
HYDRA_FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml")
# Bytes the writability probe writes: a folder with less room than this fails here, before
# Hydra writes its files into it, not in the middle of Hydra's start.
PROBE_BYTES = 1 << 20


def check_run_folder(folder: Path) -> None:
    """Refuse a run folder whose own files (lock, record, checkpoint, Hydra's) are links, FIFOs,
    folders or devices, before Hydra or the runner opens one (tasks/files.py says why)."""
    logs = sorted(folder.glob("*.log")) if folder.is_dir() else []
    check_regular([folder / LOCK, folder / RECORD, folder / CHECKPOINT, folder / FIGURE,
                   *(folder / name for name in HYDRA_FILES), *logs], folders=[folder / ".hydra"])


def check_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A probe of our own: DDP ranks check the same directory at the same moment.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test") as probe:
            probe.write(bytes(PROBE_BYTES))
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        raise UserError(f"cannot write to output directory {path} ({err.strerror}); choose "
                        "another with out_dir=...") from None
