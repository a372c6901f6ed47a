"""How long the Table 1 sweeps take one after another, and all at once, on a launcher.

    python scripts/bench_sweeps.py --launcher slurm -- cluster.gpus=0 cluster.cpus_per_task=1

Runs each of the given Table 1 sweeps alone (smoke scale, a fresh folder each), then all of them
at once into another fresh folder, as `scripts/reproduce.py` does on SLURM.
Prints each sweep's time alone, their sum, the longest, and the time of all at once with its
ratio to the longest (1.0 would be a cluster with room for every job at once).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from tasks.analysis.published import TABLE1_TASKS
from tasks.runner.sweeps import run_sweeps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launcher", default="slurm", choices=["slurm", "local"])
    parser.add_argument("--tasks", default=",".join(TABLE1_TASKS))
    parser.add_argument("--lrs", default="0.001,0.01,0.1", help="the lr grid of stage 1")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every sweep")
    args = parser.parse_args()
    sweep_args = argparse.Namespace(scale="smoke", launcher=args.launcher, demo=False,
                                    overrides=[f"optimizer.lr={args.lrs}", *args.overrides])
    env = {**os.environ, "WANDB_MODE": "disabled"}
    sweeps = [("table1", t) for t in args.tasks.split(",")]
    alone = {}
    with tempfile.TemporaryDirectory() as tmp:
        for sweep in sweeps:
            t0 = time.monotonic()
            failed = run_sweeps([sweep], 1, sweep_args, Path(tmp) / sweep[1], "none", env)
            alone[sweep[1]] = time.monotonic() - t0
            assert not failed, failed
        t0 = time.monotonic()
        failed = run_sweeps(sweeps, len(sweeps), sweep_args, Path(tmp) / "together", "none", env)
        together = time.monotonic() - t0
        assert not failed, failed
    print(f"\nsweep (smoke scale, lr grid {args.lrs})        seconds alone")
    for task, seconds in alone.items():
        print(f"  table1 {task:<36}{seconds:8.1f}")
    longest = max(alone.values())
    print(f"  one after another (sum)              {sum(alone.values()):8.1f}")
    print(f"  the longest alone                    {longest:8.1f}")
    print(f"  all {len(sweeps)} at once                        {together:8.1f}  "
          f"({together / longest:.2f} x the longest, {together / sum(alone.values()):.2f} x the sum)")


if __name__ == "__main__":
    main()
