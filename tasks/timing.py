"""Optimiser step timing shared by the benchmark scripts (scripts/bench_optim.py, bench_gpu.py).

Every optimiser steps its own copy of the same parameters and gradients (sharing tensors would
let one write under another), and the steps are interleaved round by round, so that whatever
else the machine does falls on all of them alike; the first rounds (compilation, lazy state)
are not timed. Times are wall-clock, synchronised with the device.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping

import torch


def own_copy(params: Iterable[torch.Tensor]) -> list[torch.nn.Parameter]:
    """Fresh parameters equal to ``params``, each with a copy of its gradient."""
    copies = []
    for p in params:
        q = torch.nn.Parameter(p.detach().clone())
        q.grad = p.grad.clone()
        copies.append(q)
    return copies


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(steps: Mapping[str, Callable[[], object]], rounds: int, warmup: int,
                        device: torch.device | str) -> dict[str, float]:
    """Median seconds per call of each step over ``rounds`` interleaved rounds, after
    ``warmup`` untimed rounds."""
    with torch.no_grad():
        for _ in range(warmup):
            for step in steps.values():
                step()
        synchronize(device)
        times: dict[str, list[float]] = {key: [] for key in steps}
        for _ in range(rounds):
            for key, step in steps.items():
                synchronize(device)
                t0 = time.perf_counter()
                step()
                synchronize(device)
                times[key].append(time.perf_counter() - t0)
    return {key: statistics.median(ts) for key, ts in times.items()}
