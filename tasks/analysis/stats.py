"""Statistics over seeds for the claims and tables (beyond the paper), all from ``scipy.stats``.

- A cell's mean has a 95% Student t-interval over its seeds (``scipy.stats.t``, standard error
  with ddof 1). With three seeds a t-interval is honest; a bootstrap over three values is not.
- A difference between two configurations has a 95% t-interval too: *paired by seed* where the
  two share their seeds and the task's data order is a function of the seed (every task's
  batches are, tasks/experiments/base.py; Pong's episodes depend on the policy, so it is not
  paired), *Welch* (Welch-Satterthwaite degrees of freedom) otherwise. A linear contrast of
  several configurations (e.g. "closes most of the gap") is treated the same way.
- The seeds needed to separate two configurations at the observed difference and spread: the
  smallest n per configuration at which a two-sided t-test at alpha 0.05 has power 0.8, the
  power computed from the noncentral t (``scipy.stats.nct``; its normal limit where scipy's
  nct gives no value) and n found by bisection (power grows with n).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95
ALPHA, POWER = 0.05, 0.8
MAX_SEEDS = 10_000  # beyond this the seeds needed are reported as "> 10000"
# Data order (and the synthetic data set) at seed s is the same for every optimiser: runs of one
# task at one seed can be paired. Pong's training data are the episodes the policy plays.
UNPAIRED_TASKS = frozenset({"pong_ppo"})

T_METHOD = "95% Student t-interval over seeds (scipy.stats.t, ddof 1)"
PAIRED_METHOD = "paired by seed: 95% t-interval of the per-seed differences (scipy.stats.t)"
WELCH_METHOD = "Welch: 95% t-interval, Welch-Satterthwaite df (scipy.stats.t)"
POWER_METHOD = (f"seeds per configuration for a two-sided t-test (alpha {ALPHA}, power {POWER}) "
                "at the observed difference and spread, from the noncentral t (scipy.stats.nct)")


@dataclass(frozen=True)
class Interval:
    """A mean (or a difference of means) with its 95% interval; none with fewer than 2 seeds."""

    mean: float
    low: float | None
    high: float | None
    n: int
    method: str
    sd: float | None = None  # the sample standard deviation (ddof 1) behind the interval
    df: float | None = None

    @property
    def known(self) -> bool:
        return self.low is not None

    def above(self, x: float) -> bool:
        return self.known and self.low > x

    def below(self, x: float) -> bool:
        return self.known and self.high < x

    def text(self, digits: int = 4) -> str:
        if not self.known:
            return f"{self.mean:.{digits}g} (n={self.n}: no interval)"
        return f"{self.mean:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


def _t_interval(mean: float, se: float, df: float) -> tuple[float, float]:
    if se == 0.0:  # every seed agrees: the interval is the point itself
        return mean, mean
    low, high = stats.t.interval(LEVEL, df, loc=mean, scale=se)
    return float(low), float(high)


def _var(values: Sequence[float]) -> float:
    return statistics.variance(values) if len(values) > 1 else math.nan  # ddof 1


def interval(values: Sequence[float]) -> Interval:
    """Mean and 95% t-interval over seeds."""
    n = len(values)
    if n == 0:
        raise ValueError("an interval needs at least one value")
    mean = math.fsum(values) / n
    if n < 2:
        return Interval(mean, None, None, n, T_METHOD)
    sd = math.sqrt(_var(values))
    return Interval(mean, *_t_interval(mean, sd / math.sqrt(n), n - 1), n, T_METHOD, sd, n - 1)


def contrast(groups: Sequence[tuple[float, Mapping[int, float]]], paired: bool) -> Interval:
    """Sum of ``weight * mean`` over the groups (each a mapping seed -> value), with its 95%
    interval: per-seed contrasts where ``paired`` and every group has the same seeds, Welch
    otherwise (a difference a - b is the contrast ((1, a), (-1, b)))."""
    seeds = [sorted(values) for _, values in groups]
    if paired and all(s == seeds[0] for s in seeds) and len(seeds[0]) >= 2:
        per_seed = [math.fsum(w * values[s] for w, values in groups) for s in seeds[0]]
        got = interval(per_seed)
        return Interval(got.mean, got.low, got.high, got.n, PAIRED_METHOD, got.sd, got.df)
    means = [math.fsum(v.values()) / len(v) for _, v in groups]
    estimate = math.fsum(w * m for (w, _), m in zip(groups, means))
    n = min(len(v) for _, v in groups)
    if n < 2:
        return Interval(estimate, None, None, n, WELCH_METHOD)
    parts = [w * w * _var(list(v.values())) / len(v) for w, v in groups]
    se2 = math.fsum(parts)
    if se2 == 0.0:
        return Interval(estimate, estimate, estimate, n, WELCH_METHOD, 0.0)
    df = se2 ** 2 / math.fsum(p * p / (len(v) - 1) for p, (_, v) in zip(parts, groups))
    sd = math.sqrt(math.fsum(_var(list(v.values())) for _, v in groups) / len(groups))
    return Interval(estimate, *_t_interval(estimate, math.sqrt(se2), df), n, WELCH_METHOD, sd, df)


def difference(a: Mapping[int, float], b: Mapping[int, float], paired: bool) -> Interval:
    """Mean of a minus mean of b (mappings seed -> value), with its 95% interval."""
    return contrast([(1.0, a), (-1.0, b)], paired)


def power(effect: float, n: int, paired: bool) -> float:
    """Power of a two-sided t-test at ALPHA with n seeds per configuration, for a standardised
    effect (difference / sd; the sd of the per-seed differences where paired)."""
    df = n - 1 if paired else 2 * n - 2
    nc = effect * math.sqrt(n if paired else n / 2)
    crit = stats.t.ppf(1 - ALPHA / 2, df)
    got = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    if math.isnan(got):  # scipy's nct gives up at large df or noncentrality: the normal limit
        got = float(stats.norm.sf(crit - nc) + stats.norm.cdf(-crit - nc))
    return got


def seeds_needed(diff: Interval) -> int | None:
    """Seeds per configuration for the test to separate the two at power POWER, at the observed
    difference and spread; None where it cannot be said (fewer than 2 seeds, or no
    difference). A spread of zero needs the minimum, 2."""
    if diff.sd is None or not math.isfinite(diff.sd) or diff.mean == 0.0:
        return None
    if diff.sd == 0.0:
        return 2
    paired = diff.method == PAIRED_METHOD
    effect = abs(diff.mean) / diff.sd
    if power(effect, MAX_SEEDS, paired) < POWER:
        return MAX_SEEDS + 1
    low, high = 1, MAX_SEEDS  # power grows with n: the smallest n reaching POWER, by bisection
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if power(effect, mid, paired) >= POWER else (mid, high)
    return max(high, 2)


def seeds_text(n: int | None) -> str:
    if n is None:
        return "—"
    return f"> {MAX_SEEDS}" if n > MAX_SEEDS else str(n)
