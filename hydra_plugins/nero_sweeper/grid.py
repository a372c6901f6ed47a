"""The suite's Hydra sweeper: a grid of cells, the paper's seed protocol, and a clean stop.

Stage 1 runs every combination of ``cells`` (explicit override lists, e.g. Fig. 9's four
configurations) and ``grid`` (comma-separated values per key, Hydra's sweep syntax), together with
the sweep overrides of the command line (which replace the grid's entry for the same key). With
``seeds`` set, stage 2 re-runs, for each group of stage-1 cells that differ only in lr (and seed),
its best lr with those seeds: the paper's protocol (lr grid at seed 0, then seeds 1 and 2 at the
best lr; the seed-0 run is the third repeat), chosen by the rule the analysis uses
(tasks/runner/protocol.py). Every job returns its record's summary (a cell
whose record already says ok returns it without training), so a relaunched sweep only trains
what is missing. Failed or diverged stage-1 cells never win; a group with no usable cell gets no
stage 2.

At the end the sweep reports every cell that did not finish (failed, refused, crashed) with its
reason, and exits non-zero if there was one; a diverged cell is a finished result. SIGTERM or
SIGINT (Ctrl-C) stops the sweep: running cells write a checkpoint, queued cells do not start,
stage 2 is not launched, and the exit status is 3; the same command resumes.

    python scripts/train.py -m +experiment=table1 task=cifar10_vgg11 [optimizer.lr=0.001,0.01]
"""

import logging
import math
import os
import signal
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List  # noqa: UP035 - OmegaConf reads these types

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from tasks.runner.launch import LAUNCH_ID, SWEEP_PID, stop_file
from tasks.runner.protocol import best_lr, lr_scores

log = logging.getLogger(__name__)

INTERRUPTED_EXIT = 3
FINISHED = ("ok", "diverged")  # a cell with one of these records is a result


@dataclass
class GridSweeperConf:
    _target_: str = "hydra_plugins.nero_sweeper.grid.GridSweeper"
    grid: Dict[str, str] = field(default_factory=dict)  # noqa: UP006
    cells: List[List[str]] = field(default_factory=lambda: [[]])  # noqa: UP006
    seeds: List[int] = field(default_factory=list)  # noqa: UP006
    lr_key: str = "optimizer.lr"
    seed_key: str = "seed"


ConfigStore.instance().store(group="hydra/sweeper", name="grid", node=GridSweeperConf,
                             provider="nero")


def group_key(overrides: list[str], lr_key: str, seed_key: str) -> tuple[str, ...]:
    return tuple(o for o in overrides if not o.startswith((f"{lr_key}=", f"{seed_key}=")))


def best_lrs(jobs: list[list[str]], results: list[dict[str, Any] | None], lr_key: str,
             seed_key: str) -> dict[tuple[str, ...], str]:
    """For each group of stage-1 jobs that differ only in lr (and seed), the best lr override,
    by the analysis's own rule (tasks/runner/protocol.py; a tie goes to the smaller lr).

    ``results`` are the job summaries (status, final, goal) or None for a job that crashed;
    failed, diverged and crashed jobs never win.
    """
    runs: dict[tuple[str, ...], list[tuple[float, int, float]]] = {}
    goals: dict[tuple[str, ...], str] = {}
    overrides_of: dict[tuple[tuple[str, ...], float], str] = {}
    for overrides, result in zip(jobs, results):
        key = group_key(overrides, lr_key, seed_key)
        runs.setdefault(key, [])
        if not result or result.get("status") != "ok" or result.get("final") is None:
            continue
        value = float(result["final"])
        if not math.isfinite(value):
            continue
        lr_override = next(o for o in overrides if o.startswith(f"{lr_key}="))
        lr = float(lr_override.split("=", 1)[1])
        seed = next((int(o.split("=", 1)[1]) for o in overrides if o.startswith(f"{seed_key}=")), 0)
        runs[key].append((lr, seed, value))
        goals.setdefault(key, "min" if result.get("goal") == "min" else "max")
        overrides_of.setdefault((key, lr), lr_override)
    best = {key: best_lr(lr_scores(group), goals.get(key, "max")) for key, group in runs.items()}
    return {key: overrides_of[(key, lr)] for key, lr in best.items() if lr is not None}


def _summary(ret: JobReturn) -> dict[str, Any] | None:
    if ret.status != JobStatus.COMPLETED:
        return {"status": "crashed", "reason": repr(ret._return_value)}
    value = ret.return_value
    return value if isinstance(value, dict) else None


def cell_labels(jobs: list[list[str]]) -> list[str]:
    """Each job's overrides that not every job shares: what tells the cells apart."""
    shared = set.intersection(*(set(j) for j in jobs)) if len(jobs) > 1 else set()
    return [" ".join(o for o in job if o not in shared) or " ".join(job) for job in jobs]


class GridSweeper(Sweeper):
    def __init__(self, grid: dict[str, str], cells: list[list[str]], seeds: list[int],
                 lr_key: str, seed_key: str) -> None:
        super().__init__()
        self.grid = dict(grid or {})
        self.cells = [list(c) for c in (cells or [[]])]
        self.seeds = list(seeds)
        self.lr_key, self.seed_key = lr_key, seed_key
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.stopping = False
        self.launch_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def stop_file(self) -> Path:
        return stop_file(Path(self.config.hydra.sweep.dir), self.launch_id)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def _expand(self, arguments: list[str]) -> list[list[str]]:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        parser = OverridesParser.create()
        given = {o.split("=", 1)[0].lstrip("+~") for o in arguments}
        params = [f"{k}={v}" for k, v in self.grid.items() if k not in given] + list(arguments)
        jobs: dict[tuple[str, ...], None] = {}  # ordered, without repeats
        for cell in self.cells:
            fixed = [o for o in cell if o.split("=", 1)[0].lstrip("+~") not in given]
            for job in BasicSweeper.split_arguments(parser.parse_overrides(params), None)[0]:
                jobs[tuple(fixed + job)] = None
        return [list(job) for job in jobs]

    def _preflight(self, jobs: list[list[str]]) -> None:
        """Every cell's config and the data its task needs, checked before any job is queued
        (stage 2 repeats stage-1 cells with other seeds: nothing new to check)."""
        from tasks.errors import UserError, report
        from tasks.runner import preflight

        loader = self.hydra_context.config_loader
        try:
            preflight.require((loader.load_sweep_config(self.config, job) for job in jobs),
                              cell_labels(jobs))
        except UserError as err:
            print(report(err), file=sys.stderr, flush=True)
            print(f"the sweep was not launched ({len(jobs)} cells); fix the above and run it again",
                  file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    def _launch(self, jobs: list[list[str]], first_index: int) -> list[dict[str, Any] | None]:
        if not jobs or self.stopping:
            return [{"status": "interrupted", "reason": "the sweep was stopped"} for _ in jobs]
        # No validate_batch_is_legal: it composes every cell once more (~0.3 s each), and
        # _preflight has composed and checked each stage-1 cell; a stage-2 cell is one of them
        # with another seed, which its job checks (an error there is that cell's result).
        folder = self.config.hydra.launcher.get("submitit_folder")
        if folder:
            print(f"submitting {len(jobs)} jobs; their logs: {folder}", file=sys.stderr, flush=True)
        try:
            returns = self.launcher.launch(jobs, initial_job_idx=first_index)
        except Exception as err:
            if not folder:
                raise
            # e.g. sbatch refusing a request no node can meet: say so once, queue nothing more
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            why = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
            print(f"error: the scheduler refused the jobs: {why}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        return [_summary(r) for r in returns]

    def _on_signal(self, signum: int, _frame: Any) -> None:
        """Stop: queued cells do not start, running ones see the stop file, checkpoint and end."""
        if not self.stopping:
            self.stopping = True
            self.stop_file().touch()
            print(f"signal {signum}: stopping the sweep; running cells write a checkpoint",
                  file=sys.stderr, flush=True)

    def sweep(self, arguments: list[str]) -> Any:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self._write_config(sweep_dir)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        # Local worker processes leave signals to this process (tasks/runner/cli.py).
        os.environ[SWEEP_PID] = str(os.getpid())
        os.environ[LAUNCH_ID] = self.launch_id
        try:
            stage1 = self._expand(arguments)
            self._preflight(stage1)
            log.info(f"stage 1: {len(stage1)} cells")
            results = self._launch(stage1, 0)
            jobs = list(stage1)
            if self.seeds:
                winners = best_lrs(stage1, results, self.lr_key, self.seed_key)
                for key, lr in winners.items():
                    log.info(f"best {lr} for {' '.join(key) or 'the grid'}")
                for key in dict.fromkeys(group_key(j, self.lr_key, self.seed_key) for j in stage1):
                    if key not in winners:
                        log.warning(f"no usable stage-1 cell for {' '.join(key) or 'the grid'}: "
                                    "no seed repeats")
                stage2 = [list(key) + [lr, f"{self.seed_key}={s}"]
                          for key, lr in winners.items() for s in self.seeds]
                log.info(f"stage 2: {len(stage2)} cells")
                results += self._launch(stage2, len(stage1))
                jobs += stage2
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop_file().unlink(missing_ok=True)
        self._report(jobs, results)
        return results

    def _write_config(self, sweep_dir: Path) -> None:
        """The sweep's config as ``multirun.yaml``, never through a link planted there."""
        from tasks.errors import UserError, report
        from tasks.files import check_regular, write_atomically

        path = sweep_dir / "multirun.yaml"
        try:
            check_regular([path])
        except UserError as err:
            print(report(err), file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        text = OmegaConf.to_yaml(self.config)
        write_atomically(path, lambda f: f.write(text.encode()))

    def _report(self, jobs: list[list[str]], results: list[dict[str, Any] | None]) -> None:
        """One line per cell that did not end ok, then exit non-zero if there was one."""
        results = [r or {"status": "crashed", "reason": "no result"} for r in results]
        counts: dict[str, int] = {}
        for r in results:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        tally = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(f"sweep: {len(jobs)} cells: {tally}", file=sys.stderr, flush=True)
        bad = [(label, r) for label, r in zip(cell_labels(jobs), results)
               if r["status"] not in FINISHED]
        for label, r in bad:
            if r["status"] != "interrupted":
                print(f"  {r['status']}: {label}: {r.get('reason')}", file=sys.stderr)
        if self.stopping or counts.get("interrupted"):
            print("the sweep was interrupted; run the same command again to resume it",
                  file=sys.stderr, flush=True)
            raise SystemExit(INTERRUPTED_EXIT)
        if bad:
            print("run the same command again to retry these cells (finished cells are skipped)",
                  file=sys.stderr, flush=True)
            raise SystemExit(1)
