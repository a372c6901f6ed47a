"""Result records: one JSON file per run, the suite's source of truth.

A record lives in its run's folder, ``<out_dir>/<sweep>/<scale>/<task>/<optimizer>[/<variant>]/
lr=<lr>/seed=<seed>/record.json``, a function of the run's identity (tasks/runner/identity.py),
so a sweep launched twice finds the runs it already has. It stores the run's whole resolved
config, from which the fingerprint that decides whether it may be reused is recomputed.
Records are written atomically (temporary file, fsync, rename): a reader never sees half a record.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tasks.errors import UserError
from tasks.files import read_regular, write_atomically

SCHEMA = 1
RECORD = "record.json"
STATUSES = ("ok", "diverged", "failed")


class Unreadable(Exception):
    """A record file that exists but is not a record (damaged, hand-edited, another format)."""


def write(path: Path, record: Mapping[str, Any]) -> None:
    if record.get("status") not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
    text = json.dumps(record, indent=1, allow_nan=False, default=_jsonable) + "\n"
    try:
        write_atomically(path, lambda f: f.write(text.encode()))
    except OSError as err:
        from .checkpoints import disk_error

        raise disk_error(path, err) from None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read(path: Path) -> dict[str, Any] | None:
    """The record at ``path``; None if there is none; :class:`Unreadable` if it is not a record."""
    if not os.path.lexists(path):
        return None
    try:
        record = json.loads(read_regular(path).decode("utf-8"))
    except UserError as err:  # a link, a FIFO, a device: never followed or opened
        raise Unreadable(str(err)) from None
    except (OSError, ValueError, RecursionError) as err:  # random bytes, broken JSON
        why = "nested too deeply" if isinstance(err, RecursionError) else (
            getattr(err, "strerror", None) or type(err).__name__)
        raise Unreadable(f"{path} is not a readable record ({why})") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise Unreadable(f"{path} is not a record of this suite (no schema {SCHEMA})")
    return record


def find(root: str | Path, problems: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every record below ``root``, each with its path under ``"_path"``. Unreadable ones are
    skipped; each adds one line to ``problems`` when a list is given."""
    for path in sorted(Path(root).rglob(RECORD)):
        try:
            record = read(path)
        except Unreadable as err:
            if problems is not None:
                problems.append(str(err))
            continue
        if record is not None:
            record["_path"] = str(path)
            yield record


def finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if x == x and x not in (float("inf"), float("-inf")) else None


# -- provenance ---------------------------------------------------------------------------------
def git_state(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def versions() -> dict[str, str | None]:
    import torch

    import nero

    out: dict[str, str | None] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "nero": nero.__version__,
    }
    for name in ("torchvision", "hydra", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def hardware(device: Any) -> str:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({os.cpu_count()} cores)"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
