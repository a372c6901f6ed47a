"""Shared test helpers: config composition, in-process runs, subprocess runs of the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"

# Tests never talk to W&B (an API key makes wandb retry the network forever here).
os.environ.pop("WANDB_API_KEY", None)
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("WANDB_SILENT", "true")


def compose(*overrides: str):
    from tasks.cli import compose as compose_config

    return compose_config(*overrides)


def run_cell(tmp_path: Path, *overrides: str) -> dict:
    from tasks.runner import run

    cfg = compose("logger=none", "progress=false", f"out_dir={tmp_path}",
                  f"data_dir={tmp_path / 'data'}", *overrides)
    return run(cfg)


def train_cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO, env=full_env)


@pytest.fixture
def smoke(tmp_path):
    """Run one smoke-scale cell in this process: smoke("task=mnist_mlp", "optimizer=sgd")."""

    def _run(*overrides: str) -> dict:
        return run_cell(tmp_path, "scale=smoke", *overrides)

    return _run


def count_params(model) -> tuple[int, int]:
    """(number of parameter tensors, number of parameters), the counts EXPERIMENTS.md lists."""
    params = list(model.parameters())
    return len(params), sum(p.numel() for p in params)
