"""The paper's own numbers and the authors' logged results, as typed into results/published/
(its README says where each comes from)."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

PUBLISHED = Path(__file__).resolve().parents[2] / "results" / "published"


def read_csv(name: str, folder: Path = PUBLISHED) -> list[dict[str, str]]:
    with open(folder / name, newline="") as f:
        return list(csv.DictReader(f))


def tasks(folder: Path = PUBLISHED) -> list[dict[str, str]]:
    """The six Table 1 tasks in the paper's row order, with labels, metric and goal."""
    return sorted(read_csv("tasks.csv", folder), key=lambda t: int(t["order"]))


TABLE1_TASKS = [t["task"] for t in tasks()]


def table1(folder: Path = PUBLISHED) -> dict[tuple[str, str], dict[str, float]]:
    """(task, optimizer) -> mean, std (population) and lr of Table 1."""
    return {(r["task"], r["optimizer"]): {"mean": float(r["mean"]), "std": float(r["std"]),
                                          "lr": float(r["lr"])}
            for r in read_csv("table1.csv", folder)}


def appendix_a(folder: Path = PUBLISHED) -> list[dict[str, str]]:
    return read_csv("appendix_a.csv", folder)


def fig3_left(folder: Path = PUBLISHED) -> dict[float, dict[int, list[float]]]:
    """sigma -> epoch -> the authors' per-seed mean minibatch training accuracy of that epoch."""
    out: dict[float, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in read_csv("fig3_left.csv", folder):
        out[float(r["sigma"])][int(r["epoch"])].append(float(r["acc"]))
    return {s: dict(e) for s, e in out.items()}


@dataclass(frozen=True)
class AuthorsRun:
    """One run of the authors' Fig. 3 (right) pickles: training accuracy per epoch (running, over
    the epoch's minibatches; epoch 1 first) and the test accuracy after the last epoch."""

    source: str  # the pickle it came from (results/published/authors/)
    optimizer: str
    lr: float
    seed: int
    train_acc: tuple[float, ...]
    test_acc: float

    @property
    def stage(self) -> str:
        return "lr_search" if "lr-search" in self.source else "seeds"


def fig3_right(folder: Path = PUBLISHED) -> list[AuthorsRun]:
    """Every run of the authors' lr search (seed 0) and seed repeats, in the pickles' order."""
    grouped: dict[tuple[str, str, float, int], list[dict[str, str]]] = {}
    for r in read_csv("fig3_right_runs.csv", folder):
        grouped.setdefault((r["source"], r["optimizer"], float(r["lr"]), int(r["seed"])), []).append(r)
    runs = []
    for (source, opt, lr, seed), rows in grouped.items():
        if [int(r["epoch"]) for r in rows] != list(range(1, len(rows) + 1)) \
                or len({r["test_acc"] for r in rows}) != 1:
            raise ValueError(f"fig3_right_runs.csv: {source} {opt} lr={lr:g} seed={seed} is not one "
                             "run of epochs 1, 2, ... with one test accuracy; rewrite it with "
                             "scripts/published_fig3_right.py")
        runs.append(AuthorsRun(source, opt, lr, seed, tuple(float(r["train_acc"]) for r in rows),
                               float(rows[0]["test_acc"])))
    return runs


def fig7_logs(folder: Path = PUBLISHED) -> list[dict[str, float | str]]:
    """Final validation perplexity of every run in the authors' translation logs."""
    return [{"optimizer": r["optimizer"], "lr": float(r["lr"]), "seed": int(r["seed"]),
             "epochs": int(r["epochs_logged"]), "val_ppl": float(r["final_val_ppl"])}
            for r in read_csv("fig7_logs.csv", folder)]
