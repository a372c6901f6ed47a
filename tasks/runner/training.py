"""The two small types the loop is written with: how a run trains, and where it stands.

:class:`TrainSpec` is everything the loop needs to know about the run, resolved once from the
validated :class:`~tasks.runner.validation.RunSpec` and the task (so no default is repeated in
code). :class:`TrainState`
is everything that changes while training; its ``state_dict`` is what a checkpoint stores.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch

from tasks.experiments.base import Schedule

from . import schedules
from .validation import RunSpec


@dataclass(frozen=True)
class TrainSpec:
    epochs: int
    steps_per_epoch: int
    schedule: Schedule
    # Global-norm clipping: the optimiser config's grad_clip when it is set, else the task's;
    # None or 0 means no clipping.
    grad_clip: float | None
    precision: str  # fp32 | tf32 | bf16 (autocast); the backend flags: loop.set_backends
    compile: bool
    log_every: int  # steps between progress and W&B updates (each one syncs the device)
    check_every: int  # steps between divergence checks (every step on the CPU: no sync cost)
    checkpoint_every_epochs: int | None
    checkpoint_every_steps: int | None
    checkpoint_every_minutes: float | None
    keep_checkpoint: bool
    diagnostics: bool  # per-layer norms, means and angles each epoch (diagnostics.py)

    @classmethod
    def resolve(cls, spec: RunSpec, epochs: int, steps_per_epoch: int,
                device: torch.device) -> TrainSpec:
        run, ckpt = spec.run, spec.run.checkpoint
        return cls(
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            schedule=spec.task.schedule,
            grad_clip=spec.grad_clip,
            precision=run.precision.value,
            compile=run.compile,
            log_every=run.log_every,
            check_every=1 if device.type == "cpu" else run.check_every,
            checkpoint_every_epochs=spec.task.checkpoint_every_epochs or ckpt.every_epochs,
            checkpoint_every_steps=ckpt.every_steps,
            checkpoint_every_minutes=ckpt.every_minutes,
            keep_checkpoint=ckpt.keep,
            diagnostics=run.diagnostics,
        )

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def lr_factor_at(self, it: int) -> float:
        """The schedule's factor for item ``it`` (0-based, from the start of training; each
        epoch has ``steps_per_epoch`` items): what the loop's LambdaLR schedulers apply."""
        return schedules.lr_factor(self.schedule, it=it, epoch=it // self.steps_per_epoch,
                                   spe=self.steps_per_epoch, epochs=self.epochs)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def checkpoint_due(self, state: TrainState, seconds_since_last: float) -> bool:
        """The one rule for regular checkpoints (signals aside), asked after every item.

        At the end of an epoch (``state.pos == 0``, after its evaluation): every
        ``checkpoint_every_epochs`` epochs, never after the last. Within an epoch: every
        ``checkpoint_every_steps`` steps or ``checkpoint_every_minutes`` minutes.
        """
        if state.pos >= self.steps_per_epoch:  # the epoch's last item: its end comes next
            return False
        if state.pos == 0:
            every = self.checkpoint_every_epochs
            return bool(every) and state.epoch % every == 0 and state.epoch < self.epochs
        by_steps = bool(self.checkpoint_every_steps) and state.it % self.checkpoint_every_steps == 0
        by_time = (bool(self.checkpoint_every_minutes)
                   and seconds_since_last > 60 * self.checkpoint_every_minutes)
        return by_steps or by_time


@dataclass
class TrainState:
    epoch: int = 0  # finished epochs
    pos: int = 0  # items done in the current epoch
    it: int = 0  # items done since the start of training
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per finished epoch
    series: dict[str, list[Any]] = field(default_factory=dict)  # per-step values a task keeps
    best: float | None = None
    best_epoch: int | None = None
    elapsed: float = 0.0  # seconds of training before the last checkpoint
    sums: dict[str, torch.Tensor] = field(default_factory=dict)  # this epoch's step metrics
    count: int = 0  # steps summed in ``sums``

    def add_step(self, metrics: dict[str, Any], device: torch.device) -> None:
        """Accumulate one step's metrics on the device (no host sync)."""
        for key, value in metrics.items():
            value = (value.detach().float() if torch.is_tensor(value)
                     else torch.tensor(float(value), device=device))
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
            if key in self.series:
                self.series[key].append(value)
        self.count += 1
        self.pos += 1
        self.it += 1

    def epoch_means(self) -> dict[str, float]:
        count = max(self.count, 1)
        return {f"train/{k}": float(v) / count for k, v in self.sums.items()}

    def consider(self, value: float | None, goal: str) -> None:
        """Keep the best value of the headline metric."""
        if value is None:
            return
        if self.best is None or (value < self.best if goal == "min" else value > self.best):
            self.best, self.best_epoch = value, self.epoch

    def close_epoch(self, entry: dict[str, Any]) -> None:
        self.history.append(entry)
        self.pos, self.sums, self.count = 0, {}, 0
        self.freeze_series()

    def freeze_series(self) -> None:
        """Turn the per-step tensors collected so far into floats (one sync per call)."""
        for values in self.series.values():
            tensors = [i for i, v in enumerate(values) if torch.is_tensor(v)]
            if tensors:
                floats = torch.stack([values[i] for i in tensors]).tolist()
                for i, f in zip(tensors, floats):
                    values[i] = f

    def state_dict(self) -> dict[str, Any]:
        self.freeze_series()
        return {"epoch": self.epoch, "pos": self.pos, "it": self.it, "history": self.history,
                "series": self.series, "best": self.best, "best_epoch": self.best_epoch,
                "elapsed": self.elapsed, "sums": self.sums, "count": self.count}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        for key, value in state.items():
            setattr(self, key, value)
        self.sums = {k: v.to(device) for k, v in self.sums.items()}

