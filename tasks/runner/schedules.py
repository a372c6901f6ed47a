"""Learning-rate schedules as pure functions of the position in training.

The runner's ``LambdaLR`` schedulers (one per optimiser, tasks/runner/loop.py) set every param
group's lr to its base lr times ``lr_factor(...)`` before each training item. A schedule has no
state of its own, so resuming needs nothing but the step counters, and each formula below can be
read against docs/experiments.md.

Positions: ``it`` is the 0-based index of the current training item (minibatch or PPO update)
counted from the start of training, ``epoch`` the 0-based index of the current epoch, ``spe`` the
number of items per epoch and ``epochs`` the number of epochs.
"""

from __future__ import annotations

import math

from tasks.errors import UserError
from tasks.experiments.base import Schedule, ScheduleKind

KINDS = tuple(k.value for k in ScheduleKind)  # each formula below; the config schema checks it


def lr_factor(spec: Schedule, *, it: int, epoch: int, spe: int, epochs: int) -> float:
    """The factor of the base lr at a position; ``spec`` is checked (its needed keys are set)."""
    kind = spec.kind.value
    if kind == "constant":
        return 1.0
    if kind == "warmup_multistep":
        # E3 (CIFAR): before the k-th step of the first `warmup_epochs` epochs (k = it + 1),
        # lr = base * k / (warmup_epochs * spe); afterwards base * gamma^m, m = number of
        # milestones <= the 1-based epoch number.
        warm = spec.warmup_epochs
        if epoch < warm:
            return (it + 1) / (warm * spe)
        return spec.gamma ** sum(1 for m in spec.milestones if m <= epoch + 1)
    if kind == "exponential":
        # E2 (MNIST): lr_e = lr_0 * gamma^e.
        return spec.gamma ** epoch
    if kind == "step":
        # E4 (cGAN: /10 from epoch index 100), E5 (Wikitext-2: /10 after 10 epochs).
        return spec.gamma ** sum(1 for m in spec.milestones if epoch >= m)
    if kind == "triangular":
        # E6 (translation): lr_k = lr_max * 2 * min((k + 1) / E, (E - 1 - k) / E).
        return 2.0 * min((epoch + 1) / epochs, (epochs - 1 - epoch) / epochs)
    if kind == "linear":
        # E7 (PPO): lr_j = lr_0 * (1 - j / J) with one PPO update per epoch.
        return 1.0 - epoch / epochs
    if kind == "warmup_cosine":
        # E8 (ImageNet): lr = base * it / W during the first `warmup_epochs` (the very first
        # step uses 0), then base * (1 + cos(pi * it / T)) / 2 with T all iterations.
        warm = spec.warmup_epochs * spe
        if it < warm:
            return it / warm
        return 0.5 * (1.0 + math.cos(math.pi * it / (epochs * spe)))
    raise UserError(f"unknown schedule kind {kind!r}: choose one of {', '.join(KINDS)}")

