"""Running sweeps of the paper's experiments from Python, some at a time (scripts/reproduce.py,
benchmark_optimizer.py and bench_sweeps.py share it; which sweeps make an artefact is in
tasks/analysis/registry.py)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from .launch import REPO

# --demo: smaller lr grids (and, where an experiment has many cells, fewer of them), so that
# every pipeline runs end to end in minutes
DEMO_GRIDS = {"table1": "0.01,0.1", "fig1_constraints": "0.01,0.04",
              "fig2_granularity": "0.01,0.04", "fig3_deep_mlp": "0.001,0.1",
              "fig8_lamb_beta1": "0.001,0.01", "mnist_lr_transfer": "0.01,0.1"}
DEMO_OVERRIDES = {"mnist_lr_transfer": (  # two widths and two depths, the claim's optimisers
    "optimizer=nero,sgd,adam",
    "hydra.sweeper.cells=[['task.width=16','task.depth=2'],['task.width=32','task.depth=2'],"
    "['task.width=32','task.depth=3']]")}


def command(experiment: str, task: str | None, args: argparse.Namespace, out: Path,
            logger: str) -> list[str]:
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "-m", f"+experiment={experiment}",
           f"scale={args.scale}", f"out_dir={out}", f"hydra/launcher={args.launcher}",
           f"logger={logger}", "progress=false"]
    if task:
        cmd.append(f"task={task}")
    if args.demo and experiment in DEMO_GRIDS:
        cmd.append(f"optimizer.lr={DEMO_GRIDS[experiment]}")
    if args.demo:
        cmd += DEMO_OVERRIDES.get(experiment, ())
    return cmd + list(args.overrides)


def run_sweeps(sweeps: list[tuple[str, str | None]], parallel: int, args: argparse.Namespace,
               out: Path, logger: str, env: dict[str, str]) -> list[str]:
    """Run the sweeps, ``parallel`` at a time; returns those that did not end cleanly."""
    waiting = list(sweeps)
    running: dict[str, subprocess.Popen] = {}
    failed = []
    while waiting or running:
        while waiting and len(running) < parallel:
            experiment, task = waiting.pop(0)
            name = f"{experiment}{f' ({task})' if task else ''}"
            cmd = command(experiment, task, args, out, logger)
            print(f"\n=== {name}: {' '.join(cmd[2:])}", flush=True)
            running[name] = subprocess.Popen(cmd, cwd=REPO, env=env)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                del running[name]
                if proc.returncode != 0:
                    failed.append(name)
        time.sleep(0.5)
    return failed
