"""Table 1 and the appendix table, in the paper's layout (Markdown, CSV, LaTeX), beside the
paper's numbers. The protocol behind each entry is in selection.py."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import published, stats
from .selection import Cell, Record, Records, usable

TABLE1_OPTIMIZERS = ("nero", "sgd", "adam", "lamb")
OPT_LABELS = {"nero": "Nero", "sgd": "SGD", "adam": "Adam", "lamb": "LAMB", "madam": "Madam",
              "muon": "Muon"}


# Table 1 rows beyond the paper: shown (marked †) where their records exist.
BEYOND_TASKS = [{"task": "wikitext2_gpt2", "order": "7", "label": "Language model†",
                 "dataset": "Wikitext-2", "model": "GPT-2 (HF, 2 layers)", "metric": "val_ppl",
                 "metric_label": "perplexity", "goal": "min", "unit": "", "perfect": "1"}]


def label(optimizer: str) -> str:
    """A column's name; † marks an optimiser the paper's Table 1 did not run."""
    return OPT_LABELS.get(optimizer, optimizer) + ("" if optimizer in TABLE1_OPTIMIZERS else "†")


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


def table1(records: Records, optimizers: tuple[str, ...] = TABLE1_OPTIMIZERS,
           tasks: list[dict[str, str]] | None = None, sweep: str = "table1") -> Table:
    """Table 1 from the default-variant records of the Table 1 sweep (rows beyond the paper
    where their records exist)."""
    if tasks is None:
        present = {r.task for r in records.all if r.sweep == sweep}
        tasks = published.tasks() + [t for t in BEYOND_TASKS if t["task"] in present]
    cells = {(t["task"], o): records.cell(sweeps=[sweep], task=t["task"], optimizer=o,
                                          goal=t["goal"])
             for t in tasks for o in optimizers}
    used = [r for c in cells.values() for r in c.records]
    return Table(tasks, list(optimizers), cells, published.table1(), caption(used))


def caption(records: list[Record]) -> str:
    """Scale, hardware, seeds and commit of the runs behind a table or figure."""
    scales = sorted({r.scale for r in records}) or ["none"]
    hardware = sorted({str(r.hardware or r.device) for r in records}) or ["none"]
    seeds = sorted({r.seed for r in records})
    commits = sorted({(r.git or {}).get("commit") or "unknown" for r in records})
    dirty = any((r.git or {}).get("dirty") for r in records)
    text = (f"Scale: {', '.join(scales)}. Hardware: {'; '.join(hardware)}. "
            f"Seeds: {', '.join(map(str, seeds)) or 'none'}. "
            f"Commit: {', '.join(c[:10] for c in commits) or 'none'}"
            f"{' (with uncommitted changes)' if dirty else ''}.")
    shared = _shared_variant(records)
    if shared:
        text += (" Not the paper's settings: every run has "
                 + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in sorted(shared.items())) + ".")
    if scales != ["paper"]:
        text += (" NOT paper scale: toy models on synthetic data, not comparable with the "
                 "paper's numbers.")
    return text


def _shared_variant(records: list[Record]) -> dict[str, Any]:
    """The settings, other than the defaults, that all the runs share (e.g. task.epochs=3)."""
    variants = [r.variant for r in records]
    if not variants:
        return {}
    return {k: v for k, v in variants[0].items() if all(w.get(k) == v for w in variants[1:])}


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


def interval(c: Cell) -> stats.Interval | None:
    """The cell's mean with its 95% t-interval over seeds (stats.py); None without a value."""
    values = [r.final for r in c.records if usable(r)]
    return stats.interval(values) if values else None


def interval_text(c: Cell, digits: int = 2) -> str:
    ci = interval(c)
    if ci is None:
        return "—"
    return f"[{ci.low:.{digits}f}, {ci.high:.{digits}f}]" if ci.known else f"n={ci.n}: none"


def _marked(text: str, rank: int | None, kind: str) -> str:
    if rank == 1:
        return f"**{text}**" if kind == "md" else rf"\textbf{{{text}}}"
    if rank == 2:
        return f"<u>{text}</u>" if kind == "md" else rf"\underline{{{text}}}"
    return text


def table1_markdown(t: Table) -> str:
    head = ["Task", "Dataset", "Model", "Metric"]
    head += [label(o) for o in t.optimizers] + [f"{label(o)} 95% CI" for o in t.optimizers]
    head += [f"{label(o)} η" for o in t.optimizers]
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
        row += [interval_text(t.cells[(name, o)]) for o in t.optimizers]
        for o in t.optimizers:
            c = t.cells[(name, o)]
            p = t.paper.get((name, o))
            ours = f"{c.lr:g}" if c.lr is not None else "—"
            row.append(ours + (f" (paper {p['lr']:g})" if p else ""))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Bold: best; underlined: runner-up. 'diverged'/'failed': every run of that "
              "cell ended so; 'missing': no record. (k/n ok): k of the n seeds at the best lr "
              "finished; the mean is over those. ± is the population standard deviation over "
              f"seeds (ddof 0), as the paper's; 95% CI: {stats.T_METHOD}."
              + (" †: beyond the paper (not in its Table 1)."
                 if any(o not in TABLE1_OPTIMIZERS for o in t.optimizers) else "")]
    return "\n".join(lines) + "\n"


def table1_rows(t: Table) -> list[dict[str, Any]]:
    rows = []
    for task in t.tasks:
        for o in t.optimizers:
            c = t.cells[(task["task"], o)]
            p = t.paper.get((task["task"], o), {})
            ci = interval(c)
            rows.append({
                "task": task["task"], "dataset": task["dataset"], "model": task["model"],
                "metric": task["metric"], "goal": task["goal"], "optimizer": o,
                "status": c.status, "best_lr": c.lr, "mean": c.mean, "std": c.std,
                "ci95_low": ci.low if ci else None, "ci95_high": ci.high if ci else None,
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
    head += [label(o) for o in t.optimizers]
    head += [rf"{label(o)} $\eta$" for o in t.optimizers]
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
def appendix(records: Records) -> tuple[list[dict], str]:
    """The appendix table (Figs. 1-2): VGG-11, the fine lr grid, from the fig1/fig2 sweeps."""
    rows, used = [], []
    for p in published.appendix_a():
        c = records.cell(sweeps=["fig1", "fig2"], task="cifar10_vgg11", optimizer=p["optimizer"],
                         goal="min")
        used += c.records
        rows.append({"optimizer": p["label"], "config": p["optimizer"], "fix_mean": p["fix_mean"],
                     "fix_norm": p["fix_norm"], "status": c.status, "mean": c.mean, "std": c.std,
                     "best_lr": c.lr, "paper_mean": float(p["mean"]), "paper_std": float(p["std"]),
                     "paper_lr": float(p["lr"]),
                     "diff": c.mean - float(p["mean"]) if c.ok else None, "_cell": c})
    ok = [r for r in rows if r["mean"] is not None]
    best = min((r["mean"] for r in ok), default=None)
    lines = ["**Appendix A table (reproduction): VGG-11 on CIFAR-10, fine lr grid.** "
             f"{caption(used)} Mean ± population std over seeds of the final top-1 error at "
             "each configuration's best lr (chosen on seed 0).", "",
             "| Optimiser | fix mean | fix norm | top-1 error (%) | best η | paper | paper η | Δ |",
             "|---|---|---|---|---|---|---|---|"]
    mark = {"yes": "✓", "no": "–"}
    for r in rows:
        text = cell_text(r["_cell"])
        if r["mean"] is not None and r["mean"] == best:
            text = f"**{text}**"
        cols = [r["optimizer"], mark[r["fix_mean"]], mark[r["fix_norm"]], text,
                f"{r['best_lr']:g}" if r["best_lr"] else "—",
                f"{r['paper_mean']:.2f} ± {r['paper_std']:.2f}", f"{r['paper_lr']:g}",
                f"{r['diff']:+.2f}" if r["diff"] is not None else "—"]
        lines.append("| " + " | ".join(cols) + " |")
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
