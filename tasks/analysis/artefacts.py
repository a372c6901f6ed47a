"""One generator per artefact of the paper, each from the records of its sweeps.

=============  ===================================================  ============================
artefact       what it shows                                        records (sweep: task)
=============  ===================================================  ============================
table1         Table 1, beside the paper's numbers                  table1: the six tasks
appendix_a     the appendix table (fine lr grid)                    fig1, fig2: cifar10_vgg11
fig1           constraint ablation: train / test error per epoch    fig1: cifar10_vgg11
fig2           Madam, Nero, LAMB without and with constraints      fig2: cifar10_vgg11
fig3_left      per-minibatch train accuracy, sigma 1 vs 100         fig3_cwn: mnist_cwn
fig3_right     100-layer MLP, train accuracy per epoch              fig3_deep_mlp: mnist_mlp
fig4 ... fig7  cGAN FID; VGG-11 and ResNet-18; Wikitext-2; Multi30k table1
fig8           Pong reward, with LAMB beta1 = 0.9                   table1, fig8: pong_ppo
fig9           ImageNet train / validation top-1 error              fig9: imagenet_resnet50
lr_sensitivity final metric against lr per task (beyond the paper)  table1
profile        performance profile over the tasks (beyond)          table1
claims         every claim's verdict, with intervals (beyond)       all of the above
=============  ===================================================  ============================

Every curve is one configuration at its best lr (chosen on seed 0 as the paper did), the mean
over its seeds with the min-max band. Each artefact gets a folder with its files (PNG and PDF, or
Markdown/CSV/LaTeX tables) and a ``comparison.md``: our value, the paper's (or the authors' logs')
and the difference, wherever they give one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import figures, published, selection, tables
from .selection import Cell, Record, Records

Entry = dict[str, Any]
Optimizers = tuple[str, ...]
PAPER: Optimizers = tables.TABLE1_OPTIMIZERS  # the columns of the paper's Table 1


@dataclass
class Outcome:
    name: str
    files: list[Path] = field(default_factory=list)
    skipped: str | None = None  # why nothing was written
    missing: list[str] = field(default_factory=list)  # curves or cells without records


@dataclass(frozen=True)
class Curve:
    """One line of a figure: a configuration of a sweep, at its best lr."""

    label: str
    sweeps: tuple[str, ...]
    task: str
    optimizer: str
    variant: tuple[tuple[str, Any], ...] = ()  # e.g. (("task.sigma", 100.0),)
    color: str | None = None
    lr: float | None = None  # a configuration run at one given lr (no lr grid); None: the best


@dataclass(frozen=True)
class Panel:
    ylabel: str
    value: Callable[[Entry], float | None]
    log: bool = False
    headline: bool = False  # the task's headline metric: where the paper's numbers go


def key(name: str) -> Callable[[Entry], float | None]:
    return lambda e: e.get(name)


def error_from(acc_key: str) -> Callable[[Entry], float | None]:
    return lambda e: None if e.get(acc_key) is None else 100.0 * (1.0 - e[acc_key])


def perplexity_from(loss_key: str) -> Callable[[Entry], float | None]:
    return lambda e: None if e.get(loss_key) is None else math.exp(min(e[loss_key], 50.0))


def cifar_train_error(e: Entry) -> float | None:
    # the authors' metric when it was computed (task.eval_train), else the running accuracy
    return error_from("train_eval/acc")(e) if "train_eval/acc" in e else error_from("train/acc")(e)


TASKS = {t["task"]: t for t in published.tasks()}
GOAL = {name: t["goal"] for name, t in TASKS.items()} | {
    "mnist_mlp": "max", "mnist_cwn": "max", "imagenet_resnet50": "min"}
Paper = dict[tuple[str, str], tuple[float, float]]  # (task, curve label) -> final (mean, std)
PANELS: dict[str, list[Panel]] = {
    "cifar10_cgan": [Panel("FID (train)", key("fid/train")),
                     Panel("FID (test)", key("fid/test"), headline=True)],
    "cifar10_vgg11": [Panel("training error (%)", cifar_train_error),
                      Panel("test error (%)", key("top1_error"), headline=True)],
    "wikitext2_transformer": [Panel("training perplexity", perplexity_from("train/loss"), log=True),
                              Panel("validation perplexity", key("val_ppl"), log=True,
                                    headline=True)],
    "multi30k_transformer": [Panel("training perplexity (label-smoothed)",
                                   perplexity_from("train/loss"), log=True),
                             Panel("validation perplexity", key("val_ppl"), log=True,
                                   headline=True)],
    "pong_ppo": [Panel("reward (last 10 training episodes)", key("reward"), headline=True)],
    "imagenet_resnet50": [Panel("training top-1 error (%)", error_from("train/top1_acc")),
                          Panel("validation top-1 error (%)", key("top1_error"), headline=True)],
    "mnist_mlp": [Panel("training accuracy", key("train/acc"), headline=True),
                  Panel("test accuracy", key("test_acc"))],
}
PANELS["cifar10_resnet18"] = PANELS["cifar10_vgg11"]
XLABEL = {"pong_ppo": "PPO update"}


def table1_curves(task: str, optimizers: tuple[str, ...] = tables.TABLE1_OPTIMIZERS) -> list[Curve]:
    return [Curve(tables.label(o), ("table1",), task, o, color=figures.COLORS.get(o))
            for o in optimizers]


def points(cell: Cell, panel: Panel) -> list[list[tuple[float, float]]]:
    """Per seed at the cell's lr: (epoch, value) wherever the panel's value was recorded."""
    out = []
    for r in cell.records:
        if r.status != "ok":
            continue
        pts = [(e["epoch"], panel.value(e)) for e in r.history]
        out.append([(x, y) for x, y in pts if y is not None and math.isfinite(y)])
    return out


def fmt(mean: float | None, std: float | None = None, digits: int = 3) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}g}" + ("" if std is None else f" ± {std:.{digits}g}")


def write_comparison(folder: Path, title: str, caption: str, header: list[str],
                     rows: list[list[str]], notes: list[str] = (),
                     name: str = "comparison.md") -> Path:
    lines = [f"# {title}", "", caption, "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def diff(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return "—"
    return f"{ours - theirs:+.4f}" if abs(theirs) < 2 else f"{ours - theirs:+.2f}"


# -- figures of curves ---------------------------------------------------------------------------
def curve_cell(rec: Records, curve: Curve) -> Cell:
    """A curve's configuration at its best lr, or at its own lr where it has one."""
    runs = rec.runs(sweeps=curve.sweeps, task=curve.task, optimizer=curve.optimizer,
                    variant=dict(curve.variant))
    if curve.lr is not None:
        runs = [r for r in runs if r.lr == curve.lr]
    return selection.cell(curve.task, curve.optimizer, runs, GOAL[curve.task])


def curves_figure(name: str, title: str, rows: list[tuple[str, list[Curve]]], rec: Records,
                  out: Path, paper: Paper | None = None,
                  hline: tuple[float, str] | None = None,
                  marks: Marks | None = None) -> Outcome:
    """Rows of panels (one panel per metric of the row's task), one band per curve.

    ``paper``: the paper's final (mean, std) of a curve's headline metric, drawn on the headline
    panel at our last epoch and listed in comparison.md. ``marks``: the authors' values at
    single epochs of a curve, drawn on its headline panel up to our last epoch."""
    marks = marks or {}
    paper = paper or {}
    # Runs cut short (aggregate.py --variant task.epochs=N) end before the paper's: its final
    # values are listed, but neither drawn at our last epoch nor subtracted from ours.
    shortened = rec.shift.get("task.epochs")
    outcome = Outcome(name)
    n_cols = max(len(PANELS[curves[0].task]) for _, curves in rows)
    fig, axes = figures.grid(len(rows), n_cols)
    used: list[Record] = []
    table: list[list[str]] = []
    sources: set[str] = set()  # sweep: task of the curves without records
    for (row_title, curves), row_axes in zip(rows, axes):
        task = curves[0].task
        panels = PANELS[task]
        for panel, ax in zip(panels, row_axes):
            last_x = None
            for curve in curves:
                cell = curve_cell(rec, curve)
                if panel is panels[0] and not cell.records:
                    outcome.missing.append(f"{curve.label} ({'/'.join(curve.sweeps)}: {task})")
                    sources.add(f"{'/'.join(curve.sweeps)}: {task}")
                pts = points(cell, panel)
                label = f"{curve.label} (η={cell.lr:g}, n={len(cell.seeds)})" if cell.lr else curve.label
                if figures.band(ax, pts, label, curve.color):
                    last_x = max(last_x or 0, max(p[0] for s in pts for p in s if s))
                theirs = paper.get((task, curve.label))
                if panel.headline and theirs and last_x and not shortened:
                    figures.paper_marker(ax, last_x, *theirs, label="paper (final)",
                                         color=curve.color)
                legend, pts_theirs = marks.get((task, curve.label), ("", []))
                shown = [(x, y) for x, y in pts_theirs if last_x and x <= last_x]
                if panel.headline and shown:
                    ax.errorbar(*zip(*shown), label=legend, **{
                        **figures.PAPER_STYLE, "marker": "o", "markerfacecolor": curve.color})
                if panel is panels[0]:
                    used += cell.records
                if panel.headline:
                    table.append([row_title or TASKS.get(task, {}).get("model", task), curve.label,
                                  f"{cell.lr:g}" if cell.lr else "—", fmt(cell.mean, cell.std),
                                  fmt(*theirs) if theirs else "not published",
                                  diff(cell.mean, theirs[0] if theirs and not shortened else None)])
            if hline is not None and panel.headline:
                ax.axhline(hline[0], color="black", linestyle="--", linewidth=0.8, label=hline[1])
            figures.finish_axes(ax, XLABEL.get(task, "epoch"), panel.ylabel, panel.log)
            if row_title:
                ax.set_title(row_title, fontsize=9)
        for ax in row_axes[len(panels):]:
            ax.set_visible(False)
    if not used:
        figures.close(fig)
        outcome.skipped = "no records of " + ", ".join(sorted(sources))
        return outcome
    caption = tables.caption(used)
    outcome.files += figures.save(fig, out / name / name, title, caption)
    notes = [f"Our runs stop at epoch {shortened} (task.epochs={shortened}); the paper's values "
             "are at the end of its full runs, so no difference is taken."] if shortened else []
    outcome.files.append(write_comparison(
        out / name, f"{name}: our final values beside the paper's", caption,
        ["model", "curve", "best η (ours)", "ours (mean ± std)", "paper", "Δ"], table, notes))
    return outcome


# (task, curve label) -> (legend label, the authors' (epoch, value) points)
Marks = dict[tuple[str, str], tuple[str, list[tuple[float, float]]]]


def table1_paper(*tasks: str) -> Paper:
    pub = published.table1()
    return {(t, tables.OPT_LABELS[o]): (pub[(t, o)]["mean"], pub[(t, o)]["std"])
            for t in tasks for o in tables.TABLE1_OPTIMIZERS if (t, o) in pub}


def fig1(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    labels = {"nero_none": "no constraint", "nero_mean": "mean", "nero_norm": "norm",
              "nero": "mean + norm"}
    colors = {"nero_none": "tab:gray", "nero_mean": "tab:blue", "nero_norm": "tab:green",
              "nero": "tab:red"}
    curves = [Curve(labels[o], ("fig1",), "cifar10_vgg11", o, color=colors[o]) for o in labels]
    app = {r["optimizer"]: (float(r["mean"]), float(r["std"])) for r in published.appendix_a()}
    return curves_figure("fig1", "Fig. 1: Nero's constraints ablated (VGG-11, CIFAR-10)",
                         [("", curves)], rec, out,
                         {("cifar10_vgg11", labels[o]): app[o] for o in labels})


def fig2(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    app = {r["optimizer"]: (float(r["mean"]), float(r["std"])) for r in published.appendix_a()}
    rows, paper = [], {}
    for title, opts in (("without constraints", ("madam", "nero_none", "lamb")),
                        ("with constraints", ("madam_cs", "nero", "lamb_cs"))):
        curves = []
        for o in opts:
            family = o.split("_")[0]
            label = f"{tables.OPT_LABELS.get(family, family.title())}" + (
                " (constrained)" if title.startswith("with ") else "")
            curves.append(Curve(label, ("fig2",), "cifar10_vgg11", o,
                                color=figures.COLORS[family]))
            paper[("cifar10_vgg11", label)] = app[o]
        rows.append((title, curves))
    return curves_figure("fig2", "Fig. 2: per-synapse (Madam), per-neuron (Nero) and per-layer "
                         "(LAMB) updates (VGG-11)", rows, rec, out, paper)


def fig4(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    return curves_figure("fig4", "Fig. 4: class-conditional GAN on CIFAR-10 (equal lr for G and D)",
                         [("", table1_curves("cifar10_cgan", optimizers))], rec, out,
                         table1_paper("cifar10_cgan"))


def fig5(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    return curves_figure("fig5", "Fig. 5: CIFAR-10 classification",
                         [("VGG-11", table1_curves("cifar10_vgg11", optimizers)),
                          ("ResNet-18", table1_curves("cifar10_resnet18", optimizers))], rec, out,
                         table1_paper("cifar10_vgg11", "cifar10_resnet18"))


def fig6(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    return curves_figure("fig6", "Fig. 6: Wikitext-2 language model (19-tensor transformer)",
                         [("", table1_curves("wikitext2_transformer", optimizers))], rec, out,
                         table1_paper("wikitext2_transformer"))


def fig7(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    outcome = curves_figure("fig7", 'Fig. 7: the "WMT16 En-De" transformer, really Multi30k '
                            "de->en (121 tensors)",
                            [("", table1_curves("multi30k_transformer", optimizers))],
                            rec, out, table1_paper("multi30k_transformer"))
    if outcome.skipped:
        return outcome
    # Every run of the authors' logs beside ours at the same lr and seed.
    rows = []
    for log in published.fig7_logs():
        ours = [r for r in rec.runs(sweeps=["table1"], task="multi30k_transformer",
                                    optimizer=str(log["optimizer"]))
                if r.lr == log["lr"] and r.seed == log["seed"]]
        value = ours[0].final if ours else None
        rows.append([str(log["optimizer"]), f"{log['lr']:g}", str(log["seed"]),
                     fmt(value) if ours else "no run", f"{log['val_ppl']:.4g} ({log['epochs']} ep.)",
                     diff(value, float(log["val_ppl"]))])
    path = out / "fig7" / "comparison.md"
    text = path.read_text()
    text += ("\n## Every run of the authors' logs\n\nFinal validation perplexity, ours and theirs "
             "(their lr-search runs at seed 0, then seeds 1-2 at the best lr; runs that diverged "
             "to infinity are not listed).\n\n| optimiser | η | seed | ours | logs | Δ |\n"
             "|---|---|---|---|---|---|\n" + "\n".join("| " + " | ".join(r) + " |" for r in rows))
    path.write_text(text + "\n")
    return outcome


def fig8(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    curves = table1_curves("pong_ppo", optimizers) + [
        Curve("LAMB β1=0.9", ("fig8",), "pong_ppo", "lamb_beta1", color="tab:pink")]
    return curves_figure("fig8", "Fig. 8: PPO on Atari Pong (LAMB with beta1 = 0 and 0.9)",
                         [("", curves)], rec, out, table1_paper("pong_ppo"))


def fig9(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    curves = [Curve("SGD + wd", ("fig9",), "imagenet_resnet50", "sgd", color="tab:blue"),
              Curve("SGD, no wd", ("fig9",), "imagenet_resnet50", "sgd",
                    (("optimizer.weight_decay", 0.0),), color="tab:cyan"),
              # Two out-of-the-box cells (gap 30): the lr the authors' script passes, and the
              # one their README gives; each its own curve, never the better of the two.
              Curve("Nero OOTB (script, lr 0.1)", ("fig9",), "imagenet_resnet50", "nero",
                    color="tab:red", lr=0.1),
              Curve("Nero OOTB (README, lr 0.01)", ("fig9",), "imagenet_resnet50", "nero",
                    color="tab:pink", lr=0.01),
              Curve("Nero tuned", ("fig9",), "imagenet_resnet50", "nero_tuned",
                    (("task.bn_gain_penalty", 1e-4),), color="tab:orange")]
    return curves_figure("fig9", "Fig. 9: ResNet-50 on ImageNet", [("", curves)], rec, out,
                         hline=(23.7, "76.3% accuracy, which SGD + wd surpassed (paper)"))


# Two accuracies over MNIST's 60 000 training images that differ by less than half an image are
# the same count: ours is a mean of float32 per-batch accuracies (off by ~1e-8), theirs exact.
SAME_ACC = 0.5 / 60_000


def against_range(value: float, low: float, high: float) -> tuple[str, float]:
    """Where a value lies against [low, high]: inside, above or below, and by how much (signed,
    0 inside)."""
    if value > high + SAME_ACC:
        return "above", value - high
    if value < low - SAME_ACC:
        return "below", value - low
    return "inside", 0.0


def acc4(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def epoch_spans(epochs: list[int]) -> str:
    """1, 2, 3, 5 -> "1-3, 5"."""
    spans: list[list[int]] = []
    for e in epochs:
        if spans and e == spans[-1][-1] + 1:
            spans[-1].append(e)
        else:
            spans.append([e])
    return ", ".join(f"{s[0]}-{s[-1]}" if len(s) > 1 else str(s[0]) for s in spans)


def train_curve(r: Record) -> list[tuple[int, float]]:
    """A record's (epoch, training accuracy), where it was recorded."""
    return [(int(e["epoch"]), float(e["train/acc"])) for e in r.history
            if e.get("train/acc") is not None and math.isfinite(e["train/acc"])]


def fig3_right(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    """Per optimiser: our runs at the authors' chosen lr against their three seeds (band and
    mean), epoch by epoch; below, their lr search (seed 0) beside ours at the same lrs. Every run
    of their pickles comes from results/published/fig3_right_runs.csv."""
    outcome = Outcome("fig3_right")
    theirs = published.fig3_right()
    fig, axes = figures.grid(2, len(optimizers))
    used: list[Record] = []
    per_epoch: list[list[str]] = []
    summary: list[str] = []
    finals: list[list[str]] = []
    search_rows: list[list[str]] = []
    for o, ax_seeds, ax_search in zip(optimizers, axes[0], axes[1]):
        label, color = tables.label(o), figures.COLORS.get(o)
        ours = sorted((r for r in rec.runs(sweeps=["fig3_deep_mlp"], task="mnist_mlp", optimizer=o)
                       if r.status == "ok"), key=lambda r: (r.lr, r.seed))
        if not ours:
            outcome.missing.append(f"{label} (fig3_deep_mlp: mnist_mlp)")
        used += ours
        seeds = [r for r in theirs if r.optimizer == o and r.stage == "seeds"]
        lr = seeds[0].lr if seeds else None
        # -- top: the seed repeats at the authors' chosen lr
        if seeds:
            figures.seed_range(ax_seeds, [r.train_acc for r in seeds],
                               f"authors, seeds {', '.join(str(r.seed) for r in seeds)}", color)
        for i, r in enumerate(x for x in ours if x.lr == lr and train_curve(x)):
            curve = train_curve(r)
            ax_seeds.plot(*zip(*curve), color="black", linewidth=1.0, zorder=4,
                          marker=figures.MARKERS[i % len(figures.MARKERS)], markersize=3,
                          label=f"ours, seed {r.seed}")
            where: dict[str, list[tuple[int, float]]] = defaultdict(list)
            for epoch, value in curve:
                if epoch > min(len(s.train_acc) for s in seeds):
                    break
                at = [s.train_acc[epoch - 1] for s in seeds]
                side, by = against_range(value, min(at), max(at))
                where[side].append((epoch, by))
                per_epoch.append([label, f"{lr:g}", str(r.seed), str(epoch), f"{value:.4f}",
                                  f"{min(at):.4f}", f"{sum(at) / len(at):.4f}", f"{max(at):.4f}",
                                  side if side == "inside" else f"{side}: {by:+.4f}"])
            parts = []
            for side in ("inside", "above", "below"):
                if where[side]:
                    text = f"{side} at epoch{'s' if len(where[side]) > 1 else ''} " + epoch_spans(
                        [e for e, _ in where[side]])
                    if side != "inside":
                        worst = max(where[side], key=lambda p: abs(p[1]))
                        text += f" (by up to {worst[1]:+.4f}, epoch {worst[0]})"
                    parts.append(text)
            n = sum(len(v) for v in where.values())
            summary.append(f"{label} (η={lr:g}), our seed {r.seed}, {n} epochs: "
                           + "; ".join(parts) + ".")
            if curve and curve[-1][0] == len(seeds[0].train_acc):
                test = [h.get("test_acc") for h in r.history if h["epoch"] == curve[-1][0]][0]
                at = [s.test_acc for s in seeds]
                side, by = against_range(test, min(at), max(at)) if test is not None else ("—", 0.0)
                finals.append([label, f"{lr:g}", str(r.seed), acc4(test),
                               f"{min(at):.4f}-{max(at):.4f}",
                               side if side in ("inside", "—") else f"{side}: {by:+.4f}"])
        ax_seeds.set_title(f"{label}, η={lr:g} (the authors' choice)" if lr else label, fontsize=9)
        # -- bottom: the lr search, seed 0
        search = sorted((r for r in theirs if r.optimizer == o and r.stage == "lr_search"),
                        key=lambda r: r.lr)
        lrs = sorted({r.lr for r in search} | {r.lr for r in ours if r.seed == 0})
        shade = dict(zip(lrs, figures.shades(len(lrs))))
        for i, eta in enumerate(lrs):
            mark = figures.MARKERS[i % len(figures.MARKERS)]
            run = next((r for r in search if r.lr == eta), None)
            if run:
                # staggered hollow markers: runs on the same chance-level line stay visible
                ax_search.plot(range(1, len(run.train_acc) + 1), run.train_acc, color=shade[eta],
                               linestyle="--", linewidth=1.0, marker=mark, markersize=4,
                               markevery=(i, len(lrs) * 2), markerfacecolor="white",
                               label=f"authors, η={eta:g}")
            mine = next((r for r in ours if r.lr == eta and r.seed == 0
                         and train_curve(r)), None)
            if mine:
                curve = train_curve(mine)
                ax_search.plot(*zip(*curve), color=shade[eta], linewidth=1.2, marker=mark,
                               markersize=3, zorder=4, label=f"ours, η={eta:g}")
            if run:
                last = train_curve(mine)[-1] if mine else None
                test = next((h.get("test_acc") for h in mine.history
                             if h["epoch"] == last[0]), None) if last else None
                full = last is not None and last[0] == len(run.train_acc)
                theirs_then = (run.train_acc[last[0] - 1]
                               if last and last[0] <= len(run.train_acc) else None)
                search_rows.append([
                    label, f"{eta:g}", f"{run.train_acc[-1]:.4f}", f"{run.test_acc:.4f}",
                    str(last[0]) if last else "no run", acc4(last[1] if last else None),
                    acc4(theirs_then),
                    diff(last[1], theirs_then) if last and theirs_then is not None else "—",
                    acc4(test), diff(test, run.test_acc) if full else "—"])
        ax_search.set_title(f"{label}: lr search, seed 0", fontsize=9)
        for ax in (ax_seeds, ax_search):
            ax.set_ylim(0.0, 1.0)
            ax.set_xlim(0, 51)
            figures.finish_axes(ax, "epoch", "training accuracy")
            if ax.get_legend():  # placed where it covers the fewest points ("best")
                for t in ax.get_legend().get_texts():
                    t.set_fontsize(6)
    if not used:
        figures.close(fig)
        outcome.skipped = "no records of fig3_deep_mlp: mnist_mlp"
        return outcome
    caption = tables.caption(used)
    outcome.files += figures.save(
        fig, out / "fig3_right" / "fig3_right", "Fig. 3 (right): a 100-layer MLP on MNIST, no batch "
        "norm or skip connections; ours (solid) beside the authors' runs (dashed; their pickles)",
        caption)
    shortened = rec.shift.get("task.epochs")
    n_theirs = max(len(r.train_acc) for r in theirs)  # the epochs of their runs (50)
    chosen = {r.optimizer: r.lr for r in theirs if r.stage == "seeds"}
    twice = [tables.label(o) for o in optimizers  # their seed 0 at the chosen lr, in both pickles
             if len({r.train_acc for r in theirs
                     if r.optimizer == o and r.seed == 0 and r.lr == chosen.get(o)}) > 1]
    lines = [
        "# fig3_right: ours beside the authors' runs, epoch by epoch", "", caption, "",
        f"Theirs: the {len(theirs)} runs of the authors' two pickles "
        "(`results/published/fig3_right_runs.csv`): the lr search at seed 0 and three seeds at the "
        "lr they chose. Training accuracy is the running mean over each epoch's minibatches, "
        "before each update, on both sides. Values within half a training image (0.5/60 000) of a "
        "bound count as on it."
        + (f" Our runs are cut short (task.epochs={shortened}) and are compared over the epochs "
           "they have." if shortened else ""), "",
        "## Our runs at the authors' chosen lr against their seed range", "",
        "Per epoch: the minimum, mean and maximum of their seeds' training accuracy at that epoch, "
        "and whether ours lies inside that range (or above / below it, by how much).", ""]
    lines += [f"- {s}" for s in summary] or ["- No run of ours at the authors' chosen lrs."]
    lines += ["", "| optimiser | η | our seed | epoch | ours | theirs: min | mean | max | ours vs "
              "their range |", "|" + "---|" * 9]
    lines += ["| " + " | ".join(r) + " |" for r in per_epoch]
    lines += ["", "## Final test accuracy", ""]
    if finals:
        lines += ["| optimiser | η | our seed | ours | theirs (min-max) | ours vs their range |",
                  "|" + "---|" * 6] + ["| " + " | ".join(r) + " |" for r in finals]
    else:
        lines.append(f"No run of ours at the authors' chosen lr has their {n_theirs} epochs, so their final "
                     "test accuracies are compared with nothing (they are in the lr-search table "
                     "below and in the CSV).")
    lines += ["", "## Their lr search (seed 0) beside ours", "",
              "Their final train and test accuracy; ours at our last epoch, theirs at that same "
              f"epoch, and the test accuracy's difference only where ours ran their {n_theirs} epochs."
              + (f" Their seed 0 at the chosen lr is in both pickles; for "
                 f"{' and '.join(twice)} the two runs differ (theirs were not bit-reproducible), so "
                 "both are kept." if twice else ""), "",
              f"| optimiser | η | theirs: train acc ({n_theirs}) | test acc | our last epoch | ours: train "
              "acc | theirs then | Δ | ours: test acc | Δ test |", "|" + "---|" * 10]
    lines += ["| " + " | ".join(r) + " |" for r in search_rows]
    path = out / "fig3_right" / "comparison.md"
    path.write_text("\n".join(lines) + "\n")
    outcome.files.append(path)
    return outcome


def fig3_left(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    """Per-minibatch training accuracy (before each update) of the CWN MLP under Adam, for
    sigma = 1 and 100; the authors' per-epoch means as markers."""
    outcome = Outcome("fig3_left")
    authors = published.fig3_left()
    fig, axes = figures.grid(1, 1)
    ax = axes[0][0]
    used, rows = [], []
    for sigma, color in ((1.0, "tab:blue"), (100.0, "tab:red")):
        variant = {} if sigma == 1.0 else {"task.sigma": sigma}
        runs = [r for r in rec.runs(sweeps=["fig3_cwn"], task="mnist_cwn", optimizer="adam",
                                    variant=variant) if r.status == "ok"]
        if not runs:
            outcome.missing.append(f"sigma={sigma:g} (fig3_cwn: mnist_cwn)")
            continue
        used += runs
        per_epoch = len(runs[0].series["acc"]) // max(runs[0].epochs_done or 0, 1)
        series = [[(i / per_epoch, a) for i, a in enumerate(r.series["acc"])] for r in runs]
        figures.band(ax, series, f"σ = {sigma:g} (ours, n={len(runs)})", color)
        epochs = sorted(authors[sigma])
        means = [sum(authors[sigma][e]) / len(authors[sigma][e]) for e in epochs]
        ax.errorbar([e - 0.5 for e in epochs], means,
                    yerr=[[m - min(authors[sigma][e]) for e, m in zip(epochs, means)],
                          [max(authors[sigma][e]) - m for e, m in zip(epochs, means)]],
                    label=f"σ = {sigma:g}, authors' epoch means", **{**figures.PAPER_STYLE,
                                                                    "color": color,
                                                                    "markerfacecolor": "white"})
        for e, theirs in zip(epochs, means):
            ours = [h["train/acc"] for r in runs for h in r.history if h["epoch"] == e]
            mine = sum(ours) / len(ours) if ours else None
            rows.append([f"{sigma:g}", str(e), fmt(mine, None, 4), f"{theirs:.4g}",
                         f"{min(authors[sigma][e]):.3f}-{max(authors[sigma][e]):.3f}",
                         diff(mine, theirs)])
    if not used:
        figures.close(fig)
        outcome.skipped = "no records of fig3_cwn (mnist_cwn with adam)"
        return outcome
    ax.set_ylim(0, 1.0)
    figures.finish_axes(ax, "epoch", "minibatch training accuracy")
    caption = tables.caption(used)
    outcome.files += figures.save(fig, out / "fig3_left" / "fig3_left",
                                  "Fig. 3 (left): centred weight normalisation + Adam on MNIST",
                                  caption)
    outcome.files.append(write_comparison(
        out / "fig3_left", "fig3_left: mean minibatch training accuracy per epoch", caption,
        ["σ", "epoch", "ours (mean over seeds)", "authors (mean of 3 seeds)", "authors' range",
         "Δ"], rows))
    return outcome


# -- tables and the views beyond the paper -----------------------------------------------------------
def table1(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    table = tables.table1(rec, optimizers)
    outcome = Outcome("table1", missing=[f"{t}/{o}" for (t, o), c in table.cells.items()
                                         if c.status == "missing"])
    if all(c.status == "missing" for c in table.cells.values()):
        outcome.skipped = "no records of the table1 sweep"
        return outcome
    folder = out / "table1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "table1.md").write_text(tables.table1_markdown(table))
    tables.write_csv(folder / "table1.csv", tables.table1_rows(table))
    (folder / "table1.tex").write_text(tables.table1_latex(table))
    rows = [[r["task"], r["optimizer"], fmt(r["mean"], r["std"]),
             fmt(r["paper_mean"], r["paper_std"]), diff(r["mean"], r["paper_mean"])]
            for r in tables.table1_rows(table)]
    rows += wikitext2_test_rows(table)
    outcome.files = [folder / f"table1.{ext}" for ext in ("md", "csv", "tex")]
    outcome.files.append(write_comparison(
        folder, "table1: ours beside the paper's Table 1", table.caption,
        ["task", "optimiser", "ours", "paper", "Δ"], rows,
        [f"{WIKITEXT2_TEST}: the test perplexity of each run's best-validation checkpoint, which "
         "the authors' script wrote to test_ppls.txt, so the paper's row may be this number; the "
         "table's own value is the validation perplexity after the last epoch "
         "(docs/experiments.md, gap 22)."]))
    return outcome


WIKITEXT2_TEST = "wikitext2_transformer (test ppl, best-val checkpoint)"


def wikitext2_test_rows(table: tables.Table) -> list[list[str]]:
    """Beside Wikitext-2's validation row: the test perplexity of the best-validation checkpoint
    of the same runs (same lr, same seeds), the other reading of the paper's number (gap 22)."""
    rows = []
    for (task, o), c in table.cells.items():
        if task != "wikitext2_transformer" or not c.ok:
            continue
        values = [r.extra["test_ppl_of_best_val_model"] for r in c.records
                  if selection.usable(r) and "test_ppl_of_best_val_model" in r.extra]
        if len(values) != len(c.seeds):  # never a mean over other runs than the table's
            continue
        m, s = selection.mean_std(values)
        p = table.paper.get((task, o), {})
        rows.append([WIKITEXT2_TEST, o, fmt(m, s), fmt(p.get("mean"), p.get("std")),
                     diff(m, p.get("mean"))])
    return rows


def appendix_a(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    rows, text = tables.appendix(rec)
    outcome = Outcome("appendix_a", missing=[r["config"] for r in rows if r["status"] == "missing"])
    if all(r["status"] == "missing" for r in rows):
        outcome.skipped = "no records of the fig1 or fig2 sweeps"
        return outcome
    folder = out / "appendix_a"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "appendix_a.md").write_text(text)
    tables.write_csv(folder / "appendix_a.csv", rows)
    outcome.files = [folder / "appendix_a.md", folder / "appendix_a.csv"]
    caption = text.split("**", 2)[2].split("\n")[0].strip()
    outcome.files.append(write_comparison(
        folder, "appendix_a: ours beside the paper's appendix table", caption,
        ["configuration", "ours", "paper", "Δ"],
        [[r["config"], fmt(r["mean"], r["std"]), fmt(r["paper_mean"], r["paper_std"]),
          diff(r["mean"], r["paper_mean"])] for r in rows]))
    return outcome


def _table1_view(name: str, rec: Records, optimizers: Optimizers
                 ) -> tuple[tables.Table, list[Record], Outcome]:
    """Table 1's cells for a view beyond the paper, and the runs behind them."""
    table = tables.table1(rec, optimizers)
    outcome = Outcome(name)
    used = [r for c in table.cells.values() for r in c.records]
    if not used:
        outcome.skipped = "no records of the table1 sweep"
    return table, used, outcome


def lr_sensitivity(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    table, used, outcome = _table1_view("lr_sensitivity", rec, optimizers)
    if outcome.skipped:
        return outcome
    fig, axes = figures.grid(math.ceil(len(table.tasks) / 3), 3)
    for task, ax in zip(table.tasks, [a for row in axes for a in row]):
        for o in table.optimizers:
            scores = table.cells[(task["task"], o)].lr_values
            if scores:
                lrs = sorted(scores)
                ax.plot(lrs, [scores[lr] for lr in lrs], "o-", color=figures.COLORS.get(o),
                        label=tables.label(o))
        ax.set_xscale("log")
        ax.set_title(f"{task['dataset']} {task['model']}", fontsize=8)
        figures.finish_axes(ax, "learning rate", f"final {task['metric_label']} (seed 0)")
    outcome.files = figures.save(fig, out / "lr_sensitivity" / "lr_sensitivity",
                                 "Final metric against learning rate (seed 0; beyond the paper)",
                                 tables.caption(used))
    return outcome


def profile(rec: Records, out: Path, optimizers: Optimizers = PAPER) -> Outcome:
    table, used, outcome = _table1_view("profile", rec, optimizers)
    if outcome.skipped:
        return outcome
    taus = [1.0 + 0.05 * i for i in range(181)]
    fractions = tables.performance_profile(table, taus)
    fig, axes = figures.grid(1, 1)
    ax = axes[0][0]
    for o, values in fractions.items():
        ax.step(taus, values, where="post", color=figures.COLORS.get(o),
                label=tables.label(o))
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    figures.finish_axes(ax, "τ (distance to the perfect score, relative to the best optimiser)",
                        "fraction of tasks within τ")
    outcome.files = figures.save(fig, out / "profile" / "profile",
                                 "Performance profile over the Table 1 tasks (beyond the paper)",
                                 tables.caption(used))
    return outcome
