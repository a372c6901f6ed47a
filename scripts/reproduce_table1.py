"""Run the six Table 1 sweeps (the paper's protocol), then aggregate them into the table.

    python scripts/reproduce_table1.py --scale paper --out results/paper-run            # this machine
    python scripts/reproduce_table1.py --scale paper --launcher slurm --out results/x   # a cluster
    python scripts/reproduce_table1.py --scale smoke --out results/demo --lrs 0.001,0.01,0.1

Each sweep is ``python scripts/train.py -m +experiment=table1/<task> ...`` (two stages: the lr
grid at seed 0, then seeds 1-2 at each optimiser's best lr). Cells whose record already says ok
are skipped, so an interrupted reproduction picks up where it stopped. Extra Hydra overrides
after ``--`` go to every sweep (e.g. ``-- hydra.launcher.partition=gpu``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TASKS = ["cifar10_cgan", "cifar10_vgg11", "cifar10_resnet18", "wikitext2_transformer",
         "multi30k_transformer", "pong_ppo"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", default="paper", choices=["paper", "smoke"])
    parser.add_argument("--out", required=True, help="where records, tables and figures go")
    parser.add_argument("--launcher", default="local", choices=["local", "slurm", "basic"],
                        help="local: a few cells at a time on this machine (NERO_JOBS); "
                             "slurm: submitit job arrays; basic: one at a time")
    parser.add_argument("--lrs", help="comma-separated lr grid (default: the paper's)")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--logger", default=None, help="wandb (default at paper scale) or none")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every sweep")
    args = parser.parse_args()
    logger = args.logger or ("wandb" if args.scale == "paper" else "none")
    out = Path(args.out).resolve()
    env = dict(os.environ)
    if args.scale == "smoke":  # toy cells: one per core beats more threads per cell
        env.setdefault("NERO_JOBS", str(os.cpu_count() or 1))
    started = time.time()
    failed = []
    for task in args.tasks.split(","):
        cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "-m",
               f"+experiment=table1/{task}", f"scale={args.scale}", f"out_dir={out}",
               f"hydra/launcher={args.launcher}", f"logger={logger}", "progress=false",
               *args.overrides]
        if args.lrs:
            cmd.append(f"optimizer.lr={args.lrs}")
        print(f"\n=== {task}: {' '.join(cmd[1:])}", flush=True)
        if subprocess.run(cmd, cwd=REPO, env=env).returncode != 0:
            failed.append(task)
    print(f"\n=== aggregating {out} ({time.time() - started:.0f}s of sweeps)", flush=True)
    code = subprocess.run([sys.executable, str(REPO / "scripts" / "aggregate.py"), str(out)],
                          cwd=REPO).returncode
    if failed:
        print(f"error: the sweeps of {', '.join(failed)} did not finish; rerun to resume them",
              file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
