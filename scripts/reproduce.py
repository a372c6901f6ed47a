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
import sys
import time
from pathlib import Path

from tasks.analysis.cli import write_artefacts
from tasks.analysis.published import TABLE1_TASKS
from tasks.analysis.registry import ARTEFACTS, sweeps_for
from tasks.runner.sweeps import run_sweeps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="where records and artefacts go")
    parser.add_argument("--scale", default="paper", choices=["paper", "smoke"])
    parser.add_argument("--artefacts", default="table1",
                        help=f"comma-separated, among {', '.join(ARTEFACTS)}; or all")
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
    names = list(ARTEFACTS) if args.artefacts == "all" else args.artefacts.split(",")
    unknown = [n for n in names if n not in ARTEFACTS]
    if unknown:
        raise SystemExit(f"error: unknown artefact {', '.join(unknown)}: choose from "
                         f"{', '.join(ARTEFACTS)} or all")
    sweeps = sweeps_for(names, args.tasks.split(","))
    parallel = args.parallel or (len(sweeps) if args.launcher == "slurm" else 1)
    failed = run_sweeps(sweeps, parallel, args, out, logger, env)
    return write_artefacts(out, failed, started)


if __name__ == "__main__":
    sys.exit(main())
