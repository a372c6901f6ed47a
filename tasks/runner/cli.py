"""The Hydra entry point behind ``scripts/train.py``: one run, or a sweep with ``-m``.

    python scripts/train.py task=mnist_mlp optimizer=nero optimizer.lr=0.01 seed=0 scale=smoke
    python scripts/train.py -m +experiment=table1/cifar10_vgg11
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from tasks.errors import UserError

from .records import format_lr


def local_jobs() -> int:
    """Cells a local sweep runs at once: $NERO_JOBS, else one per two CPU cores (one on a GPU box,
    where the cells would share the device)."""
    import os

    if os.environ.get("NERO_JOBS"):
        return max(1, int(os.environ["NERO_JOBS"]))
    import torch

    return 1 if torch.cuda.is_available() else max(1, (os.cpu_count() or 2) // 2)


# Used by conf/config.yaml to build run directories that match records.run_dir(), and by
# conf/hydra/launcher/local.yaml.
if not OmegaConf.has_resolver("lr_fmt"):
    OmegaConf.register_new_resolver("lr_fmt", format_lr)
if not OmegaConf.has_resolver("local_jobs"):
    OmegaConf.register_new_resolver("local_jobs", local_jobs)


class CheckOutputDir(Callback):
    """Refuse an unwritable output directory with one line, before Hydra tries to create it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir)

    @staticmethod
    def _check(path: str) -> None:
        from .loop import check_writable

        try:
            check_writable(Path(path))
        except UserError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)


def compose(*overrides: str) -> DictConfig:
    """The config ``scripts/train.py`` would run with these overrides (for scripts and tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def _share_cpus(cfg: DictConfig) -> None:
    """Under a local launcher running n cells at once, give each cell its share of the cores."""
    if cfg.get("threads") or not _multirun():
        return
    n_jobs = HydraConfig.get().launcher.get("n_jobs")
    if n_jobs:
        import os

        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(n_jobs)))


def _multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict[str, Any] | None:
    """Train one cell; returns a summary that the two-stage sweeper reads."""
    from .loop import Interrupted, run

    _share_cpus(cfg)
    try:
        record = run(cfg)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        if _multirun():
            return {"status": "error", "reason": str(err)}
        sys.exit(2)
    except Interrupted as err:
        print(f"interrupted ({err}); run the same command again to resume", file=sys.stderr)
        if _multirun():
            return {"status": "interrupted", "reason": str(err)}
        sys.exit(3)
    summary = {k: record.get(k) for k in ("status", "reason", "task", "optimizer", "lr", "seed",
                                          "metric", "goal", "final", "best", "_path")}
    if record["status"] == "failed" and not _multirun():
        sys.exit(1)
    return summary
