"""The whole contract between an experiment (a *task*) and the shared runner.

A task owns its data, model(s), loss and evaluation. The runner owns everything else: device,
seeding, optimisers, learning-rate schedules, clipping, the epoch loop, divergence checks,
progress, logging, checkpoints and the result record. The contract has two halves:

1. **Config** (``conf/task/<name>.yaml``, typed by the task's ``Config`` dataclass, an instance
   of which, checked, is what the task's constructor gets). The runner reads the keys of
   :class:`TaskConfig` and nothing else: ``epochs``, ``schedule`` (a pure
   function of the position in training, tasks/runner/schedules.py), ``grad_clip`` (global-norm
   clipping; an optimiser config's own ``grad_clip`` wins when it is set), ``eval_every`` /
   ``eval_at_end`` (when :meth:`Task.evaluate` runs) and ``checkpoint_every_epochs`` (when a
   task's epochs are too short to checkpoint each). Every other key belongs to the task. Values
   are checked against the dataclass (types, ranges, no unknown keys) before anything runs.
2. **Methods** (:class:`Task`): what is trained (:meth:`~Task.modules`), how one item of an
   epoch trains (:meth:`~Task.batches`, :meth:`~Task.train_step`, handing every optimiser step
   to the runner through :class:`Stepper`), how the model is evaluated (:meth:`~Task.evaluate`
   returns a dict holding the headline ``metric``, whose direction is ``goal``), and what a
   checkpoint must hold beyond modules, optimisers and random-number generators
   (:meth:`~Task.state_dict`). Items must be produced in an order fixed by (seed, epoch) so
   that a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import FrozenInstanceError, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional, Protocol

from omegaconf import MISSING

if TYPE_CHECKING:  # the schemas are read before torch is imported (tasks/runner/validation.py)
    import torch
    from torch import nn


class ScheduleKind(enum.Enum):
    constant = "constant"
    warmup_multistep = "warmup_multistep"
    exponential = "exponential"
    step = "step"
    triangular = "triangular"
    linear = "linear"
    warmup_cosine = "warmup_cosine"


class Checked:
    """A config schema whose instances refuse assignments once :func:`seal` has run on them (the
    runner's validation does, after their checks): what was checked is what runs. The dataclasses
    cannot be ``frozen=True``: Hydra would then refuse command-line overrides of their keys."""

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_sealed"):
            raise FrozenInstanceError(f"cannot assign to {name}: a checked config is read-only")
        super().__setattr__(name, value)


def seal(obj: Any) -> Any:
    """Make a checked schema instance, and each one among its fields, read-only; returns it."""
    if isinstance(obj, Checked):
        for f in fields(obj):  # type: ignore[arg-type]
            seal(getattr(obj, f.name))
        object.__setattr__(obj, "_sealed", True)
    return obj


def require(condition: bool, message: str) -> None:
    """A range check of a config value: ``message`` names the key and what it must be."""
    if not condition:
        raise ValueError(message)


def positive(obj: Any, *names: str, allow_none: bool = False) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is None and allow_none:
            continue
        require(value is not None and value > 0, f"task.{name} must be > 0, got {value}")


@dataclass
class Schedule(Checked):
    """The learning-rate schedule: lr = base lr x factor(position); see tasks/runner/schedules.py."""

    kind: ScheduleKind = MISSING
    gamma: Optional[float] = None  # noqa: UP045
    milestones: Optional[list[int]] = None  # noqa: UP045
    warmup_epochs: Optional[int] = None  # noqa: UP045

    def __post_init__(self) -> None:
        needs = {
            ScheduleKind.warmup_multistep: ("warmup_epochs", "gamma", "milestones"),
            ScheduleKind.exponential: ("gamma",),
            ScheduleKind.step: ("gamma", "milestones"),
            ScheduleKind.warmup_cosine: ("warmup_epochs",),
        }.get(self.kind, ())
        missing = [k for k in needs if getattr(self, k) is None]
        require(not missing, f"schedule {self.kind.value!r} needs task.schedule."
                             f"{', task.schedule.'.join(missing)}")
        positive(self, "gamma", "warmup_epochs", allow_none=True)


@dataclass
class TaskConfig(Checked):
    """The keys every task config has, which the runner reads (see the module docstring)."""

    name: str = MISSING
    epochs: int = MISSING  # epochs of the data; for PPO, updates
    schedule: Schedule = MISSING
    eval_every: int = 1
    eval_at_end: bool = True
    grad_clip: Optional[float] = None  # noqa: UP045 - null: none
    checkpoint_every_epochs: Optional[int] = None  # noqa: UP045 - null: the run's checkpoint.every_epochs
    # The task's modules, each with its own optimiser (Task.modules() returns these keys): the
    # roles an optimizer config's ``modules`` may give options to.
    roles: ClassVar[tuple[str, ...]] = ("model",)

    def needs(self) -> tuple[str, ...]:
        """The data items (tasks/experiments/data/prepare.py) this config reads from data_dir."""
        return ()

    def __post_init__(self) -> None:
        positive(self, "epochs", "eval_every")
        positive(self, "checkpoint_every_epochs", allow_none=True)
        require(self.grad_clip is None or self.grad_clip >= 0,
                f"task.grad_clip must be >= 0 or null, got {self.grad_clip}")


@dataclass
class RunContext:
    """What a task may know about the run it is part of."""

    device: torch.device
    data_dir: Path
    run_dir: Path
    seed: int
    download: bool = False  # may a loader fetch missing data (the run's ``download`` key)
    # Mirrors an image file (e.g. a sample grid) to the experiment tracker, when there is one.
    log_image: Callable[[str, Path], None] | None = None


class Stepper(Protocol):
    """The runner's handle for one optimiser step: zero the gradients, backward, clip, step."""

    def __call__(self, loss: torch.Tensor, role: str = "model") -> None: ...


class Task:
    """Base class of every experiment. Subclasses set the class attributes and override methods."""

    # The schema of the task's config: its constructor gets an instance, checked by the runner's
    # validation (tasks/runner/validation.py); subclasses narrow ``cfg`` to it.
    Config: ClassVar[type[TaskConfig]] = TaskConfig
    cfg: TaskConfig
    metric: ClassVar[str]  # the headline metric, a key of evaluate()'s dict
    goal: ClassVar[Literal["min", "max"]]
    # Training metrics kept per step in the record (e.g. per-minibatch accuracy for Fig. 3).
    step_series: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: TaskConfig, ctx: RunContext) -> None:
        self.cfg = cfg
        self.ctx = ctx

    # -- what is trained ------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        """Role -> module; each role gets its own optimiser (one role "model" for most tasks)."""
        raise NotImplementedError

    def param_groups(self, role: str) -> Iterable[Any]:
        """Parameters (or param-group dicts) the optimiser of ``role`` trains."""
        return self.modules()[role].parameters()

    # -- how training goes ----------------------------------------------------------------------
    @property
    def epochs(self) -> int:
        return self.cfg.epochs

    def steps_per_epoch(self) -> int:
        """Number of items ``batches`` yields per epoch (minibatches, or PPO updates)."""
        raise NotImplementedError

    def batches(self, epoch: int, start: int) -> Iterator[Any]:
        """The epoch's items from position ``start`` on, in an order fixed by (seed, epoch).

        Resuming mid-epoch calls this with the number of items already done; the items before
        ``start`` must not be produced (nor their random numbers drawn).
        """
        raise NotImplementedError

    def train_step(self, batch: Any, step: Stepper) -> dict[str, torch.Tensor | float]:
        """Train on one item; must include "loss". Values may stay tensors (no sync here)."""
        raise NotImplementedError

    def evaluate(self, epoch: int) -> dict[str, float]:
        """Evaluation after ``epoch`` (1-based count of finished epochs); includes ``metric``."""
        raise NotImplementedError

    def should_evaluate(self, epoch: int) -> bool:
        last = epoch == self.epochs and self.cfg.eval_at_end
        return epoch % self.cfg.eval_every == 0 or last

    def finish(self) -> dict[str, float]:
        """Metrics computed once at the end of training (e.g. test perplexity of the best model)."""
        return {}

    # -- what a checkpoint needs beyond modules, optimisers and RNG states -----------------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        """Release resources (worker processes, environments)."""
