"""From result records to the paper's tables (pure functions; scripts/aggregate.py is the CLI).

The protocol (EXPERIMENTS.md §0.3, DESIGN.md §6): for each (task, optimiser) the best lr is the
one whose seed-0 run has the best final metric (the grid stage; where seed 0 is missing, the mean
over the seeds there). The reported number is the mean ± population standard deviation (ddof 0,
as Table 1) of the final metric over the seeds at that lr. Diverged and failed runs never win an
lr; a cell whose runs all diverged or failed, or that has no runs, is shown as such.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAPER_DIR = Path(__file__).resolve().parents[2] / "results" / "published"
TABLE1_OPTIMIZERS = ("nero", "sgd", "adam", "lamb")
OPT_LABELS = {"nero": "Nero", "sgd": "SGD", "adam": "Adam", "lamb": "LAMB"}


@dataclass
class Cell:
    """One (task, optimiser) entry of a table."""

    task: str
    optimizer: str
    status: str  # ok | partial | diverged | failed | missing
    lr: float | None = None
    mean: float | None = None
    std: float | None = None
    seeds: list[int] = field(default_factory=list)
    n_runs: int = 0  # runs at the chosen lr, whatever their status
    lr_values: dict[float, float] = field(default_factory=dict)  # lr -> selection score
    records: list[dict[str, Any]] = field(default_factory=list)  # the runs at the chosen lr

    @property
    def ok(self) -> bool:
        return self.mean is not None


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof 0), as the paper's Table 1."""
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


def _usable(r: Mapping[str, Any]) -> bool:
    return r.get("status") == "ok" and r.get("final") is not None and math.isfinite(r["final"])


def cell(task: str, optimizer: str, runs: list[dict[str, Any]], goal: str) -> Cell:
    """Best lr and mean ± std for one (task, optimiser) from all its runs (any lr, any seed)."""
    if not runs:
        return Cell(task, optimizer, "missing")
    by_lr: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_lr[float(r["lr"])].append(r)
    scores: dict[float, float] = {}
    for lr, rs in by_lr.items():
        good = [r for r in rs if _usable(r)]
        seed0 = [r for r in good if int(r["seed"]) == 0]
        pick = seed0 or good
        if pick:
            scores[lr] = sum(r["final"] for r in pick) / len(pick)
    if not scores:
        statuses = {r.get("status") for r in runs}
        status = "diverged" if "diverged" in statuses else "failed"
        return Cell(task, optimizer, status, n_runs=len(runs))
    sign = 1.0 if goal == "min" else -1.0
    best_lr = min(sorted(scores), key=lambda lr: sign * scores[lr])  # ties: the smaller lr
    at_best = sorted(by_lr[best_lr], key=lambda r: int(r["seed"]))
    good = [r for r in at_best if _usable(r)]
    m, s = mean_std([r["final"] for r in good])
    status = "ok" if len(good) == len(at_best) else "partial"
    return Cell(task, optimizer, status, best_lr, m, s, [int(r["seed"]) for r in good],
                len(at_best), scores, at_best)


def group_runs(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(task, optimizer id) -> its runs; a later record of the same identity replaces an earlier."""
    latest: dict[tuple, dict[str, Any]] = {}
    for r in records:
        key = (r["task"], r["optimizer"], float(r["lr"]), int(r["seed"]), r.get("scale"),
               r.get("sweep"))
        latest[key] = dict(r)
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for (task, opt, *_), r in latest.items():
        out[(task, opt)].append(r)
    return out


# -- the paper's numbers ----------------------------------------------------------------------
def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def paper_tasks(paper_dir: Path = PAPER_DIR) -> list[dict[str, str]]:
    return sorted(read_csv(paper_dir / "tasks.csv"), key=lambda t: int(t["order"]))


def paper_table1(paper_dir: Path = PAPER_DIR) -> dict[tuple[str, str], dict[str, float]]:
    return {(r["task"], r["optimizer"]): {"mean": float(r["mean"]), "std": float(r["std"]),
                                          "lr": float(r["lr"])}
            for r in read_csv(paper_dir / "table1.csv")}


# -- Table 1 ------------------------------------------------------------------------------------
@dataclass
class Table:
    tasks: list[dict[str, str]]
    optimizers: list[str]
    cells: dict[tuple[str, str], Cell]
    paper: dict[tuple[str, str], dict[str, float]]
    caption: str

    def ranks(self, task: str, goal: str) -> dict[str, int]:
        """Optimiser -> 1 (best) or 2 (runner-up) among cells with a value; ties share a rank."""
        values = sorted({c.mean for o in self.optimizers
                         if (c := self.cells[(task, o)]).ok}, reverse=goal == "max")
        out = {}
        for o in self.optimizers:
            c = self.cells[(task, o)]
            if c.ok:
                rank = values.index(c.mean) + 1
                if rank <= 2:
                    out[o] = rank
        return out


def table1(records: Iterable[Mapping[str, Any]], optimizers: tuple[str, ...] = TABLE1_OPTIMIZERS,
           paper_dir: Path = PAPER_DIR, tasks: list[dict[str, str]] | None = None) -> Table:
    tasks = tasks if tasks is not None else paper_tasks(paper_dir)
    runs = group_runs(records)
    cells = {}
    for t in tasks:
        for o in optimizers:
            cells[(t["task"], o)] = cell(t["task"], o, runs.get((t["task"], o), []), t["goal"])
    used = [r for c in cells.values() for r in c.records]
    return Table(tasks, list(optimizers), cells, paper_table1(paper_dir), caption(used))


def caption(records: list[Mapping[str, Any]]) -> str:
    scales = sorted({str(r.get("scale")) for r in records}) or ["none"]
    hardware = sorted({str(r.get("hardware") or r.get("device")) for r in records}) or ["none"]
    text = (f"Scale: {', '.join(scales)}. Hardware: {'; '.join(hardware)}. "
            "Mean ± population std over seeds of the final validation metric at each "
            "optimiser's best lr (chosen on seed 0); paper values from Table 1 of Liu et al. "
            "(2021) beside ours.")
    if "paper" not in scales:
        text += (" NOT paper scale: the numbers come from toy models on synthetic data and are "
                 "not comparable with the paper's.")
    return text


def fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def cell_text(c: Cell, digits: int = 2) -> str:
    if c.status == "missing":
        return "missing"
    if not c.ok:
        return f"{c.status} ({c.n_runs} run{'s' if c.n_runs != 1 else ''})"
    text = f"{c.mean:.{digits}f} ± {c.std:.{digits}f}"
    if c.status == "partial":
        text += f" ({len(c.seeds)}/{c.n_runs} ok)"
    elif len(c.seeds) < 3:
        text += f" (n={len(c.seeds)})"
    return text


def _marked(text: str, rank: int | None, kind: str) -> str:
    if rank == 1:
        return f"**{text}**" if kind == "md" else rf"\textbf{{{text}}}"
    if rank == 2:
        return f"<u>{text}</u>" if kind == "md" else rf"\underline{{{text}}}"
    return text


def table1_markdown(t: Table) -> str:
    head = ["Task", "Dataset", "Model", "Metric"]
    head += [OPT_LABELS.get(o, o) for o in t.optimizers] + [f"{OPT_LABELS.get(o, o)} η" for o in t.optimizers]
    lines = [f"**Table 1 (reproduction).** {t.caption}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task in t.tasks:
        name = task["task"]
        ranks = t.ranks(name, task["goal"])
        arrow = "↓" if task["goal"] == "min" else "↑"
        row = [task["label"], task["dataset"], task["model"], f"{task['metric_label']} {arrow}"]
        for o in t.optimizers:
            c = t.cells[(name, o)]
            text = _marked(cell_text(c), ranks.get(o), "md")
            p = t.paper.get((name, o))
            if p is not None:
                diff = f", Δ {c.mean - p['mean']:+.2f}" if c.ok else ""
                text += f"<br>paper {p['mean']:.2f} ± {p['std']:.2f}{diff}"
            row.append(text)
        for o in t.optimizers:
            c = t.cells[(name, o)]
            p = t.paper.get((name, o))
            ours = f"{c.lr:g}" if c.lr is not None else "—"
            row.append(ours + (f" (paper {p['lr']:g})" if p else ""))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Bold: best; underlined: runner-up. 'diverged'/'failed': every run of that "
              "cell ended so; 'missing': no record. (k/n ok): k of the n seeds at the best lr "
              "finished; the mean is over those."]
    return "\n".join(lines) + "\n"


def table1_rows(t: Table) -> list[dict[str, Any]]:
    rows = []
    for task in t.tasks:
        for o in t.optimizers:
            c = t.cells[(task["task"], o)]
            p = t.paper.get((task["task"], o), {})
            rows.append({
                "task": task["task"], "dataset": task["dataset"], "model": task["model"],
                "metric": task["metric"], "goal": task["goal"], "optimizer": o,
                "status": c.status, "best_lr": c.lr, "mean": c.mean, "std": c.std,
                "seeds": " ".join(map(str, c.seeds)), "paper_mean": p.get("mean"),
                "paper_std": p.get("std"), "paper_lr": p.get("lr"),
                "diff": (c.mean - p["mean"]) if c.ok and p else None,
            })
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def _latex_escape(text: str) -> str:
    return (text.replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%")
            .replace("_", r"\_").replace("#", r"\#").replace('"', "''"))


def table1_latex(t: Table) -> str:
    cols = "llll" + "c" * len(t.optimizers) + "c" * len(t.optimizers)
    head = ["Task", "Dataset", "Model", "Metric"]
    head += [OPT_LABELS.get(o, o) for o in t.optimizers]
    head += [rf"{OPT_LABELS.get(o, o)} $\eta$" for o in t.optimizers]
    out = [r"\begin{table*}[t]", r"\centering", r"\small",
           rf"\caption{{{_latex_escape(t.caption)}}}", r"\label{tab:table1-reproduction}",
           rf"\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    for task in t.tasks:
        name = task["task"]
        ranks = t.ranks(name, task["goal"])
        arrow = r"$\downarrow$" if task["goal"] == "min" else r"$\uparrow$"
        row = [_latex_escape(task[k]) for k in ("label", "dataset", "model")]
        row.append(f"{_latex_escape(task['metric_label'])} {arrow}")
        for o in t.optimizers:
            c = t.cells[(name, o)]
            text = (f"${c.mean:.2f} \\pm {c.std:.2f}$" if c.ok else _latex_escape(cell_text(c)))
            text = _marked(text, ranks.get(o), "tex")
            p = t.paper.get((name, o))
            if p is not None:
                text = (rf"\shortstack{{{text}\\ \scriptsize paper ${p['mean']:.2f} \pm "
                        rf"{p['std']:.2f}$}}")
            row.append(text)
        for o in t.optimizers:
            c = t.cells[(name, o)]
            row.append(f"{c.lr:g}" if c.lr is not None else "--")
        out.append(" & ".join(row) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table*}"]
    return "\n".join(out) + "\n"


# -- the appendix table (Figs. 1-2) ---------------------------------------------------------------
def appendix(records: Iterable[Mapping[str, Any]], paper_dir: Path = PAPER_DIR) -> tuple[list[dict], str]:
    rows_paper = read_csv(paper_dir / "appendix_a.csv")
    runs = group_runs(r for r in records if r.get("task") == "cifar10_vgg11"
                      and r.get("sweep") in ("fig1", "fig2"))
    rows, used = [], []
    for p in rows_paper:
        c = cell("cifar10_vgg11", p["optimizer"], runs.get(("cifar10_vgg11", p["optimizer"]), []),
                 "min")
        used += c.records
        rows.append({"optimizer": p["label"], "config": p["optimizer"], "fix_mean": p["fix_mean"],
                     "fix_norm": p["fix_norm"], "status": c.status, "mean": c.mean, "std": c.std,
                     "best_lr": c.lr, "paper_mean": float(p["mean"]), "paper_std": float(p["std"]),
                     "paper_lr": float(p["lr"]), "_cell": c})
    ok = [r for r in rows if r["mean"] is not None]
    best = min((r["mean"] for r in ok), default=None)
    lines = [f"**Appendix A table (reproduction): VGG-11 on CIFAR-10, fine lr grid.** "
             f"{caption(used)}", "",
             "| Optimiser | fix mean | fix norm | top-1 error (%) | best η | paper | paper η |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        text = cell_text(r["_cell"])
        if r["mean"] is not None and r["mean"] == best:
            text = f"**{text}**"
        mark = {"yes": "✓", "no": "–"}
        lines.append(f"| {r['optimizer']} | {mark[r['fix_mean']]} | {mark[r['fix_norm']]} | {text} | "
                     f"{fmt(r['best_lr'], 2) if r['best_lr'] else '—'} | "
                     f"{r['paper_mean']:.2f} ± {r['paper_std']:.2f} | {r['paper_lr']:g} |")
    for r in rows:
        r.pop("_cell")
    return rows, "\n".join(lines) + "\n"


# -- performance profile (beyond the paper) ---------------------------------------------------------
def performance_profile(t: Table, taus: list[float]) -> dict[str, list[float]]:
    """Fraction of tasks on which each optimiser is within a factor tau of the best optimiser.

    Beyond the paper (in the spirit of AlgoPerf's profiles). Each task's value is turned into a
    distance from the perfect score (``perfect`` in results/published/tasks.csv: 0 for errors and
    FID, 1 for perplexity, 21 for Pong), so that ratios are meaningful for every metric; a
    missing, failed or diverged cell is never within any factor.
    """
    gaps: dict[str, dict[str, float]] = defaultdict(dict)
    for task in t.tasks:
        perfect = float(task["perfect"])
        for o in t.optimizers:
            c = t.cells[(task["task"], o)]
            if c.ok:
                gaps[task["task"]][o] = max(abs(c.mean - perfect), 1e-12)
    out = {o: [] for o in t.optimizers}
    tasks_with_values = [task["task"] for task in t.tasks if gaps[task["task"]]]
    for tau in taus:
        for o in t.optimizers:
            within = 0
            for name in tasks_with_values:
                best = min(gaps[name].values())
                if o in gaps[name] and gaps[name][o] <= tau * best:
                    within += 1
            out[o].append(within / len(tasks_with_values) if tasks_with_values else 0.0)
    return out
