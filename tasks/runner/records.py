"""Result records: one JSON file per run, the suite's source of truth (DESIGN.md §5).

A record lives at ``<out_dir>/<sweep>/<scale>/<task>/<optimizer id>/lr=<lr>/seed=<seed>/record.json``,
a function of the run's identity alone, so a sweep launched twice finds the runs it already has.
Records are written atomically (temporary file, fsync, rename): a reader never sees half a record.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

SCHEMA = 1
RECORD = "record.json"
STATUSES = ("ok", "diverged", "failed")


def format_lr(lr: float) -> str:
    """Canonical text of a learning rate in paths and tables: 0.0001, 0.01, 1."""
    return f"{float(lr):g}"


def run_dir(out_dir: str | Path, identity: Mapping[str, Any]) -> Path:
    return (
        Path(out_dir)
        / str(identity["sweep"])
        / str(identity["scale"])
        / str(identity["task"])
        / str(identity["optimizer"])
        / f"lr={format_lr(identity['lr'])}"
        / f"seed={int(identity['seed'])}"
    )


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(path: Path, record: Mapping[str, Any]) -> None:
    if record.get("status") not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
    write_atomic(path, json.dumps(record, indent=1, allow_nan=False, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, or None if there is none or it cannot be parsed."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("schema") == SCHEMA else None


def find(root: str | Path) -> Iterator[dict[str, Any]]:
    """Every readable record below ``root``, each with its path under ``"_path"``."""
    for path in sorted(Path(root).rglob(RECORD)):
        record = read(path)
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
