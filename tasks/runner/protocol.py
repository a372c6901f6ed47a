"""The paper's choice of the best lr (docs/experiments.md, "Protocol"), written once for the
grid sweeper's stage 2 (hydra_plugins/nero_sweeper/grid.py), which re-runs it with more seeds,
and for the analysis (tasks/analysis/selection.py), which reports the seeds at it: both must
pick the same lr, or a table cell would stand on one seed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping


def lr_scores(runs: Iterable[tuple[float, int, float]]) -> dict[float, float]:
    """Each lr's score from its finished runs ``(lr, seed, final metric)``: its seed-0 run's
    final metric (where seed 0 is missing, the mean over the seeds there)."""
    by_lr: dict[float, list[tuple[int, float]]] = defaultdict(list)
    for lr, seed, final in runs:
        by_lr[float(lr)].append((int(seed), float(final)))
    scores = {}
    for lr, rs in by_lr.items():
        pick = [f for s, f in rs if s == 0] or [f for _, f in rs]
        scores[lr] = sum(pick) / len(pick)
    return scores


def best_lr(scores: Mapping[float, float], goal: str) -> float | None:
    """The lr with the best score (``goal`` "min" or "max"); a tie goes to the smaller lr, a rule
    that needs nothing but the records (which do not keep a sweep's grid order). None without
    scores."""
    if not scores:
        return None
    sign = 1.0 if goal == "min" else -1.0
    return min(sorted(scores), key=lambda lr: sign * scores[lr])
