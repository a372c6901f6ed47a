"""Run the sweeps behind the paper's artefacts, then write the artefacts from their records.

    python scripts/reproduce.py --out results/paper-run                       # Table 1, here
    python scripts/reproduce.py --out results/x --launcher slurm --artefacts all  # a cluster
    python scripts/reproduce.py --out results/demo --scale smoke --demo --artefacts all

Each sweep is ``python scripts/train.py -m +experiment=<sweep> ...`` with the grid sweeper (the
lr grid at seed 0, then seeds at each optimiser's best lr). On SLURM every sweep is launched at
once, so that all stage-1 jobs queue together and each sweep's stage 2 follows its own stage 1
as soon as it ends (``--parallel`` sets how many sweeps run at a time; here, one). Cells whose
record already says ok are skipped, so an interrupted reproduction picks up where it stopped;
every sweep checks its cells and data before it starts one. ``--demo`` shrinks the lr grids so
that every artefact's pipeline runs in minutes at smoke scale. Extra Hydra overrides after ``--``
go to every sweep (e.g. ``-- cluster.partition=gpu``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
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
DEMO_GRIDS = {"table1": "0.001,0.01,0.1", "fig1_constraints": "0.01,0.04",
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="where records and artefacts go")
    parser.add_argument("--scale", default="paper", choices=["paper", "smoke"])
    parser.add_argument("--artefacts", default="table1",
                        help=f"comma-separated, among {', '.join(SWEEPS)}; or all")
    parser.add_argument("--tasks", default=",".join(TABLE1_TASKS), help="Table 1 rows to run")
    parser.add_argument("--launcher", default="local", choices=["local", "slurm", "basic"],
                        help="local: a few cells at a time here (NERO_JOBS); slurm: submitit "
                             "job arrays; basic: one at a time")
    parser.add_argument("--logger", default=None, help="wandb (default at paper scale) or none")
    parser.add_argument("--demo", action="store_true", help="small lr grids (with --scale smoke)")
    parser.add_argument("--parallel", type=int, default=None,
                        help="sweeps at a time (default: all of them on SLURM, one here)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every sweep")
    args = parser.parse_args()
    logger = args.logger or ("wandb" if args.scale == "paper" else "none")
    out = Path(args.out).resolve()
    env = dict(os.environ)
    if args.scale == "smoke":  # toy cells: one per core beats more threads per cell
        env.setdefault("NERO_JOBS", str(os.cpu_count() or 1))
    started = time.time()
    sweeps = sweeps_for(args.artefacts, args.tasks.split(","))
    parallel = args.parallel or (len(sweeps) if args.launcher == "slurm" else 1)
    failed = run_sweeps(sweeps, parallel, args, out, logger, env)
    print(f"\n=== artefacts from {out} ({time.time() - started:.0f}s of sweeps)", flush=True)
    code = subprocess.run([sys.executable, str(REPO / "scripts" / "aggregate.py"), str(out)],
                          cwd=REPO).returncode
    if failed:
        print(f"error: the sweeps of {', '.join(failed)} did not finish cleanly; run the same "
              "command again to resume or retry them", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
