"""The paper's own numbers and the authors' logged results, as typed into results/published/
(its README says where each comes from)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

PUBLISHED = Path(__file__).resolve().parents[2] / "results" / "published"


def read_csv(name: str, folder: Path = PUBLISHED) -> list[dict[str, str]]:
    with open(folder / name, newline="") as f:
        return list(csv.DictReader(f))


def tasks(folder: Path = PUBLISHED) -> list[dict[str, str]]:
    """The six Table 1 tasks in the paper's row order, with labels, metric and goal."""
    return sorted(read_csv("tasks.csv", folder), key=lambda t: int(t["order"]))


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


def fig3_right(folder: Path = PUBLISHED) -> list[dict[str, float | str]]:
    """Final-epoch train and test accuracy of the authors' lr search and seed repeats."""
    return [{"optimizer": r["optimizer"], "lr": float(r["lr"]), "seed": int(r["seed"]),
             "train_acc": float(r["train_acc"]), "test_acc": float(r["test_acc"]),
             "stage": r["stage"]} for r in read_csv("fig3_right.csv", folder)]


def fig3_right_epochs(folder: Path = PUBLISHED) -> list[dict[str, float | str]]:
    """Training accuracy at some epochs of the authors' runs (the few their pickles were read at)."""
    return [{"optimizer": r["optimizer"], "lr": float(r["lr"]), "seed": int(r["seed"]),
             "epoch": int(r["epoch"]), "train_acc": float(r["train_acc"])}
            for r in read_csv("fig3_right_epochs.csv", folder)]


def fig7_logs(folder: Path = PUBLISHED) -> list[dict[str, float | str]]:
    """Final validation perplexity of every run in the authors' translation logs."""
    return [{"optimizer": r["optimizer"], "lr": float(r["lr"]), "seed": int(r["seed"]),
             "epochs": int(r["epochs_logged"]), "val_ppl": float(r["final_val_ppl"])}
            for r in read_csv("fig7_logs.csv", folder)]
