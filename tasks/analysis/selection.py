"""The paper's protocol over records: which runs form a cell, its best lr, its mean and spread.

Records are grouped into *configurations*: runs of one sweep, scale, task and optimiser whose
computing settings agree once lr and seed are set aside (their cell fingerprint). Two
configurations are never mixed: a folder holding records of two variants (sigma 1 and 100, or
the same variant before and after the defaults changed) gives two configurations, and a table
that asks for one of them names which it used.

Within a configuration (docs/experiments.md, "Protocol"): the best lr is the one whose seed-0 run
has the best final metric (where seed 0 is missing, the mean over the seeds there; a tie goes to
the smaller lr), by the rule the grid sweeper uses too (tasks/runner/protocol.py); the reported
number is the mean and population standard deviation (ddof 0, as Table 1) of the final metric
over the seeds at that lr. Diverged and failed runs never win an lr; a cell whose runs all
diverged or failed, or that has no runs, is shown as such.

Records written before variants existed carry no ``variant``: the reader derives it from their
stored config (tasks/runner/records.py).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tasks.runner import identity, validation
from tasks.runner.protocol import best_lr, lr_scores
from tasks.runner.records import Record


def defaults_for(task: str, optimizer: str, scale: str) -> dict[str, Any]:
    """The computing defaults of a task x optimizer x scale (identity.defaults_for), composed
    from the schemas and the configs as they are now."""
    validation.register_schemas()
    return identity.defaults_for(task, optimizer, scale)


def usable(r: Record) -> bool:
    return r.status == "ok" and r.final is not None and math.isfinite(r.final)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof 0), as the paper's Table 1."""
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


@dataclass
class Cell:
    """One configuration at its best lr: what a table entry or a figure curve shows."""

    task: str
    optimizer: str
    status: str  # ok | partial | diverged | failed | missing
    lr: float | None = None
    mean: float | None = None
    std: float | None = None
    seeds: list[int] = field(default_factory=list)
    n_runs: int = 0  # runs at the chosen lr, whatever their status
    lr_values: dict[float, float] = field(default_factory=dict)  # lr -> selection score
    records: list[Record] = field(default_factory=list)  # the runs at the chosen lr
    variant: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.mean is not None


def cell(task: str, optimizer: str, runs: list[Record], goal: str) -> Cell:
    """Best lr and mean ± std for one configuration from all its runs (any lr, any seed)."""
    if not runs:
        return Cell(task, optimizer, "missing")
    by_lr: dict[float, list[Record]] = defaultdict(list)
    for r in runs:
        by_lr[r.lr].append(r)
    scores = lr_scores((r.lr, r.seed, r.final) for r in runs if usable(r))
    the_variant = dict(runs[0].variant)
    if not scores:
        statuses = {r.status for r in runs}
        status = "diverged" if "diverged" in statuses else "failed"
        return Cell(task, optimizer, status, n_runs=len(runs), variant=the_variant)
    lr = best_lr(scores, goal)
    at_best = sorted(by_lr[lr], key=lambda r: r.seed)
    good = [r for r in at_best if usable(r)]
    m, s = mean_std([r.final for r in good])
    status = "ok" if len(good) == len(at_best) else "partial"
    return Cell(task, optimizer, status, lr, m, s, [r.seed for r in good],
                len(at_best), scores, at_best, the_variant)


@dataclass
class Records:
    """The records of one results folder, indexed by configuration."""

    all: list[Record]
    notes: list[str] = field(default_factory=list)  # what a selection had to decide, said once
    # Settings every query adds to the variant it asks for (``aggregate.py --variant``): draws
    # the paper's artefacts from, e.g., a shortened sweep without mixing it with a full one.
    shift: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # one record per run: a later record of the same identity and configuration wins
        latest: dict[tuple, Record] = {}
        for r in self.all:
            key = (r.sweep, r.scale, r.task, r.optimizer, json.dumps(r.variant, sort_keys=True),
                   r.cell_fingerprint, r.lr, r.seed)
            latest[key] = r
        self.all = list(latest.values())

    def runs(self, *, sweeps: Iterable[str], task: str, optimizer: str,
             variant: Mapping[str, Any] | None = None) -> list[Record]:
        """All runs of one configuration: the given sweeps, task and optimiser, and variant
        (default: the paper's default settings). Where several configurations match (the
        defaults changed between runs), the one with the newest record is used, and a note
        says so."""
        wanted = {**(variant or {}), **self.shift}
        sweeps = set(sweeps)
        found = [r for r in self.all if r.sweep in sweeps and r.task == task
                 and r.optimizer == optimizer and r.variant == wanted]
        groups: dict[str, list[Record]] = defaultdict(list)
        for r in found:
            groups[r.cell_fingerprint].append(r)
        if len(groups) <= 1:
            return found
        newest = max(groups, key=lambda k: max(str(r.finished_at) for r in groups[k]))
        others = [r for k, rs in groups.items() if k != newest for r in rs]
        diff = identity.differences(others[0].config or {}, groups[newest][0].config or {})
        self.notes.append(f"{task}/{optimizer}: records of {len(groups)} configurations of the same "
                          f"settings ({diff}); used the newest ({len(groups[newest])} runs), "
                          f"not a mix")
        return groups[newest]

    def cell(self, *, sweeps: Iterable[str], task: str, optimizer: str, goal: str,
             variant: Mapping[str, Any] | None = None) -> Cell:
        return cell(task, optimizer, self.runs(sweeps=sweeps, task=task, optimizer=optimizer,
                                               variant=variant), goal)

    def scales(self) -> list[str]:
        return sorted({r.scale for r in self.all})

    def of_scale(self, scale: str) -> Records:
        return Records([r for r in self.all if r.scale == scale], shift=self.shift)
