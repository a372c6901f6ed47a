"""Benchmark an optimiser on every Table 1 task with the paper's protocol, beside Nero.

    python scripts/benchmark_optimizer.py --optimizer lion --out results/lion
    python scripts/benchmark_optimizer.py --optimizer myopt --config-dir ~/my_configs \\
        --out results/myopt --launcher slurm
    python scripts/benchmark_optimizer.py --optimizer adamw --out /tmp/x --scale smoke --demo

``--optimizer`` names an optimiser config: one of conf/optimizer/, or ``<name>.yaml`` in
``--config-dir``/optimizer/ (a file holding ``_target_``, ``lr`` and the class's own arguments;
its package must be importable). For each task the new optimiser and Nero each get the lr grid at
seed 0 and seeds 1-2 at their best lr (records already there are reused), then Table 1 and the
Table 1 figures are written with both beside the paper's four, the new column marked †.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tasks.analysis.cli import write_artefacts
from tasks.analysis.published import TABLE1_TASKS
from tasks.analysis.tables import TABLE1_OPTIMIZERS
from tasks.runner.sweeps import run_sweeps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--optimizer", required=True, help="the optimiser config's name")
    parser.add_argument("--config-dir", help="a folder with optimizer/<name>.yaml in it")
    parser.add_argument("--out", required=True, help="where records and artefacts go")
    parser.add_argument("--scale", default="paper", choices=["paper", "smoke"])
    parser.add_argument("--tasks", default=",".join(TABLE1_TASKS))
    parser.add_argument("--launcher", default="local", choices=["local", "slurm", "basic"])
    parser.add_argument("--logger", default=None, help="wandb (default at paper scale) or none")
    parser.add_argument("--demo", action="store_true", help="a short lr grid (with --scale smoke)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every sweep")
    args = parser.parse_args(argv)
    extra = [f"optimizer=nero,{args.optimizer}"]
    if args.config_dir:
        extra.append(f"hydra.searchpath=[file://{Path(args.config_dir).resolve()}]")
    sweep_args = argparse.Namespace(scale=args.scale, launcher=args.launcher, demo=args.demo,
                                    overrides=[*extra, *args.overrides])
    logger = args.logger or ("wandb" if args.scale == "paper" else "none")
    env = dict(os.environ)
    if args.scale == "smoke":
        env.setdefault("NERO_JOBS", str(os.cpu_count() or 1))
    out = Path(args.out).resolve()
    sweeps = [("table1", t) for t in args.tasks.split(",")]
    started = time.time()
    parallel = len(sweeps) if args.launcher == "slurm" else 1
    failed = run_sweeps(sweeps, parallel, sweep_args, out, logger, env)
    optimizers = ",".join(dict.fromkeys([*TABLE1_OPTIMIZERS, args.optimizer]))
    return write_artefacts(out, failed, started, "--optimizers", optimizers, "--only",
                           "table1,fig4,fig5,fig6,fig7,fig8,lr_sensitivity,profile")


if __name__ == "__main__":
    sys.exit(main())
