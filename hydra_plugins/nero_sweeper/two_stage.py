"""The paper's tuning protocol as a Hydra sweeper (EXPERIMENTS.md §0.3).

Stage 1 runs the grid (every optimiser x learning rate, seed 0). Stage 2 re-runs, for each
optimiser, its best learning rate with the remaining seeds (1 and 2); the seed-0 run of stage 1
is the third repeat. The best learning rate is read from the stage-1 results, which every job
returns (a job whose record already said ok returns that record without training). Failed or
diverged stage-1 cells never win; a group with no usable cell gets no stage 2.

    python scripts/train.py -m +experiment=table1/cifar10_vgg11 [optimizer.lr=0.001,0.01]

Command-line sweeps replace the grid's entry for the same key. Works with any launcher
(local joblib processes, submitit on SLURM); a relaunched sweep only trains missing cells.
"""

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional  # noqa: UP035 - OmegaConf reads these types

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class TwoStageSweeperConf:
    _target_: str = "hydra_plugins.nero_sweeper.two_stage.TwoStageSweeper"
    grid: Dict[str, str] = field(default_factory=dict)  # noqa: UP006
    seeds: List[int] = field(default_factory=lambda: [1, 2])  # noqa: UP006
    lr_key: str = "optimizer.lr"
    seed_key: str = "seed"
    max_batch_size: Optional[int] = None  # noqa: UP045


ConfigStore.instance().store(group="hydra/sweeper", name="two_stage", node=TwoStageSweeperConf,
                             provider="nero")


def best_lrs(jobs: list[list[str]], results: list[dict[str, Any] | None], lr_key: str,
             seed_key: str) -> dict[tuple[str, ...], str]:
    """For each group of stage-1 jobs that differ only in lr (and seed), the best lr override.

    ``results`` are the job summaries (status, final, goal) or None for a job that crashed.
    Ties keep the earlier lr in the grid's order.
    """
    best: dict[tuple[str, ...], tuple[float, str]] = {}
    order: list[tuple[str, ...]] = []
    for overrides, result in zip(jobs, results):
        key = tuple(o for o in overrides if not o.startswith((f"{lr_key}=", f"{seed_key}=")))
        if key not in order:
            order.append(key)
        if not result or result.get("status") != "ok" or result.get("final") is None:
            continue
        value = float(result["final"])
        if not math.isfinite(value):
            continue
        score = value if result.get("goal") == "min" else -value
        lr = next(o for o in overrides if o.startswith(f"{lr_key}="))
        if key not in best or score < best[key][0]:
            best[key] = (score, lr)
    return {key: best[key][1] for key in order if key in best}


def _summary(ret: JobReturn) -> dict[str, Any] | None:
    if ret.status != JobStatus.COMPLETED:
        log.warning(f"job {ret.overrides} failed: {ret._return_value!r}")
        return None
    value = ret.return_value
    return value if isinstance(value, dict) else None


class TwoStageSweeper(Sweeper):
    def __init__(self, grid: dict[str, str], seeds: list[int], lr_key: str, seed_key: str,
                 max_batch_size: int | None = None) -> None:
        super().__init__()
        self.grid = dict(grid or {})
        self.seeds = list(seeds)
        self.lr_key, self.seed_key = lr_key, seed_key
        self.max_batch_size = max_batch_size
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def _expand(self, arguments: list[str]) -> list[list[str]]:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        params = [f"{k}={v}" for k, v in self.grid.items()] + list(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        return BasicSweeper.split_arguments(parser.parse_overrides(params), None)[0]

    def _launch(self, jobs: list[list[str]], first_index: int) -> list[dict[str, Any] | None]:
        out: list[dict[str, Any] | None] = []
        step = self.max_batch_size or len(jobs) or 1
        for i in range(0, len(jobs), step):
            batch = jobs[i:i + step]
            self.validate_batch_is_legal(batch)
            out += [_summary(r) for r in self.launcher.launch(batch, initial_job_idx=first_index + i)]
        return out

    def sweep(self, arguments: list[str]) -> Any:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        stage1 = self._expand(arguments)
        log.info(f"stage 1: {len(stage1)} cells")
        results1 = self._launch(stage1, 0)
        if not self.seeds:
            return results1
        winners = best_lrs(stage1, results1, self.lr_key, self.seed_key)
        stage2 = [list(key) + [lr, f"{self.seed_key}={s}"]
                  for key, lr in winners.items() for s in self.seeds]
        for key, lr in winners.items():
            log.info(f"best {lr} for {' '.join(key) or 'the grid'}")
        missing = {tuple(o for o in job if not o.startswith((f"{self.lr_key}=", f"{self.seed_key}=")))
                   for job in stage1} - set(winners)
        for key in missing:
            log.warning(f"no usable stage-1 cell for {' '.join(key)}: no seed repeats")
        log.info(f"stage 2: {len(stage2)} cells")
        return results1 + self._launch(stage2, len(stage1))
