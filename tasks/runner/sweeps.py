"""Running sweeps of the paper's experiments from Python: the sweeps behind each artefact and a
runner that launches them some at a time (scripts/reproduce.py, benchmark_optimizer.py and
bench_sweeps.py share it)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TABLE1_TASKS = ["cifar10_cgan", "cifar10_vgg11", "cifar10_resnet18", "wikitext2_transformer",
                "multi30k_transformer", "pong_ppo"]
# artefact -> the sweeps (experiment, task) behind it
SWEEPS: dict[str, list[tuple[str, str | None]]] = {
    "table1": [("table1", t) for t in TABLE1_TASKS],
    "fig1": [("fig1_constraints", None)],
    "fig2": [("fig2_granularity", None)],
    "fig3_left": [("fig3_cwn", None)],
    "fig3_right": [("fig3_deep_mlp", None)],
    "fig8": [("fig8_lamb_beta1", None)],
    "fig9": [("fig9_imagenet", None)],
}
# --demo: smaller lr grids, so that every pipeline runs end to end in minutes
DEMO_GRIDS = {"table1": "0.01,0.1", "fig1_constraints": "0.01,0.04",
              "fig2_granularity": "0.01,0.04", "fig3_deep_mlp": "0.001,0.1",
              "fig8_lamb_beta1": "0.001,0.01"}


def sweeps_for(artefacts: str, tasks: list[str]) -> list[tuple[str, str | None]]:
    names = list(SWEEPS) if artefacts == "all" else artefacts.split(",")
    unknown = [n for n in names if n not in SWEEPS]
    if unknown:
        raise SystemExit(f"error: unknown artefact {', '.join(unknown)}: choose from "
                         f"{', '.join(SWEEPS)} or all")
    out = []
    for name in names:
        out += [(e, t) for e, t in SWEEPS[name] if t is None or t in tasks]
    return list(dict.fromkeys(out))


def command(experiment: str, task: str | None, args: argparse.Namespace, out: Path,
            logger: str) -> list[str]:
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "-m", f"+experiment={experiment}",
           f"scale={args.scale}", f"out_dir={out}", f"hydra/launcher={args.launcher}",
           f"logger={logger}", "progress=false"]
    if task:
        cmd.append(f"task={task}")
    if args.demo and experiment in DEMO_GRIDS:
        cmd.append(f"optimizer.lr={DEMO_GRIDS[experiment]}")
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


def write_artefacts(out: Path, failed: list[str], started: float, *options: str) -> int:
    """After the sweeps: every artefact their records allow, then the exit status (1 when a
    sweep did not finish cleanly: running the same command again resumes or retries it)."""
    from tasks.analysis import cli

    print(f"\n=== artefacts from {out} ({time.time() - started:.0f}s of sweeps)", flush=True)
    code = cli.main([str(out), *options])
    if failed:
        print(f"error: the sweeps of {', '.join(failed)} did not finish cleanly; run the same "
              "command again to resume or retry them", file=sys.stderr)
        return 1
    return code
