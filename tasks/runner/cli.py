"""The Hydra entry point behind ``scripts/train.py``: one run, or a sweep with ``-m``.

    python scripts/train.py task=mnist_mlp optimizer=nero optimizer.lr=0.01 seed=0 scale=smoke
    python scripts/train.py -m +experiment=table1 task=cifar10_vgg11
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from tasks.errors import UserError, report

from . import identity, preflight, validation
from .folders import check_writable
from .launch import CONF_DIR, LAUNCH_ID, SWEEP_PID
from .launch import stop_file as stop_of
from .records import Record

validation.register_schemas()  # conf/config.yaml and conf/task/*.yaml start from them


def local_jobs() -> int:
    """Cells a local sweep runs at once: $NERO_JOBS, else one per two CPU cores (one on a GPU box,
    where the cells would share the device)."""
    import os

    if os.environ.get("NERO_JOBS"):
        return max(1, int(os.environ["NERO_JOBS"]))
    import torch

    return 1 if torch.cuda.is_available() else max(1, (os.cpu_count() or 2) // 2)


def run_subdir(*, _root_: DictConfig) -> str:
    """A run's folder below ``<out_dir>/<sweep>``, as the runner computes it (conf/config.yaml
    names Hydra's output folders with it). Never raises: a config with bad values gets a folder
    of invalid jobs, and the job itself then reports what is wrong in one line."""
    try:
        return str(identity.of(_root_).subdir())
    except Exception:
        return f"_invalid/job{_root_.hydra.job.get('num', 0)}"


# Used by conf/config.yaml (run folders) and conf/hydra/launcher/local.yaml (jobs at once).
if not OmegaConf.has_resolver("run_subdir"):
    OmegaConf.register_new_resolver("run_subdir", run_subdir)
if not OmegaConf.has_resolver("nero_gpus"):  # conf/hydra/launcher/slurm.yaml
    OmegaConf.register_new_resolver("nero_gpus", lambda gpus: int(gpus) or None)
    OmegaConf.register_new_resolver("nero_tasks", lambda gpus: max(1, int(gpus)))
if not OmegaConf.has_resolver("local_jobs"):
    OmegaConf.register_new_resolver("local_jobs", local_jobs)


class Preflight(Callback):
    """Checks made before Hydra creates any folder: one line and exit status 2 when one fails."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(lambda: (search_path(config), preflight.require([config])),
                    lambda: config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Each cell's own values are checked by its job; here what every cell shares.
        self._check(lambda: (search_path(config), identity.check_name(config.sweep, "sweep")),
                    lambda: config.hydra.sweep.dir)

    @staticmethod
    def _check(validate: Any, directory: Any) -> None:
        try:
            validate()
            check_writable(Path(directory()))
        except UserError as err:
            print(report(err), file=sys.stderr, flush=True)
            sys.exit(2)


def search_path(config: DictConfig) -> None:
    """Every folder of ``hydra.searchpath`` exists (Hydra only warns, then composes without it:
    a user's optimiser config would silently not be found)."""
    for entry in config.hydra.get("searchpath") or []:
        text = str(entry)
        if text.startswith("file://") and not Path(text[len("file://"):]).is_dir():
            raise UserError(f"hydra.searchpath names {text}, which is not a folder; correct the "
                            "path (file:///absolute/path) or remove it")


def compose(*overrides: str) -> DictConfig:
    """The config ``scripts/train.py`` would run with these overrides (for scripts and tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        # With Hydra's own node: the runner reads the group choices and search path from it.
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=True)


def _share_cpus(threads: int | None) -> None:
    """Under a local launcher running n cells at once, give each cell its share of the cores."""
    if threads or not _multirun():
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


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def _job(cfg: DictConfig) -> dict[str, Any] | None:
    """Train one cell; returns the summary the grid sweeper reads."""
    from .loop import Interrupted, run
    from .validation import validate

    multirun = _multirun()
    launch = os.environ.get(LAUNCH_ID)
    stop_file = stop_of(Path(HydraConfig.get().sweep.dir), launch) if multirun and launch else None
    if stop_file is not None:
        if stop_file.exists():
            return {"status": "interrupted", "reason": "the sweep was stopped before this cell"}
        if os.environ.get(SWEEP_PID, str(os.getpid())) != str(os.getpid()):
            # A local worker process: Ctrl-C or a signal to the process group is the sweep's to
            # handle (it writes the stop file); an idle worker must not die of it.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
    try:
        spec = validate(cfg)
        _share_cpus(spec.run.threads)
        record = run(spec, stop_file=stop_file)
    except UserError as err:
        print(report(err), file=sys.stderr, flush=True)
        if multirun:
            return {"status": "error", "reason": str(err)}
        sys.exit(2)
    except Interrupted as err:
        print(f"interrupted ({err}); run the same command again to resume", file=sys.stderr)
        if os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
            # A SLURM job stopped by a requeue or a cancel: no result, so that the sweep waits
            # for the requeued job (which resumes from the checkpoint) or sees the cancellation.
            sys.exit(3)
        if multirun:
            if stop_file is not None:
                stop_file.touch()  # a signal to one cell stops its whole launch
            return {"status": "interrupted", "reason": str(err)}
        sys.exit(3)
    if record.status == "failed" and not multirun:
        sys.exit(1)
    return sweeper_result(record)


def sweeper_result(record: Record) -> dict[str, Any]:
    """What a cell returns to the grid sweeper (hydra_plugins/nero_sweeper/grid.py): plain values,
    which Hydra's launchers pickle back to it."""
    return {"status": record.status, "reason": record.reason, "task": record.task,
            "optimizer": record.optimizer, "lr": record.lr, "seed": record.seed,
            "metric": record.metric, "goal": record.goal, "final": record.final,
            "best": record.best, "path": record.path}


def main() -> None:
    """``scripts/train.py``: Hydra's app, with config errors (an unknown task, a value of the wrong
    type, a mistyped key) reported in one line instead of Hydra's report."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let them reach us; real bugs keep tracebacks
    import warnings

    # A missing search-path folder: the preflight's one line says so (search_path above).
    warnings.filterwarnings("ignore", message=r"provider=.* is not available")
    import yaml

    try:
        _job()
    except (HydraException, OmegaConfBaseException) as err:
        print(f"error: {one_line(err)}", file=sys.stderr, flush=True)
        sys.exit(2)
    except yaml.YAMLError as err:  # a config file of the user's that is not YAML
        mark = getattr(err, "problem_mark", None)
        where = f"{mark.name}, line {mark.line + 1}" if mark is not None else "a config file"
        print(f"error: {where} is not valid YAML ({getattr(err, 'problem', None) or err}); "
              "correct it", file=sys.stderr, flush=True)
        sys.exit(2)


def one_line(err: BaseException) -> str:
    """A Hydra or OmegaConf error as one line: what is wrong, the key, the choices there are."""
    lines = [line.strip() for line in str(err).splitlines()]
    if err.__cause__ is not None and str(err.__cause__) not in str(err):
        lines += [line.strip() for line in str(err.__cause__).splitlines()]
    text, options = [], []
    for line in lines:
        if not line or line.startswith(("full_key:", "object_type=", "reference_type=",
                                        "Config search path", "provider=", "Set the environment")):
            continue
        if line.startswith("Available options in"):
            options.append("")
            continue
        if options and " " not in line:
            options.append(line)
            continue
        text.append(line)
    choices = [o for o in options if o]
    return "; ".join(text) + (f" (available: {', '.join(choices)})" if choices else "")
