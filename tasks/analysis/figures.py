"""Drawing helpers for the paper's figures (matplotlib, no display needed).

Every curve is a mean over seeds with a band from the minimum to the maximum, as the paper plots
them; the paper's own numbers, where it gives them, are black markers with error bars; every
figure carries one caption line naming the scale, hardware, seeds and commit of its runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"nero": "tab:red", "sgd": "tab:blue", "adam": "tab:green", "lamb": "tab:purple",
          "madam": "tab:orange", "muon": "tab:brown"}
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")  # one per seed or lr: overlapping lines stay apart
PAPER_STYLE = dict(color="black", marker="D", markersize=4, capsize=3, linestyle="none",
                   zorder=5)


def band(ax: plt.Axes, runs: Sequence[Sequence[tuple[float, float]]], label: str,
         color: str | None) -> bool:
    """Mean and min-max over runs of (x, y) points; runs are cut to the shortest. False when
    there is nothing to draw."""
    runs = [r for r in runs if r]
    if not runs:
        return False
    n = min(len(r) for r in runs)
    xs = [p[0] for p in runs[0][:n]]
    ys = [[r[i][1] for r in runs] for i in range(n)]
    line, = ax.plot(xs, [sum(v) / len(v) for v in ys], color=color, label=label, linewidth=1.2)
    ax.fill_between(xs, [min(v) for v in ys], [max(v) for v in ys], color=line.get_color(),
                    alpha=0.2, linewidth=0)
    return True


def seed_range(ax: plt.Axes, runs: Sequence[Sequence[float]], label: str,
               color: str | None) -> None:
    """The authors' runs of one setting (values per epoch, epoch 1 first): their min-max band and
    their mean, dashed, so that our solid lines stay visible on top of it."""
    n = min(len(r) for r in runs)
    xs = list(range(1, n + 1))
    ys = [[r[i] for r in runs] for i in range(n)]
    ax.fill_between(xs, [min(v) for v in ys], [max(v) for v in ys], color=color, alpha=0.25,
                    linewidth=0, label=f"{label}: min-max")
    ax.plot(xs, [sum(v) / len(v) for v in ys], color=color, linestyle="--", linewidth=1.0,
            label=f"{label}: mean")


def shades(n: int) -> list[tuple[float, float, float, float]]:
    """n colours that tell a sweep's values apart (e.g. its lrs, smallest first)."""
    cmap = plt.get_cmap("viridis")
    return [cmap(0.85 * i / max(n - 1, 1)) for i in range(n)]


def paper_marker(ax: plt.Axes, x: float, mean: float, std: float = 0.0,
                 label: str | None = "paper", color: str | None = None) -> None:
    """The paper's value: a diamond in the curve's colour, black error bar and edge."""
    ax.errorbar([x], [mean], yerr=[std], label=label,
                **{**PAPER_STYLE, "markerfacecolor": color or "black"})


def grid(rows: int, cols: int) -> tuple[plt.Figure, list[list[plt.Axes]]]:
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.6 * cols, 7.0), 3.3 * rows + 0.6),
                             squeeze=False)
    return fig, [list(row) for row in axes]


def save(fig: plt.Figure, path: Path, title: str, caption: str) -> list[Path]:
    """Title on top, the caption line below, then PNG and PDF side by side."""
    fig.suptitle(title, fontsize=10)
    fig.text(0.01, 0.01, caption, fontsize=6, wrap=True, va="bottom")
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "pdf"):
        fig.savefig(path.with_suffix(f".{ext}"), dpi=130)
        out.append(path.with_suffix(f".{ext}"))
    plt.close(fig)
    return out


def finish_axes(ax: plt.Axes, xlabel: str, ylabel: str, log: bool = False) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7)


def close(fig: plt.Figure) -> None:
    plt.close(fig)
