"""The runner's lr schedule reaches every parameter group an optimiser exposes, a composite's too."""

from __future__ import annotations

from typing import Any

import pytest
import torch

SEEN: list[list[float]] = []  # each step's lrs, as the inner optimisers hold them


class TwoSGDs(torch.optim.Optimizer):
    """Routes the first parameter tensor to one SGD and the rest to another; its param_groups are
    theirs, so whatever sets an lr on it sets it on them."""

    def __init__(self, params: Any, lr: float, **options: Any) -> None:
        params = list(params)
        self.inner = [torch.optim.SGD(part, lr=lr, **options)
                      for part in (params[:1], params[1:]) if part]
        super().__init__(params, {"lr": lr})
        self.param_groups = [g for opt in self.inner for g in opt.param_groups]

    def step(self, closure: Any = None) -> None:
        SEEN.append([g["lr"] for opt in self.inner for g in opt.param_groups])
        for opt in self.inner:
            opt.step()

    def state_dict(self) -> dict[str, Any]:
        return {"inner": [opt.state_dict() for opt in self.inner]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for opt, state in zip(self.inner, state_dict["inner"], strict=True):
            opt.load_state_dict(state)
        self.param_groups = [g for opt in self.inner for g in opt.param_groups]


def test_each_item_trains_at_the_scheduled_lr_in_every_inner_optimiser(smoke):
    SEEN.clear()
    record = smoke("task=mnist_mlp", "optimizer=sgd", f"optimizer._target_={__name__}.TwoSGDs",
                   "optimizer.lr=0.1", "task.n_train=200", "task.schedule.kind=warmup_multistep",
                   "task.schedule.warmup_epochs=1", "task.schedule.gamma=0.5",
                   "task.schedule.milestones=[2]")
    assert record.status == "ok", record.reason
    steps = 200 // 50  # items per epoch: n_train / batch_size of the smoke config
    # docs/experiments.md, E3's rule: item k of the warm-up epoch at base * (k + 1) / steps, then
    # base * gamma^(milestones <= the 1-based epoch); here epoch 2 reaches milestone 2.
    expected = [0.1 * (k + 1) / steps for k in range(steps)] + [0.1 * 0.5] * steps
    assert len(SEEN) == len(expected)
    # rel 1e-15: the runner's product and this one round differently (a few float64 ulps).
    for lrs, lr in zip(SEEN, expected, strict=True):
        assert len(lrs) == 2 and lrs == pytest.approx([lr, lr], rel=1e-15)
    assert [e["lr"] for e in record.history] == pytest.approx([expected[steps - 1], 0.05],
                                                                 rel=1e-15)
