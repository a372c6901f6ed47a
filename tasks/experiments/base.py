"""The contract between a task and the shared runner (see DESIGN.md §3).

A task owns its data, model(s), loss and evaluation. The runner owns everything else: device,
seeding, optimisers and their schedules, the epoch loop, clipping, divergence checks, progress,
logging, checkpoints and the result record. Tasks hand every optimiser step to the runner
through :class:`Stepper`, so clipping, LR schedules and step counting are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import torch
from omegaconf import DictConfig
from torch import nn


@dataclass
class RunContext:
    """What a task may know about the run it is part of."""

    device: torch.device
    data_dir: Path
    run_dir: Path
    scale: str
    seed: int
    cfg: DictConfig  # the whole resolved config, for the rare task that needs more
    # Mirrors an image file (e.g. a sample grid) to the experiment tracker, when there is one.
    log_image: Callable[[str, Path], None] | None = None


class Stepper(Protocol):
    """The runner's handle for one optimiser step: backward, clip, step, zero the gradients."""

    def __call__(self, loss: torch.Tensor, role: str = "model") -> None: ...


class Task:
    """Base class of every experiment. Subclasses set the class attributes and override methods."""

    metric: ClassVar[str]  # the headline metric, a key of evaluate()'s dict
    goal: ClassVar[Literal["min", "max"]]
    # Training metrics kept per step in the record (e.g. per-minibatch accuracy for Fig. 3).
    step_series: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: DictConfig, ctx: RunContext) -> None:
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
        return int(self.cfg.epochs)

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
        every = int(self.cfg.get("eval_every", 1))
        last = epoch == self.epochs and bool(self.cfg.get("eval_at_end", True))
        return epoch % every == 0 or last

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
