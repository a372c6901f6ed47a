"""Does each optimiser's best lr stay put as the network grows? (beyond the paper)

Drawn from the records of the ``mnist_lr_transfer`` sweep (conf/experiment/mnist_lr_transfer.yaml):
E2's plain MLP on MNIST at several widths and depths, each optimiser over one lr grid. A run's
score is its final test accuracy (held out; Fig. 3 plots training accuracy, which a large lr can
inflate for an epoch); a run that diverged or failed scores chance, 0.1 (ten balanced classes),
so that it loses to any lr that trained. The shapes are read from the records: the widths run at
one depth form the width series, the depths run at one width the depth series.

The artefact ``lr_transfer`` draws, per optimiser, the score against lr at each width and each
depth, the best lr against width and depth, and the tuning-budget curve: the expected best score
after trying k lrs of the grid drawn at random without replacement (exact, averaged over the
shapes). Its table lists the best lr of every shape and how far it moves, in decades, across
each series: the number the claim ``transfer.nero_lr_moves_less`` (claims.py) judges.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from math import comb
from pathlib import Path

from tasks.runner.protocol import best_lr, lr_scores
from tasks.runner.records import Record

from . import figures, tables
from .artefacts import Outcome, write_comparison
from .selection import Records, defaults_for

SWEEP = "mnist_lr_transfer"
TASK = "mnist_mlp"
OPTIMIZERS = ("nero", "sgd", "adam", "lamb", "madam", "muon")  # the experiment's grid
CHANCE = 0.1  # the score of a run that diverged or failed: 1 in 10 classes
# MNIST's chance line: its most frequent class, the digit 1, is 11.2% of the training set and
# 11.35% of the test set. A shape whose best score is at most this trained at no lr of the grid
# (its "best" lr is noise, not a choice); the claims read "at chance" as below it.
TRAINS_ABOVE = 0.15
WIDTH, DEPTH = "task.width", "task.depth"

Shape = tuple[int, int]  # (width, depth)


def score(r: Record) -> float:
    """The final test accuracy of a finished run; chance for one that diverged or failed."""
    history = r.history
    value = history[-1].get("test_acc") if history and r.status == "ok" else None
    return float(value) if value is not None and math.isfinite(value) else CHANCE


@dataclass
class Sweep:
    """The sweep's records as scores: optimiser -> shape -> lr -> seed-0 score (protocol.py)."""

    scores: dict[str, dict[Shape, dict[float, float]]]
    records: list[Record]
    widths: list[Shape]  # the width series (one depth), narrowest first
    depths: list[Shape]  # the depth series (one width), shallowest first
    notes: list[str]

    def best(self, optimizer: str, shape: Shape) -> float | None:
        return best_lr(self.scores.get(optimizer, {}).get(shape, {}), "max")

    def trains(self, optimizer: str, shape: Shape) -> bool:
        lr = self.best(optimizer, shape)
        return lr is not None and self.scores[optimizer][shape][lr] > TRAINS_ABOVE

    def moves(self, optimizer: str, series: list[Shape]) -> float | None:
        """How far the best lr moves across a series, in decades (None: a shape has no runs;
        infinite: at some shape no lr trains, which no choice of lr mends)."""
        lrs = [self.best(optimizer, s) for s in series]
        if not lrs or any(lr is None for lr in lrs):
            return None
        if not all(self.trains(optimizer, s) for s in series):
            return math.inf
        # rounded: 0.03/0.01 and 0.003/0.001 are one move, whatever log10's last bit says
        return round(math.log10(max(lrs) / min(lrs)), 9)

    def budget(self, optimizer: str) -> list[float]:
        """Expected best score after k random lrs of the grid, k = 1..n, averaged over shapes."""
        per_shape = [sorted(v.values()) for v in self.scores.get(optimizer, {}).values() if v]
        n = min((len(v) for v in per_shape), default=0)
        return [sum(expected_best(v, k) for v in per_shape) / len(per_shape)
                for k in range(1, n + 1)]


def expected_best(values: list[float], k: int) -> float:
    """E[max] of k values drawn without replacement from ``values`` (sorted ascending): the i-th
    smallest is the maximum of C(i-1, k-1) of the C(n, k) draws."""
    n = len(values)
    return sum(v * comb(i, k - 1) for i, v in enumerate(values)) / comb(n, k)


def collect(rec: Records) -> Sweep:
    """Scores of every (optimiser, shape) of the sweep. The records must agree on every setting
    but width, depth, lr and seed; where they do not, the most common settings are used and a
    note names the others (a table never mixes two configurations)."""
    mine = [r for r in rec.all if r.sweep == SWEEP and r.task == TASK]
    rest: Counter[str] = Counter()
    for r in mine:
        rest[json.dumps({k: v for k, v in r.variant.items() if k not in (WIDTH, DEPTH)},
                        sort_keys=True)] += 1
    notes = [f"ignored {n} records of other settings ({s})" for s, n in rest.most_common()[1:]]
    base = json.loads(rest.most_common(1)[0][0]) if rest else {}
    runs: dict[str, dict[Shape, list[Record]]] = {}
    for optimizer in dict.fromkeys(r.optimizer for r in mine):
        defaults = defaults_for(TASK, optimizer, mine[0].scale)
        shapes = {(int(r.variant.get(WIDTH, defaults[WIDTH])),
                   int(r.variant.get(DEPTH, defaults[DEPTH]))) for r in mine
                  if r.optimizer == optimizer}
        for width, depth in sorted(shapes):
            variant = dict(base)
            for key, value, default in ((WIDTH, width, defaults[WIDTH]),
                                        (DEPTH, depth, defaults[DEPTH])):
                if value != default:
                    variant[key] = float(value)
            found = rec.runs(sweeps=[SWEEP], task=TASK, optimizer=optimizer, variant=variant)
            if found:
                runs.setdefault(optimizer, {})[(width, depth)] = found
    scores: dict[str, dict[Shape, dict[float, float]]] = {}
    used: list[Record] = []
    for optimizer, by_shape in runs.items():
        grid = {r.lr for found in by_shape.values() for r in found}
        for shape, found in by_shape.items():
            lrs = {r.lr for r in found}
            if lrs != grid:  # a best lr over part of the grid is no best lr
                notes.append(f"{optimizer} at width {shape[0]}, depth {shape[1]}: left out, "
                             f"{len(lrs)} of the {len(grid)} lrs run")
                continue
            used += found
            scores.setdefault(optimizer, {})[shape] = lr_scores(
                (r.lr, r.seed, score(r)) for r in found)
    shapes = sorted({s for by_shape in scores.values() for s in by_shape})
    return Sweep(scores, used, *series(shapes), notes + rec.notes)


def series(shapes: list[Shape]) -> tuple[list[Shape], list[Shape]]:
    """The widths run at the depth with the most widths, and the depths at the width with the
    most depths (ties: the smaller)."""
    if not shapes:
        return [], []
    depth = max(sorted({d for _, d in shapes}), key=lambda d: sum(s[1] == d for s in shapes))
    width = max(sorted({w for w, _ in shapes}), key=lambda w: sum(s[0] == w for s in shapes))
    return ([s for s in shapes if s[1] == depth], [s for s in shapes if s[0] == width])


def decades(x: float | None) -> str:
    return "-" if x is None else "∞ (no lr trains at some shape)" if math.isinf(x) else f"{x:.1f}"


def artefact(rec: Records, out: Path, optimizers: tuple[str, ...] = OPTIMIZERS) -> Outcome:
    """The figure and table of the sweep (``optimizers``: the registry's column choice, unused:
    the experiment's own optimisers are drawn)."""
    outcome = Outcome("lr_transfer")
    sweep = collect(rec)
    shown = [o for o in OPTIMIZERS if o in sweep.scores] + [
        o for o in sweep.scores if o not in OPTIMIZERS]
    outcome.missing = [f"{o} ({SWEEP}: {TASK})" for o in OPTIMIZERS if o not in sweep.scores]
    if not shown:
        outcome.skipped = f"no records of {SWEEP} ({TASK})"
        return outcome
    fig, axes = figures.grid(3, max(len(shown), 3))
    for col, o in enumerate(shown):
        for row, (name, shapes) in enumerate((("width", sweep.widths), ("depth", sweep.depths))):
            ax = axes[row][col]
            for (shape, color) in zip(shapes, figures.shades(len(shapes))):
                by_lr = sweep.scores[o].get(shape, {})
                lrs = sorted(by_lr)
                label = f"{name} {shape[0] if name == 'width' else shape[1]}"
                ax.plot(lrs, [by_lr[lr] for lr in lrs], "o-", color=color, markersize=3,
                        label=label)
                best = sweep.best(o, shape)
                if best is not None:
                    ax.plot([best], [by_lr[best]], "*", color=color, markersize=10)
            ax.set_xscale("log")
            fixed = (f"depth {shapes[0][1]}" if name == "width" else f"width {shapes[0][0]}"
                     ) if shapes else ""
            ax.set_title(f"{tables.label(o)}: by {name} ({fixed})", fontsize=8)
            figures.finish_axes(ax, "learning rate", "final test accuracy")
    for col, (name, shapes, index) in enumerate((("width", sweep.widths, 0),
                                                 ("depth", sweep.depths, 1))):
        ax = axes[2][col]
        for i, o in enumerate(shown):  # the first drawn largest: equal lrs stay visible
            points = [(s[index], sweep.best(o, s)) for s in shapes if sweep.best(o, s)]
            if points:
                ax.plot(*zip(*points), marker=figures.MARKERS[i % len(figures.MARKERS)],
                        markersize=11 - 1.5 * i, color=figures.COLORS.get(o),
                        label=tables.label(o))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        figures.finish_axes(ax, name, "best lr (seed 0)")
    ax = axes[2][2]
    for o in shown:
        curve = sweep.budget(o)
        ax.plot(range(1, len(curve) + 1), curve, "o-", color=figures.COLORS.get(o),
                label=tables.label(o))
    figures.finish_axes(ax, "lrs tried (at random from the grid)",
                        "expected best test accuracy, mean over shapes")
    for row in axes:
        for extra in row[len(shown) if row is not axes[2] else 3:]:
            extra.axis("off")
    caption = tables.caption(sweep.records)
    outcome.files = figures.save(fig, out / "lr_transfer" / "lr_transfer",
                                 "Does the best lr transfer across width and depth? "
                                 "(E2's MLP on MNIST; beyond the paper)", caption)
    outcome.files.append(write_table(sweep, shown, out / "lr_transfer", caption))
    return outcome


def write_table(sweep: Sweep, shown: list[str], folder: Path, caption: str) -> Path:
    shapes = sweep.widths + [s for s in sweep.depths if s not in sweep.widths]
    budgets = (1, 2, 3)
    header = ["optimiser", *(f"w{w} d{d}" for w, d in shapes), "moves across widths (decades)",
              "moves across depths (decades)",
              *(f"expected best of {k} random lr{'s' * (k > 1)}" for k in budgets)]
    rows = []
    for o in shown:
        cells = []
        for s in shapes:
            lr = sweep.best(o, s)
            cells.append("-" if lr is None else f"{lr:g} ({sweep.scores[o][s][lr]:.4f})"
                         + ("" if sweep.trains(o, s) else ": none trains"))
        curve = sweep.budget(o)
        rows.append([tables.label(o), *cells, decades(sweep.moves(o, sweep.widths)),
                     decades(sweep.moves(o, sweep.depths)),
                     *(f"{curve[k - 1]:.3f}" if k <= len(curve) else "-" for k in budgets)])
    notes = [f"Each cell: the best lr (seed 0) and its final test accuracy; a diverged or failed "
             f"run scores chance ({CHANCE:g}). A move of 0 means one lr won at every shape; "
             f"\"none trains\": no lr of the grid scored above {TRAINS_ABOVE:g}, so the lr "
             "shown is noise and the series' move is infinite. Expected best: of k lrs drawn "
             "at random from the grid, the best score, mean over the shapes.",
             *sweep.notes]
    return write_comparison(folder, "lr_transfer: the best lr of each shape", caption, header,
                            rows, notes, name="lr_transfer.md")
