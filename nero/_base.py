"""What Nero, Madam and LAMB share: validation, fp32 state, closures and non-finite reporting."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


def check_lr(lr: Any) -> float:
    if isinstance(lr, Tensor):
        lr = float(lr)
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"invalid learning rate {lr!r}: it must be a finite number > 0")
    return float(lr)


def check_beta(beta: Any, name: str = "beta") -> float:
    if not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
        raise ValueError(f"invalid {name} {beta!r}: it must lie in [0, 1)")
    return float(beta)


def check_positive(value: Any, name: str, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"invalid {name} {value!r}: it must be a finite number > 0")
    return float(value)


def dense_grad(p: Tensor, who: str) -> Tensor:
    g = p.grad
    if g.is_sparse:
        raise RuntimeError(
            f"{who} does not support sparse gradients; build the layer with sparse=False "
            "(e.g. nn.Embedding(..., sparse=False))"
        )
    return g


class NeuronOptimizer(Optimizer):
    """Base class: keeps floating state in float32 and warns about skipped non-finite gradients."""

    _name = "optimizer"

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self._nonfinite_total = 0
        self._pending: list[tuple[Tensor, Any, int]] = []
        super().__init__(params, defaults)

    def _closure_loss(self, closure: Callable[[], Any] | None) -> Any:
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    def _stepped_params(
        self, group: dict[str, Any], init: Callable[[Tensor, dict[str, Any]], None]
    ) -> list[Tensor]:
        """The group's non-empty parameters that have a gradient, each one's step counted.

        ``init(p, group)`` creates the state of a parameter seen for the first time, with
        ``step`` 0.
        """
        params = [p for p in group["params"] if p.grad is not None and p.numel() > 0]
        for p in params:
            dense_grad(p, self._name)
            if not self.state[p]:
                init(p, group)
            self.state[p]["step"] += 1
        return params

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ``Optimizer.load_state_dict``, but floating state keeps its saved dtype (float32).

        torch casts floating state to each parameter's dtype, which would round the running
        averages of bf16/fp16 parameters and break exact resumption.
        """
        params = [p for g in self.param_groups for p in g["params"]]
        if not any(p.dtype in (torch.float16, torch.bfloat16) for p in params):
            super().load_state_dict(state_dict)
            return
        saved = copy.deepcopy(state_dict["state"])
        super().load_state_dict(state_dict)
        ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        for i, p in zip(ids, params):
            if i not in saved:
                continue
            for key, value in saved[i].items():
                if isinstance(value, Tensor) and value.is_floating_point():
                    self.state[p][key] = value.to(device=p.device)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_nonfinite_total", 0)
        self.__dict__.setdefault("_pending", [])

    # -- non-finite gradients ------------------------------------------------------------------
    def _report_nonfinite(self, bad: Tensor | int, step: int) -> None:
        """Warn when ``bad`` (a count of skipped units) is non-zero, without stalling a GPU.

        On the CPU the count is read at once. On an accelerator it is copied to pinned memory
        asynchronously and read at a later step, once its event has completed.
        """
        if not isinstance(bad, Tensor) or bad.device.type == "cpu":
            self._warn_nonfinite(int(bad), step)
            return
        host = torch.empty((), dtype=bad.dtype, pin_memory=True)
        host.copy_(bad, non_blocking=True)
        event = torch.cuda.Event() if bad.device.type == "cuda" else None
        if event is not None:
            event.record()
        self._pending.append((host, event, step))
        still = []
        for host, event, at in self._pending:
            if event is None or event.query():
                self._warn_nonfinite(int(host), at)
            else:
                still.append((host, event, at))
        self._pending = still

    def _warn_nonfinite(self, n: int, step: int) -> None:
        if n <= 0:
            return
        self._nonfinite_total += n
        warnings.warn(
            f"{self._name}: {n} unit(s) got a non-finite gradient at step {step}; their update "
            "was skipped and their running average left unchanged (so they are not frozen). "
            "A persistent stream of these means the loss itself is diverging.",
            RuntimeWarning,
            stacklevel=3,
        )

    @property
    def nonfinite_count(self) -> int:
        """Total number of units whose non-finite gradient was skipped so far (synchronises)."""
        for host, event, at in self._pending:
            if event is not None:
                event.synchronize()
            self._warn_nonfinite(int(host), at)
        self._pending = []
        return self._nonfinite_total
