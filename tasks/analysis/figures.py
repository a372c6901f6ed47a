"""Figures in the spirit of the paper's: learning curves and lr sensitivity per task (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .tables import OPT_LABELS, Table

COLORS = {"nero": "tab:red", "sgd": "tab:blue", "adam": "tab:green", "lamb": "tab:purple"}


def _save(fig: plt.Figure, path: Path) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "pdf"):
        fig.savefig(path.with_suffix(f".{ext}"), bbox_inches="tight", dpi=130)
        out.append(path.with_suffix(f".{ext}"))
    plt.close(fig)
    return out


def _finish(fig: plt.Figure, ax: plt.Axes, drawn: bool, task: dict[str, str], xlabel: str,
            ylabel: str, path: Path) -> list[Path]:
    """Label and save a per-task figure; a figure with nothing drawn is dropped."""
    if not drawn:
        plt.close(fig)
        return []
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{task['dataset']} {task['model']}", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def learning_curves(t: Table, out_dir: Path) -> list[Path]:
    """Per task: the headline metric per epoch at each optimiser's best lr, mean and min-max band."""
    written = []
    for task in t.tasks:
        name, metric = task["task"], task["metric"]
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        drawn = False
        for o in t.optimizers:
            c = t.cells[(name, o)]
            curves = [[(e["epoch"], e[metric]) for e in r["history"] if e.get(metric) is not None]
                      for r in c.records if r.get("status") == "ok"]
            curves = [cv for cv in curves if cv]
            if not curves:
                continue
            n = min(len(cv) for cv in curves)
            xs = [p[0] for p in curves[0][:n]]
            ys = [[cv[i][1] for cv in curves] for i in range(n)]
            mean = [sum(v) / len(v) for v in ys]
            ax.plot(xs, mean, color=COLORS.get(o), label=f"{OPT_LABELS.get(o, o)} (η={c.lr:g})")
            ax.fill_between(xs, [min(v) for v in ys], [max(v) for v in ys], color=COLORS.get(o),
                            alpha=0.2, linewidth=0)
            drawn = True
        written += _finish(fig, ax, drawn, task, "epoch", task["metric_label"],
                           out_dir / f"curves_{name}")
    return written


def lr_sensitivity(t: Table, out_dir: Path) -> list[Path]:
    """Per task: the selection value (seed 0's final metric) against lr for each optimiser."""
    written = []
    for task in t.tasks:
        name = task["task"]
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        drawn = False
        for o in t.optimizers:
            scores = t.cells[(name, o)].lr_values
            if scores:
                lrs = sorted(scores)
                ax.plot(lrs, [scores[lr] for lr in lrs], "o-", color=COLORS.get(o),
                        label=OPT_LABELS.get(o, o))
                drawn = True
        if drawn:
            ax.set_xscale("log")
        written += _finish(fig, ax, drawn, task, "learning rate",
                           f"final {task['metric_label']} (seed 0)", out_dir / f"lr_{name}")
    return written


def profile_plot(profile: dict[str, list[float]], taus: list[float], out_dir: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for o, fractions in profile.items():
        ax.step(taus, fractions, where="post", color=COLORS.get(o), label=OPT_LABELS.get(o, o))
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ (distance to the perfect score, relative to the best optimiser)")
    ax.set_ylabel("fraction of tasks within τ")
    ax.set_title("Performance profile (beyond the paper)", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, out_dir / "performance_profile")
