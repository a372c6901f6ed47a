"""Helpers the tests share: config composition, in-process runs, subprocess runs of the CLI,
killed-and-resumed runs. Fixtures and the collection hook stay in ``tests/conftest.py``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tasks.runner import records
from tasks.runner.records import Record

REPO = Path(__file__).resolve().parents[2]

# The one skip condition of the tests marked gpu (``make gpu-check`` runs them on a GPU).
HAS_CUDA = torch.cuda.is_available()


def devices() -> list:
    """Parameters of a test that runs on the CPU in every suite and on CUDA where there is one."""
    return ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def compose(*overrides: str):
    from tasks.runner.cli import compose as compose_config

    return compose_config(*overrides)


def run_cell(tmp_path: Path, *overrides: str) -> Record:
    from tasks.runner.loop import run

    cfg = compose("logger=none", "progress=false", f"out_dir={tmp_path}",
                  f"data_dir={tmp_path / 'data'}", *overrides)
    return run(cfg)


def train_cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO, env=full_env)


def strip_times(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "time_s"} for e in history]


def assert_resumed_as_uninterrupted(a: Record, b: Record, stderr: str) -> None:
    """``b`` (killed, then resumed) says it resumed and ends with ``a``'s (uninterrupted)
    history, final and best values and step count."""
    assert "resuming" in stderr
    assert strip_times(a.history) == strip_times(b.history)
    assert (a.final, a.best, a.steps) == (b.final, b.best, b.steps)


def killed_and_resumed(tmp_path: Path, args: list[str], delay: float = 0.1
                       ) -> tuple[Record, Record, str]:
    """Run the CLI to the end; run it again, SIGKILL it ``delay`` seconds after it has written
    its first checkpoint, and relaunch it. The run must last well beyond that moment.
    Returns (uninterrupted record, resumed record, the relaunch's stderr)."""
    reference = train_cli(*args, f"out_dir={tmp_path / 'ref'}")
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "killed"
    log = tmp_path / "killed.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "train.py"), *args,
                                 f"out_dir={out}"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.time() + 120
        while not first(out, "checkpoint.pt") and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ckpt = first(out, "checkpoint.pt")
    assert ckpt, f"the run ended before it could be killed:\n{log.read_text()[-3000:]}"
    resumed = train_cli(*args, f"out_dir={out}")
    assert resumed.returncode == 0, resumed.stderr
    a = records.read(first(tmp_path / "ref", "record.json"))
    b = records.read(ckpt.parent / "record.json")
    return a, b, resumed.stderr


def first(root: Path, name: str) -> Path | None:
    """The one file called ``name`` below ``root`` (None while there is none)."""
    found = sorted(root.rglob(name)) if root.exists() else []
    assert len(found) <= 1, found
    return found[0] if found else None


def count_params(model) -> tuple[int, int]:
    """(number of parameter tensors, number of parameters), the counts docs/experiments.md lists."""
    params = list(model.parameters())
    return len(params), sum(p.numel() for p in params)
