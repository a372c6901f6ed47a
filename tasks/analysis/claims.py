"""Every claim of the paper checked against the records, with a verdict (beyond the paper).

Each claim is one declaration (:class:`Claim`): its words, where the paper makes it, the sweeps
whose records it needs and its test, a function of the records. A test compares configurations
(:class:`Arm`: a sweep's task and optimiser at its best lr, chosen on seed 0 as in
selection.py) with the statistics of stats.py and gives one verdict:

- *holds*: every comparison's 95% interval lies on the claimed side;
- *does not hold*: one lies wholly on the other side;
- *inconclusive*: an interval allows both (or a configuration has one seed: no interval);
- *not run*: records are missing; the verdict names the sweep that makes them.

A verdict names the scale, hardware and seeds of its records, and any setting they share that
is not the paper's (e.g. ``task.epochs=10`` of 50): a verdict on smoke-scale records is labelled
"smoke: not evidence". ``claims.md`` lists every claim with its verdict and the numbers behind
it; ``claims.csv`` holds one row per claim. The section "Performance profile" gives the profile
over the Table 1 tasks with an interval on each point.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import stats, tables, transfer
from .artefacts import GOAL, Optimizers, Outcome
from .published import TABLE1_TASKS
from .selection import Cell, Record, Records, cell, defaults_for, usable

if TYPE_CHECKING:  # imported where §4's models are built: the other artefacts need no torch
    import torch

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "does not hold", "inconclusive", "not run"
KINDS = (HOLDS, FAILS, INCONCLUSIVE, NOT_RUN)
Metric = Callable[[Record], float | None]


def final(r: Record) -> float | None:
    return r.final


def last(key: str, scale: float = 1.0, offset: float = 0.0) -> Metric:
    """``offset + scale * history[-1][key]``, e.g. a top-1 error (%) from a final accuracy."""
    def value(r: Record) -> float | None:
        history = r.history
        return None if not history or history[-1].get(key) is None else (
            offset + scale * history[-1][key])
    return value


def at_epoch(key: str, epoch: int) -> Metric:
    def value(r: Record) -> float | None:
        return next((h[key] for h in r.history
                     if h.get("epoch") == epoch and h.get(key) is not None), None)
    return value


@dataclass(frozen=True)
class Arm:
    """One configuration a claim compares: runs of the sweeps' task and optimiser (and variant)
    at its best lr, or at ``lr`` where the claim fixes it; ``metric`` reads each run's value."""

    label: str
    sweeps: tuple[str, ...]
    task: str
    optimizer: str
    variant: tuple[tuple[str, Any], ...] = ()
    metric: Metric = final
    lr: float | None = None

    def where(self) -> str:
        settings = "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}"
                           for k, v in self.variant)
        return f"{'/'.join(self.sweeps)}: {self.task}/{self.optimizer}{settings}"


@dataclass
class Part:
    """The verdict on one comparison of a claim, and what it rests on."""

    kind: str
    text: str
    records: list[Record] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # Arm.where() of configurations without runs


@dataclass
class Evaluated:
    arm: Arm
    cell: Cell
    values: dict[int, float]  # seed -> the arm's metric, runs that finished

    def text(self) -> str:
        if not self.values:
            return f"{self.arm.label}: {self.cell.status}"
        lr = f"η={self.cell.lr:g}, " if self.cell.lr is not None else ""
        return (f"{self.arm.label} {stats.interval(list(self.values.values())).text()} "
                f"({lr}seeds {','.join(map(str, sorted(self.values)))})")


def evaluate(rec: Records, arm: Arm) -> Evaluated:
    goal = GOAL[arm.task]
    runs = rec.runs(sweeps=arm.sweeps, task=arm.task, optimizer=arm.optimizer,
                    variant=dict(arm.variant))
    if arm.lr is not None:
        runs = [r for r in runs if r.lr == arm.lr]
    c = cell(arm.task, arm.optimizer, runs, goal)
    values = {}
    for r in c.records:
        v = arm.metric(r) if usable(r) else None
        if v is not None and math.isfinite(v):
            values[r.seed] = float(v)
    return Evaluated(arm, c, values)


def _missing(rec: Records, *arms: Evaluated) -> Part | None:
    absent = [e.arm.where() for e in arms if e.cell.status == "missing"]
    if not absent:
        return None
    return Part(NOT_RUN, "no records of " + "; ".join(absent),
                [r for e in arms for r in e.cell.records], absent)


def better(rec: Records, a: Arm, b: Arm, margin: float = 0.0, log: bool = False) -> Part:
    """``a`` beats ``b`` on their task's goal by more than ``margin`` (on the log scale where
    ``log``): the 95% interval of the improvement, paired by seed where the seeds share data."""
    ea, eb = evaluate(rec, a), evaluate(rec, b)
    missing = _missing(rec, ea, eb)
    if missing:
        return missing
    used = ea.cell.records + eb.cell.records
    if not ea.values or not eb.values:  # diverged or failed at every lr
        kind = (FAILS if eb.values else INCONCLUSIVE) if not ea.values else HOLDS
        return Part(kind, f"{ea.text()} vs {eb.text()}", used)
    f = math.log if log else float
    sign = 1.0 if GOAL[a.task] == "min" else -1.0  # improvement = how much better a is
    gain = stats.difference({s: sign * f(v) for s, v in eb.values.items()},
                            {s: sign * f(v) for s, v in ea.values.items()},
                            paired=a.task == b.task and a.task not in stats.UNPAIRED_TASKS)
    if gain.above(margin):
        kind = HOLDS
    elif gain.below(margin):
        kind = FAILS
    else:
        kind = INCONCLUSIVE
    scale = "log " if log else ""
    factor = f", a factor {math.exp(margin):.3g}" if log else ""
    bar = f" (needed: > {margin:.3g}{factor})" if margin else ""
    method = "paired by seed" if gain.method == stats.PAIRED_METHOD else "Welch"
    text = (f"{ea.text()} vs {eb.text()}: {a.label}'s {scale}improvement {gain.text()}{bar} "
            f"[{method}]; seeds to separate them: {stats.seeds_text(stats.seeds_needed(gain))}")
    return Part(kind, text, used)


def side(rec: Records, a: Arm, threshold: float, above: bool) -> Part:
    """The arm's mean lies above (or below) ``threshold``: its 95% t-interval does, or with one
    seed its single run does (said so)."""
    e = evaluate(rec, a)
    missing = _missing(rec, e)
    if missing:
        return missing
    if not e.values:
        return Part(FAILS, e.text(), e.cell.records)
    ci = stats.interval(list(e.values.values()))
    want = f"{'above' if above else 'below'} {threshold:g}"
    if ci.known:
        on, off = (ci.above, ci.below) if above else (ci.below, ci.above)
        kind = HOLDS if on(threshold) else FAILS if off(threshold) else INCONCLUSIVE
        text = f"{e.text()}; needed: {want}"
    else:
        kind = HOLDS if (ci.mean > threshold) == above else FAILS
        text = f"{e.text()}; needed: {want} (one seed: its run decides, no interval)"
    return Part(kind, text, e.cell.records)


def all_of(parts: Sequence[Part]) -> Part:
    """A claim made of several comparisons: one that fails decides; then missing records."""
    kinds = {p.kind for p in parts}
    kind = next((k for k in (FAILS, NOT_RUN, INCONCLUSIVE) if k in kinds), HOLDS)
    missing = list(dict.fromkeys(m for p in parts for m in p.missing))
    lines = [f"{p.kind}: {p.text}" for p in parts if not p.missing]
    if missing:  # said once, not once per comparison
        lines.append(f"{NOT_RUN}: no records of {'; '.join(missing)}")
    return Part(kind, "\n".join(lines), [r for p in parts for r in p.records], missing)


# -- the claims --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    key: str
    words: str
    source: str
    sweeps: tuple[str, ...]  # the sweeps (records' ``sweep``) whose records it needs
    test: Callable[[Records], Part]


OTHERS = ("sgd", "adam", "lamb")


def t1(task: str, optimizer: str) -> Arm:
    return Arm(f"{tables.OPT_LABELS.get(optimizer, optimizer)} on {task}", ("table1",), task,
               optimizer)


def table1_nero_best(rec: Records) -> Part:
    return all_of([better(rec, t1(task, "nero"), t1(task, o))
                   for task in TABLE1_TASKS for o in OTHERS])


def table1_runner_up_varies(rec: Records) -> Part:
    decided: dict[str, str] = {}  # task -> the runner-up, where it beats the other two
    parts = []
    for task in TABLE1_TASKS:
        evaluated = [evaluate(rec, t1(task, o)) for o in OTHERS]
        missing = _missing(rec, *evaluated)
        if missing:
            parts.append(missing)
            continue
        ok = [e for e in evaluated if e.values]
        if not ok:
            parts.append(Part(INCONCLUSIVE, f"{task}: SGD, Adam and LAMB all failed"))
            continue
        sign = 1.0 if GOAL[task] == "min" else -1.0
        best = min(ok, key=lambda e: sign * sum(e.values.values()) / len(e.values))
        beats = [better(rec, best.arm, e.arm) for e in evaluated if e is not best]
        part = all_of(beats)
        name = tables.OPT_LABELS.get(best.arm.optimizer, best.arm.optimizer)
        if part.kind == HOLDS:
            decided[task] = name
        parts.append(Part(HOLDS if part.kind == HOLDS else INCONCLUSIVE,
                          f"{task}: runner-up {name} "
                          f"({'decided' if part.kind == HOLDS else 'not separated'}):\n"
                          + part.text, part.records, part.missing))
    summary = all_of(parts)
    if len(set(decided.values())) >= 2:
        kind = HOLDS
    elif summary.kind == NOT_RUN:
        kind = NOT_RUN
    elif len(decided) == len(TABLE1_TASKS):
        kind = FAILS  # one optimiser is the runner-up, decisively, everywhere
    else:
        kind = INCONCLUSIVE
    text = (f"decided runner-ups: {', '.join(f'{t} {o}' for t, o in decided.items()) or 'none'}"
            f"\n{summary.text}")
    return Part(kind, text, summary.records, summary.missing)


def table1_nero_lr(rec: Records) -> Part:
    at_001, other, absent, used = [], [], [], []
    for task in TABLE1_TASKS:
        e = evaluate(rec, t1(task, "nero"))
        used += e.cell.records
        if e.cell.status == "missing" or 0.01 not in e.cell.lr_values:
            absent.append(t1(task, "nero").where() + ("" if e.cell.status == "missing"
                                                       else " at η=0.01"))
        elif e.cell.lr == 0.01:
            at_001.append(task)
        else:
            other.append(f"{task} (η={e.cell.lr:g})")
    text = (f"best at η=0.01: {len(at_001)} ({', '.join(at_001) or 'none'}); elsewhere: "
            f"{', '.join(other) or 'none'} [the lr is chosen on seed 0, as the paper did: "
            "no interval]")
    if len(at_001) >= 5:
        kind = HOLDS
    elif len(at_001) + len(absent) >= 5:
        kind = NOT_RUN
    else:
        kind = FAILS
    return Part(kind, text + (f"; no records of {'; '.join(absent)}" if absent else ""), used,
                absent if kind == NOT_RUN else [])


FIG1 = {"nero_none": "no constraint", "nero_mean": "mean only", "nero_norm": "norm only",
        "nero": "mean + norm"}


def fig_arm(sweep: str, optimizer: str, label: str) -> Arm:
    return Arm(label, (sweep,), "cifar10_vgg11", optimizer)


def fig1_both_constraints(rec: Records) -> Part:
    both = fig_arm("fig1", "nero", FIG1["nero"])
    return all_of([better(rec, both, fig_arm("fig1", o, FIG1[o])) for o in FIG1 if o != "nero"])


FIG2 = {"madam": "Madam", "nero_none": "Nero", "lamb": "LAMB", "madam_cs": "Madam (constrained)",
        "nero": "Nero (constrained)", "lamb_cs": "LAMB (constrained)"}
MADAM_MARGIN = 1.0  # points of test error: under a quarter of what the constraints give Nero


def fig2_arm(optimizer: str) -> Arm:
    return fig_arm("fig2", optimizer, FIG2[optimizer])


def fig2_constraints(rec: Records) -> Part:
    gains = [better(rec, fig2_arm("nero"), fig2_arm("nero_none")),
             better(rec, fig2_arm("lamb_cs"), fig2_arm("lamb"))]
    madam = better(rec, fig2_arm("madam_cs"), fig2_arm("madam"), margin=MADAM_MARGIN)
    # "not Madam": the gain is under the margin, which is the comparison above failing
    flipped = {HOLDS: FAILS, FAILS: HOLDS}.get(madam.kind, madam.kind)
    return all_of(gains + [Part(flipped, f"not Madam (its gain under {MADAM_MARGIN:g}), so the "
                                "comparison of gain > margin below must fail: " + madam.text,
                                madam.records, madam.missing)])


def fig2_nero_beats(rec: Records) -> Part:
    return all_of([better(rec, fig2_arm(n), fig2_arm(o))
                   for n, opponents in (("nero_none", ("madam", "lamb")),
                                        ("nero", ("madam_cs", "lamb_cs")))
                   for o in opponents])


def fig3_left(rec: Records) -> Part:
    def arm(sigma: float, epoch: int, lr: float | None) -> Arm:
        return Arm(f"σ={sigma:g}, epoch {epoch}", ("fig3_cwn",), "mnist_cwn", "adam",
                   () if sigma == 1.0 else (("task.sigma", sigma),),
                   at_epoch("train/acc", epoch), lr=lr)
    runs = rec.runs(sweeps=["fig3_cwn"], task="mnist_cwn", optimizer="adam")
    epochs = sorted({h["epoch"] for r in runs for h in r.history
                     if h.get("train/acc") is not None}) or [1]
    lr = evaluate(rec, arm(1.0, epochs[-1], None)).cell.lr  # both sigmas at sigma 1's lr
    return all_of([better(rec, arm(1.0, e, lr), arm(100.0, e, lr)) for e in epochs])


CHANCE = transfer.TRAINS_ABOVE  # one line for "at chance" on MNIST, declared in transfer
TRAINS = 0.5


def fig3_right(rec: Records) -> Part:
    def arm(optimizer: str) -> Arm:
        return Arm(tables.OPT_LABELS[optimizer], ("fig3_deep_mlp",), "mnist_mlp", optimizer)
    return all_of([side(rec, arm("nero"), TRAINS, above=True),
                   side(rec, arm("sgd"), CHANCE, above=False),
                   side(rec, arm("adam"), CHANCE, above=False)])


SGD_FACTOR = 1.5


def fig7_sgd_worse(rec: Records) -> Part:
    task = "multi30k_transformer"
    return all_of([better(rec, t1(task, o), t1(task, "sgd"), margin=math.log(SGD_FACTOR),
                          log=True) for o in ("nero", "adam", "lamb")])


def fig8_lamb_beta1(rec: Records) -> Part:
    return all_of([side(rec, Arm("LAMB β1=0", ("table1",), "pong_ppo", "lamb"), 0.0, above=False),
                   side(rec, Arm("LAMB β1=0.9", ("fig8",), "pong_ppo", "lamb_beta1"), 0.0,
                        above=True)])


FIG9 = {"sgd": ("SGD + wd", "sgd", ()),
        "sgd_no_wd": ("SGD, no wd", "sgd", (("optimizer.weight_decay", 0.0),)),
        "nero": ("Nero OOTB", "nero", ()),
        "nero_tuned": ("Nero tuned", "nero_tuned", (("task.bn_gain_penalty", 1e-4),))}
TRAIN_ERROR = last("train/top1_acc", -100.0, 100.0)


def fig9_arm(name: str, metric: Metric = final) -> Arm:
    label, optimizer, variant = FIG9[name]
    return Arm(label, ("fig9",), "imagenet_resnet50", optimizer, variant, metric)


def fig9_train(rec: Records) -> Part:
    return all_of([better(rec, fig9_arm("nero", TRAIN_ERROR), fig9_arm(o, TRAIN_ERROR))
                   for o in FIG9 if o != "nero"])


def fig9_val(rec: Records) -> Part:
    return all_of([better(rec, fig9_arm("sgd"), fig9_arm(o)) for o in FIG9 if o != "sgd"])


def fig9_tuned(rec: Records) -> Part:
    arms = {n: evaluate(rec, fig9_arm(n)) for n in ("nero_tuned", "nero", "sgd")}
    missing = _missing(rec, *arms.values())
    if missing:
        return missing
    used = [r for e in arms.values() for r in e.cell.records]
    if any(not e.values for e in arms.values()):
        return Part(INCONCLUSIVE, "; ".join(e.text() for e in arms.values()), used)
    # tuned - (OOTB + SGD)/2 < 0: tuned Nero is nearer SGD + wd than OOTB Nero, over half the gap
    got = stats.contrast([(1.0, arms["nero_tuned"].values), (-0.5, arms["nero"].values),
                          (-0.5, arms["sgd"].values)], paired=True)
    kind = HOLDS if got.below(0.0) else FAILS if got.above(0.0) else INCONCLUSIVE
    method = "paired by seed" if got.method == stats.PAIRED_METHOD else "Welch"
    return Part(kind, "; ".join(e.text() for e in arms.values())
                + f": tuned − (OOTB + SGD)/2 = {got.text()} (needed: below 0) [{method}]", used)


# Models whose optimiser state is counted (§4): the tasks' own, built from a run's config.
def _build_model(task: str, cfg: dict[str, Any]) -> torch.nn.Module | None:
    from tasks.experiments.models import cifar, mlp

    if task == "mnist_mlp":
        return mlp.DeepMLP(int(cfg["depth"]), int(cfg["width"]), inputs=784)
    if task == "mnist_cwn":
        return mlp.CWNMLP(int(cfg["depth"]), int(cfg["width"]), inputs=784,
                          sigma=float(cfg["sigma"]))
    if task in ("cifar10_vgg11", "cifar10_resnet18"):
        return cifar.build(str(cfg["arch"]), int(cfg["classes"]), float(cfg["width"]))
    return None


def state_elements(optimizer: torch.optim.Optimizer) -> int:
    """Numbers an optimiser keeps: every tensor's entries, 1 for every plain number."""
    import torch

    return sum(v.numel() if torch.is_tensor(v) else 1
               for state in optimizer.state.values() for v in state.values()
               if torch.is_tensor(v) or isinstance(v, int | float))


@cache
def _counted(task: str, scale: str, cfg_text: str) -> tuple[int, int, int]:
    """(parameters, Nero's state, Adam's state) of the task's model, Adam's counted one tensor
    at a time after a step with zero gradients (torch allocates it lazily)."""
    import torch

    from tasks.runner.optimizers import build_optimizer

    cfg = yaml.safe_load(cfg_text)
    torch.manual_seed(0)
    model = _build_model(task, cfg)
    params = [p for p in model.parameters() if p.requires_grad]

    def opt_cfg(name: str) -> dict[str, Any]:
        leaves = defaults_for(task, name, scale)
        return {k.split(".", 1)[1]: v for k, v in leaves.items() if k.startswith("optimizer.")
                and "." not in k.split(".", 1)[1]}

    nero = build_optimizer(params, opt_cfg("nero"))
    adam_elements = 0
    for p in params:
        adam = build_optimizer([p], opt_cfg("adam"))
        p.grad = torch.zeros_like(p)
        adam.step()
        adam_elements += state_elements(adam)
        p.grad = None
        del adam
    return sum(p.numel() for p in params), state_elements(nero), adam_elements


SEC4_SWEEPS = ("table1", "fig1", "fig3_cwn", "fig3_deep_mlp")


def sec4_memory(rec: Records) -> Part:
    texts, used, kinds = [], [], []
    for task in ("mnist_mlp", "mnist_cwn", "cifar10_vgg11", "cifar10_resnet18"):
        # only the sweeps the claim declares: an ad-hoc run is not one of the paper's settings
        runs = [r for r in rec.all if r.task == task and r.config
                and r.sweep in SEC4_SWEEPS]
        if not runs:
            continue
        r = max(runs, key=lambda x: str(x.finished_at))
        n, s_nero, s_adam = _counted(task, r.scale, yaml.safe_dump(
            dict(r.config["task"]), sort_keys=True))
        exponent = math.log(s_nero) / math.log(s_adam)
        # nearer 1/2 (a square root) than 1 (the same order as Adam's)
        kinds.append(HOLDS if exponent < 0.75 else FAILS)
        used.append(r)
        texts.append(f"{task}: {n} parameters; state elements Nero {s_nero}, Adam {s_adam} "
                     f"(√Adam = {math.sqrt(s_adam):.0f}); log Nero / log Adam = {exponent:.3f} "
                     "(needed: below 0.75, nearer a square root than the same order)")
    if not texts:
        return Part(NOT_RUN, "no records of a task whose model is counted here (mnist_mlp, "
                    "mnist_cwn, cifar10_vgg11, cifar10_resnet18) with its config")
    return all_of([Part(k, t + " [an exact count on the model, built from the run's config, "
                        "no training: no interval]", [u]) for k, t, u in zip(kinds, texts, used)])


def transfer_nero_lr(rec: Records) -> Part:
    """Across each series (widths at one depth, depths at one width), Nero's best lr moves
    fewer decades than Adam's and than SGD's. The best lr of a shape is its seed-0 run's, as the
    protocol picks it: no interval. A tie is inconclusive (the grid cannot separate them)."""
    sweep = transfer.collect(rec)
    absent = [o for o in ("nero", "adam", "sgd") if o not in sweep.scores]
    short = [name for name, s in (("widths", sweep.widths), ("depths", sweep.depths)) if len(s) < 2]
    if absent or short:
        missing = [f"{transfer.SWEEP}: {transfer.TASK}/{o}" for o in absent] + [
            f"{transfer.SWEEP}: two or more {name}" for name in short]
        return Part(NOT_RUN, "no records of " + "; ".join(missing), sweep.records, missing)
    parts = []
    for name, shapes in (("widths", sweep.widths), ("depths", sweep.depths)):
        nero = sweep.moves("nero", shapes)
        for o in ("adam", "sgd"):
            other = sweep.moves(o, shapes)
            if nero is None or other is None:
                kind = NOT_RUN
            else:
                kind = HOLDS if nero < other else FAILS if nero > other else INCONCLUSIVE
            parts.append(Part(kind, f"across {name} {', '.join(map(str, shapes))}: Nero's best lr "
                              f"moves {transfer.decades(nero)} decades, "
                              f"{tables.label(o)}'s {transfer.decades(other)} [seed 0: no "
                              "interval]", sweep.records))
    return all_of(parts)


CLAIMS: list[Claim] = [
    Claim("table1.nero_best", "Nero has the best validation result in every row of Table 1.",
          "§5.5, Table 1", ("table1",), table1_nero_best),
    Claim("table1.runner_up_varies", "The runner-up to Nero (the best of SGD, Adam and LAMB) "
          "varies across the tasks.", "§5.5, Table 1", ("table1",), table1_runner_up_varies),
    Claim("table1.nero_lr", "η = 0.01 is Nero's best lr in five of the six rows (here: at "
          "least five).", "§5.5, Table 1", ("table1",), table1_nero_lr),
    Claim("fig1.both_constraints", "With both constraints (mean and norm) on, Nero has the lowest "
          "test error on VGG-11 of the four constraint settings.", "Fig. 1, Appendix A",
          ("fig1",), fig1_both_constraints),
    Claim("fig2.constraints", "The constraints improve Nero and LAMB but not Madam (Madam's gain "
          f"under {MADAM_MARGIN:g} point of test error).", "Fig. 2, Appendix A", ("fig2",),
          fig2_constraints),
    Claim("fig2.nero_beats", "Nero beats Madam and LAMB, both without and with the constraints.",
          "Fig. 2, Appendix A", ("fig2",), fig2_nero_beats),
    Claim("fig3_left.sigma", "With centred weight normalisation and Adam at one lr (the paper's "
          "0.01), σ = 100 trains worse than σ = 1 in every epoch (mean minibatch training "
          "accuracy).",
          "Fig. 3 (left)", ("fig3_cwn",), fig3_left),
    Claim("fig3_right.deep_mlp", f"Nero trains the 100-layer MLP (training accuracy above "
          f"{TRAINS:g}); SGD and Adam stay at chance (below {CHANCE:g}).", "Fig. 3 (right)",
          ("fig3_deep_mlp",), fig3_right),
    Claim("fig7.sgd_worse", "SGD is much worse than the normalised optimisers (Nero, Adam, LAMB) "
          f"on translation: its validation perplexity over {SGD_FACTOR:g}× each one's.",
          "Fig. 7", ("table1",), fig7_sgd_worse),
    Claim("fig8.lamb_beta1", "LAMB with β1 = 0 fails on Pong (final reward below 0) and with "
          "β1 = 0.9 learns it (above 0).", "Fig. 8", ("table1", "fig8"), fig8_lamb_beta1),
    Claim("fig9.train", "Out-of-the-box Nero has the best training top-1 error on ImageNet.",
          "Fig. 9, §5.6", ("fig9",), fig9_train),
    Claim("fig9.val", "SGD with weight decay has the best validation top-1 error on ImageNet.",
          "Fig. 9, §5.6", ("fig9",), fig9_val),
    Claim("fig9.tuned", "Tuned Nero closes most (over half) of out-of-the-box Nero's validation "
          "gap to SGD with weight decay.", "Fig. 9, §5.6", ("fig9",), fig9_tuned),
    Claim("transfer.nero_lr_moves_less", "Nero's best lr moves less across width and depth "
          "than Adam's and SGD's (its \"little to no learning rate tuning\", as the network "
          "grows; beyond the paper).", "abstract, §5", (transfer.SWEEP,), transfer_nero_lr),
    Claim("sec4.memory", "Nero's optimiser state is about the square root of Adam's.",
          "§1, §4", SEC4_SWEEPS, sec4_memory),
]


# -- verdicts and files ------------------------------------------------------------------------
Makers = dict[str, tuple[str, str]]  # records' sweep -> (experiment config, reproduce.py artefact)


def how_to_run(sweeps: Iterable[str], makers: Makers) -> str:
    return "; ".join(
        f"`python scripts/reproduce.py --artefacts {makers[s][1]}` (conf/experiment/"
        f"{makers[s][0]}.yaml)" if s in makers else f"sweep {s}" for s in dict.fromkeys(sweeps))


@dataclass
class Verdict:
    claim: Claim
    kind: str
    label: str  # "evidence", why not ("smoke: not evidence") or its caveat (a shortened run)
    records: str  # scale, hardware, seeds and shared settings of the records
    detail: str
    run: str  # for "not run": the sweep that makes the records

    @property
    def shown(self) -> str:
        return self.kind if self.label == "evidence" else f"{self.kind} ({self.label})"


def _settings(records: list[Record]) -> tuple[str, str | None]:
    """The settings all the records share that are not the paper's, and the caveat a shortened
    run puts on the verdict (e.g. "first 10 of the paper's 50 epochs")."""
    shared = tables._shared_variant(records)
    parts, caveat = [], None
    for k, v in sorted(shared.items()):
        text = f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        if k == "task.epochs":
            r = records[0]
            full = defaults_for(r.task, r.optimizer, r.scale).get(k)
            if full is not None and full != v:
                caveat = f"first {v:g} of the paper's {full:g} epochs"
                text += f" ({caveat}: the verdict is on those epochs only)"
        parts.append(text)
    return ("; not the paper's settings: " + ", ".join(parts)) if parts else "", caveat


def judge(claim: Claim, rec: Records, makers: Makers) -> Verdict:
    """The claim's verdict on the records; ``makers`` (registry.makers()) names, for a claim
    not run, the command that makes its records."""
    part = claim.test(rec)
    used = list({id(r): r for r in part.records}.values())
    scales = sorted({r.scale for r in used})
    hardware = sorted({str(r.hardware or r.device) for r in used})
    seeds = sorted({r.seed for r in used})
    settings, caveat = _settings(used) if used else ("", None)
    records = (f"scale {', '.join(scales)}; hardware {'; '.join(hardware)}; seeds "
               f"{', '.join(map(str, seeds))}{settings}" if used else "none")
    others = [s for s in scales if s != "paper"]
    label = f"{', '.join(others)}: not evidence" if others else caveat or "evidence"
    run = ""
    if part.kind == NOT_RUN:
        sweeps = [m.split(":")[0].split("/")[0] for m in part.missing] or list(claim.sweeps)
        run = "run " + how_to_run(sweeps, makers)
        elsewhere = sorted({"--variant " + ",".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.variant.items())
                            for r in rec.all for m in part.missing
                            if m.startswith(f"{r.sweep}: {r.task}/{r.optimizer}")
                            and r.variant and not any(k in m for k in r.variant)})
        if elsewhere:
            run += ("; records of these configurations exist with other settings: "
                    f"scripts/aggregate.py {' / '.join(elsewhere)}")
    return Verdict(claim, part.kind, label, records, part.text, run)


def verdicts(rec: Records, makers: Makers) -> list[Verdict]:
    return [judge(c, rec, makers) for c in CLAIMS]


def suffix(rec: Records) -> str:
    """Files of a --variant aggregation sit beside the default ones, never over them."""
    return "".join(f"_{k}={v}" for k, v in sorted(rec.shift.items()))


METHODS = [
    f"Cell means: {stats.T_METHOD}.",
    f"Differences between two configurations: {stats.PAIRED_METHOD} where they share their "
    "seeds and the task's data order (every task's batches are a function of the seed; Pong's "
    f"episodes depend on the policy); {stats.WELCH_METHOD} otherwise.",
    f"Seeds to separate: {stats.POWER_METHOD}.",
    "Best lr: chosen on seed 0's run as the paper did (selection.py); the intervals are over "
    "the seeds at that lr, so they leave the lr choice's own noise out.",
    "A verdict holds when every interval of the claim lies on its side, does not hold when one "
    "lies wholly on the other, and is inconclusive otherwise (one seed: no interval).",
]


def profile_rows(rec: Records, optimizers: Optimizers) -> list[list[str]]:
    """The performance profile (tables.performance_profile) at a few τ, each point with the
    range it takes when every cell's mean moves within its 95% t-interval (interval
    arithmetic on the distances to the perfect score: an envelope, not a joint 95% band)."""
    table = tables.table1(rec, optimizers)
    gaps: dict[str, dict[str, tuple[float, float, float]]] = {}
    for task in table.tasks:
        perfect = float(task["perfect"])
        for o in table.optimizers:
            c = table.cells[(task["task"], o)]
            if not c.ok:
                continue
            ci = stats.interval([r.final for r in c.records if usable(r)])
            ends = (ci.low, ci.high) if ci.known else (ci.mean, ci.mean)
            dist = [abs(x - perfect) for x in ends]
            low = 0.0 if min(ends) <= perfect <= max(ends) else min(dist)
            gaps.setdefault(task["task"], {})[o] = (
                max(abs(ci.mean - perfect), 1e-12), max(low, 1e-12), max(dist))
    rows = []
    for tau in (1.0, 1.1, 1.25, 1.5, 2.0, 4.0):
        for o in table.optimizers:
            point = lower = upper = 0
            for g in gaps.values():
                if o not in g:
                    continue
                mine = g[o]
                point += mine[0] <= tau * min(v[0] for v in g.values())
                # worst case: ours at its far end, the others at their near ends; best: reversed
                lower += mine[2] <= tau * min(v[1] if p != o else mine[2] for p, v in g.items())
                upper += mine[1] <= tau * min(v[2] if p != o else mine[1] for p, v in g.items())
            n = len(gaps)
            rows.append([f"{tau:g}", tables.label(o), f"{point / n:.2f}" if n else "—",
                         f"[{lower / n:.2f}, {upper / n:.2f}]" if n else "—"])
    return rows


def write(vs: list[Verdict], folder: Path, name: str, profile: list[list[str]],
          shift: dict[str, Any]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    setting = (" Drawn with `--variant " + ",".join(f"{k}={v}" for k, v in shift.items())
               + "`: every record has these settings." if shift else "")
    lines = ["# The paper's claims, checked against our records", "",
             "One verdict per claim: holds, does not hold, inconclusive (the interval allows "
             "both) or not run (records missing: the sweep that makes them is named). "
             "A verdict on records not at paper scale is labelled not evidence." + setting, "",
             "Statistics:", ""] + [f"- {m}" for m in METHODS] + [
             "", "| claim | source | verdict | records |", "|---|---|---|---|"]
    lines += [f"| {v.claim.key}: {v.claim.words} | {v.claim.source} | **{v.shown}** | "
              f"{v.records} |" for v in vs]
    for v in vs:
        lines += ["", f"## {v.claim.key}: {v.shown}", "", f"{v.claim.words} ({v.claim.source})",
                  "", f"Records: {v.records}.", ""]
        lines += [f"- {line}" for line in v.detail.splitlines()]
        if v.run:
            lines += ["", f"To run: {v.run}."]
    lines += ["", "## Performance profile over the Table 1 tasks, with intervals", "",
              "Fraction of tasks on which the optimiser is within τ of the best (distance to "
              "the perfect score, tables.performance_profile), at the cells' means; the range "
              "is the profile's extent when every cell's mean moves within its 95% "
              "t-interval (interval arithmetic: an envelope, not a joint 95% band).", "",
              "| τ | optimiser | fraction | range |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in profile if r[2] != "—"] or [
        "", "No records of the table1 sweep: no profile."]
    md = folder / f"{name}.md"
    md.write_text("\n".join(lines) + "\n")
    path = folder / f"{name}.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["claim", "source", "words", "verdict", "label", "records", "detail", "run"])
        for v in vs:
            w.writerow([v.claim.key, v.claim.source, v.claim.words, v.kind, v.label, v.records,
                        v.detail, v.run])
    return [md, path]


def artefact(rec: Records, out: Path, optimizers: Optimizers, makers: Makers) -> Outcome:
    """The ``claims`` artefact: claims.md and claims.csv (with a suffix under --variant)."""
    vs = verdicts(rec, makers)
    outcome = Outcome("claims", missing=[v.claim.key for v in vs if v.kind == NOT_RUN])
    if len(outcome.missing) == len(vs):  # as every other artefact: nothing to say, no file
        outcome.skipped = "no records of any claim's sweeps"
        return outcome
    outcome.files = write(vs, out / "claims", "claims" + suffix(rec),
                          profile_rows(rec, optimizers), rec.shift)
    return outcome


def unlisted(folder: Path) -> list[str]:
    """The claims that a claims.csv in ``folder`` does not give a verdict (the demo's check)."""
    path = folder / "claims.csv"
    if not path.is_file():
        return [c.key for c in CLAIMS]
    with open(path, newline="") as f:
        got = {row["claim"]: row["verdict"] for row in csv.DictReader(f)}
    return [c.key for c in CLAIMS if got.get(c.key) not in KINDS]
