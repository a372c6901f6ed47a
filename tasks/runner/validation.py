"""Every value of a run's config is checked before anything runs, and wrong ones get one line.

Three layers, each with Hydra's own mechanism where it fits:

- **types and choices** at composition: ``conf/config.yaml`` starts from :class:`RunConfig` and
  each task config from its schema (tasks/experiments/configs.py), so Hydra converts values and
  refuses ``seed=abc``, ``precision=fp8`` or ``task.batch_size=2.5`` while composing;
- **ranges and unknown keys** in :func:`validate`: the composed values are merged into fresh
  schemas, which refuses keys a schema does not know (``+task.epoch=5``), and instantiated, which
  runs their range checks (``task.epochs=0``, ``log_every=0``);
- **optimiser options** against the optimiser class itself (tasks/runner/optimizers.py) and the
  identity's own checks (seed range, lr, plain folder names: tasks/runner/identity.py).

What passed the checks is what runs: :func:`validate` returns a :class:`RunSpec`, which holds the
instantiated, checked dataclasses, and the runner and the tasks read nothing else.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from tasks import experiments
from tasks.errors import UserError
from tasks.experiments import SCHEMAS
from tasks.experiments.base import Checked, TaskConfig, require, seal

from . import identity

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class Precision(enum.Enum):
    fp32 = "fp32"  # the paper: IEEE float32, TF32 off (tasks/runner/loop.py, set_backends)
    tf32 = "tf32"  # float32 with TF32 matmuls and convolutions on GPUs that have it
    bf16 = "bf16"  # autocast; what stays float32 is IEEE


class LoggerName(enum.Enum):
    wandb = "wandb"
    none = "none"


class WandbMode(enum.Enum):
    online = "online"
    offline = "offline"
    disabled = "disabled"


@dataclass
class LoggerConfig(Checked):
    name: LoggerName = MISSING
    project: Optional[str] = None  # noqa: UP045
    entity: Optional[str] = None  # noqa: UP045
    mode: Optional[WandbMode] = None  # noqa: UP045 - null: online with credentials, else offline
    init_timeout: int = 60

    def __post_init__(self) -> None:
        require(self.init_timeout > 0, f"logger.init_timeout must be > 0, got {self.init_timeout}")


@dataclass
class CheckpointConfig(Checked):
    every_epochs: Optional[int] = 1  # noqa: UP045
    # also mid-epoch, so a preempted job loses at most this much
    every_minutes: Optional[float] = 10.0  # noqa: UP045
    every_steps: Optional[int] = None  # noqa: UP045
    keep: bool = False  # keep checkpoint.pt after a run that ended ok

    def __post_init__(self) -> None:
        for name in ("every_epochs", "every_minutes", "every_steps"):
            value = getattr(self, name)
            require(value is None or value > 0, f"checkpoint.{name} must be > 0 or null, got {value}")


@dataclass
class ClusterConfig(Checked):
    gpus: int = 1  # per run; DDP runs get one process per GPU (fig9_imagenet sets 4)
    cpus_per_task: int = 8
    mem_gb: int = 32
    timeout_min: int = 240  # a job that reaches it is requeued and resumes from its checkpoint
    partition: Optional[str] = "${oc.env:SLURM_PARTITION,null}"  # noqa: UP045
    account: Optional[str] = "${oc.env:SLURM_ACCOUNT,null}"  # noqa: UP045
    qos: Optional[str] = "${oc.env:SLURM_QOS,null}"  # noqa: UP045

    def __post_init__(self) -> None:
        require(self.gpus >= 0, f"cluster.gpus must be >= 0, got {self.gpus}")
        for name in ("cpus_per_task", "mem_gb", "timeout_min"):
            value = getattr(self, name)
            require(value > 0, f"cluster.{name} must be > 0, got {value}")


@dataclass
class ScaleConfig(Checked):
    name: str = MISSING


@dataclass
class RunConfig(Checked):
    """The run's own keys, each default written here once (conf/config.yaml starts from this
    schema and sets only the config groups); task and optimizer have their own schemas."""

    task: Any = None
    optimizer: Any = None
    scale: ScaleConfig = MISSING
    logger: LoggerConfig = MISSING
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    data_dir: str = "${oc.env:NERO_DATA,data}"
    # May a run fetch missing data itself? Prepare it first: make data TASKS=...
    download: bool = False
    out_dir: str = "${oc.env:NERO_OUT,outputs}"
    sweep: str = "adhoc"  # part of every run's identity; experiments name their own
    force: bool = False  # rerun a cell from scratch, even if its record already says ok
    wait: bool = False  # a cell another process is training: wait for it (true) or refuse
    threads: Optional[int] = None  # noqa: UP045 - torch CPU threads (null: torch's default)
    # auto: deterministic kernels on the CPU, cuDNN autotuning on GPUs
    deterministic: Any = "auto"
    # fp32 (the paper: IEEE, TF32 off) | tf32 (TF32 on GPUs) | bf16 (autocast)
    precision: Precision = Precision.fp32
    compile: bool = False  # torch.compile the model(s); the paper ran eager fp32
    progress: bool = True
    log_every: int = 50  # steps between progress/W&B updates (each one syncs the device)
    check_every: int = 20  # steps between divergence checks on accelerators (every step on CPU)
    # Per-layer neuron norms, means and angles each epoch (tasks/runner/diagnostics.py): into
    # the record, W&B and diagnostics.png; not part of the identity.
    diagnostics: bool = False
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    # What each SLURM job asks for (hydra/launcher=slurm); not part of a run's identity.
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def __post_init__(self) -> None:
        require(bool(_DEVICE.match(self.device)),
                f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        require(self.deterministic in ("auto", True, False),
                f"deterministic must be auto, true or false, got {self.deterministic!r}")
        require(self.threads is None or self.threads > 0, f"threads must be > 0, got {self.threads}")
        require(self.log_every > 0, f"log_every must be > 0, got {self.log_every}")
        require(self.check_every > 0, f"check_every must be > 0, got {self.check_every}")
        for name in ("out_dir", "data_dir"):  # '' would be the current folder
            require(bool(str(getattr(self, name)).strip()),
                    f"{name} must name a folder, got {getattr(self, name)!r}")


@cache
def register_schemas() -> None:
    """The run's schema and every task's in Hydra's config store, where conf/config.yaml and
    conf/task/*.yaml start from them: the Hydra app (cli.py) calls it once, before composing."""
    ConfigStore.instance().store(name="run_schema", node=RunConfig)
    experiments.register_schemas()


def _instantiate(schema: type, values: dict[str, Any], where: str) -> Any:
    """Merge ``values`` into a fresh ``schema`` and build it (unknown keys, types, ranges); the
    instance is sealed read-only."""
    try:
        return seal(OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values)))
    except ConfigKeyError as err:
        known = ", ".join(f.name for f in _fields(schema))
        key = f"{where}{err.full_key}" if err.full_key else where.rstrip(".")
        raise UserError(f"unknown config key {key} (known keys here: {known})") from None
    except MissingMandatoryValue as err:
        raise UserError(f"{where}{err.full_key} has no value; set it in the config or on the "
                        "command line") from None
    except OmegaConfBaseException as err:
        raise UserError(f"{where}{err.full_key}: {str(err).splitlines()[0]}") from None
    except ValueError as err:  # a range check of a schema's __post_init__
        raise UserError(str(err)) from None


def _fields(schema: type) -> list[Any]:
    from dataclasses import fields

    return list(fields(schema))


@dataclass(frozen=True)
class RunSpec:
    """One run, as validated: what the runner and the task read, and nothing else."""

    run: RunConfig  # the run's own keys (the ``task`` and ``optimizer`` fields stay None)
    task: TaskConfig  # the task's config, as its schema (the task's ``Config``)
    # The optimiser config, checked against its class (tasks/runner/optimizers.py), which is
    # its schema: any torch.optim.Optimizer, with the runner's keys beside the class's options.
    optimizer: Mapping[str, Any]
    identity: identity.Identity
    optimizer_family: str  # the optimizer_family group's choice ("none" outside a family)
    config: Mapping[str, Any]  # the whole resolved config, as the record stores it

    @property
    def grad_clip(self) -> float | None:
        """Global-norm clipping: the optimizer config's when it is set, else the task's; None or
        0 means none."""
        clip = self.optimizer.get("grad_clip")
        return (self.task.grad_clip if clip is None else clip) or None


def validate(cfg: DictConfig) -> RunSpec:
    """Check a composed config before anything runs; returns the run as checked, typed values."""
    data = identity.plain(cfg)
    check_finite(data)
    run = _instantiate(RunConfig, {k: v for k, v in data.items() if k not in ("task", "optimizer")},
                       "")
    task = task_config(data)
    optimizer = data.get("optimizer") or {}
    check_roles(optimizer, task)
    ident = identity.of(cfg)  # the lr, seed and names
    # Imported here: a config refused above is reported without torch's seconds of import.
    from .optimizers import check_options

    check_options(optimizer)
    return RunSpec(run=run, task=task, optimizer=optimizer, identity=ident,
                   optimizer_family=identity.choices_of(cfg).get("optimizer_family", "none"),
                   config=data)


def check_finite(node: Any, where: str = "") -> None:
    """No value is inf or nan: no range check would catch it, and a record cannot store it."""
    if isinstance(node, dict):
        for key, value in node.items():
            check_finite(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_finite(value, f"{where}[{i}]")
    elif isinstance(node, float) and not math.isfinite(node):
        raise UserError(f"{where} must be a finite number, got {node}")


def check_roles(optimizer: dict[str, Any], task: TaskConfig) -> None:
    """Per-role optimiser options name roles the task has (a misspelt one would go unused)."""
    modules = optimizer.get("modules") or {}
    unknown = sorted(set(modules) - set(task.roles)) if isinstance(modules, dict) else []
    if unknown:
        raise UserError(f"optimizer.modules names {', '.join(unknown)}, which task {task.name} "
                        f"does not have; its roles are {', '.join(task.roles)}")


def task_config(cfg: DictConfig | Mapping[str, Any]) -> TaskConfig:
    """The task's config as its schema's dataclass (with its checks run)."""
    task = identity.plain(cfg).get("task") or {}
    schema = SCHEMAS.get(str(task.get("name")))
    if schema is None:
        raise UserError(f"unknown task {task.get('name')!r}: choose one of {', '.join(sorted(SCHEMAS))}")
    return _instantiate(schema, task, "task.")
