"""The grid sweeper: the paper's lr-then-seeds protocol, explicit cells, both local launchers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hydra_plugins.nero_sweeper.grid import GridSweeper, best_lrs
from tasks.analysis.selection import cell
from tasks.runner import records
from tasks.runner.identity import Identity
from tests.helpers import compose, train_cli


def test_best_lrs_per_optimiser_from_stage_one():
    jobs = [["optimizer=nero", "optimizer.lr=0.01", "seed=0"],
            ["optimizer=nero", "optimizer.lr=0.1", "seed=0"],
            ["optimizer=sgd", "optimizer.lr=0.01", "seed=0"],
            ["optimizer=sgd", "optimizer.lr=0.1", "seed=0"],
            ["optimizer=adam", "optimizer.lr=0.01", "seed=0"]]
    results = [{"status": "ok", "final": 5.0, "goal": "min"},
               {"status": "ok", "final": 4.0, "goal": "min"},
               {"status": "diverged", "final": None, "goal": "min"},
               {"status": "ok", "final": 7.0, "goal": "min"},
               None]  # a crashed job
    best = best_lrs(jobs, results, "optimizer.lr", "seed")
    assert best == {("optimizer=nero",): "optimizer.lr=0.1", ("optimizer=sgd",): "optimizer.lr=0.1"}


@pytest.mark.slow
def test_lr_grid_then_seeds_end_to_end(tmp_path):
    # the local launcher here; tests/test_slurm.py runs sweeps through submitit on real SLURM
    launcher, extra = "local", []
    out = train_cli("-m", "+experiment=fig3_deep_mlp", "scale=smoke", "logger=none",
                    f"out_dir={tmp_path}", "optimizer=nero,sgd", "optimizer.lr=0.001,0.1",
                    "task.depth=3", f"hydra/launcher={launcher}", *extra, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    found = {(r.optimizer, r.lr, r.seed): r for r in records.find(tmp_path)}
    stage1 = {(o, lr, 0) for o in ("nero", "sgd") for lr in (0.001, 0.1)}
    assert stage1 <= set(found)
    for opt in ("nero", "sgd"):
        seed0 = {lr: found[(opt, lr, 0)].final for lr in (0.001, 0.1)}
        best = max(seed0, key=seed0.get)  # train/acc: higher is better
        assert {(opt, best, 1), (opt, best, 2)} <= set(found)
        other = 0.1 if best == 0.001 else 0.001
        assert (opt, other, 1) not in found
    assert len(found) == 8
    # Launched again: every cell already has an ok record, so nothing trains (or rewrites).
    stamps = {p: p.stat().st_mtime_ns for p in Path(tmp_path).rglob("record.json")}
    again = train_cli("-m", "+experiment=fig3_deep_mlp", "scale=smoke", "logger=none",
                      f"out_dir={tmp_path}", "optimizer=nero,sgd", "optimizer.lr=0.001,0.1",
                      "task.depth=3", f"hydra/launcher={launcher}", *extra, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in Path(tmp_path).rglob("record.json")} == stamps


def test_cells_combine_with_the_grid_and_the_command_line_wins():
    sweeper = compose("+experiment=fig9_imagenet").hydra.sweeper
    grid = GridSweeper(sweeper.grid, sweeper.cells, sweeper.seeds, "optimizer.lr", "seed")
    # Private: the sweeper's public sweep() launches the jobs; the list of cells before any
    # launch (here 15 ImageNet runs) is reachable only through _expand.
    jobs = grid._expand([])
    assert len(jobs) == 15
    assert ["optimizer=nero", "optimizer.lr=0.1", "seed=1"] in jobs
    assert ["optimizer=sgd", "optimizer.weight_decay=0.0", "seed=2"] in jobs
    assert ["optimizer=nero_tuned", "task.bn_gain_penalty=1.0e-4", "seed=0"] in jobs
    only = grid._expand(["seed=5", "optimizer.weight_decay=0.5"])
    assert len(only) == 4 and all(j[-1] == "optimizer.weight_decay=0.5" for j in only)  # sgd once
    assert ["optimizer=sgd", "seed=5", "optimizer.weight_decay=0.5"] in only


def test_the_sweeper_and_the_analysis_pick_the_same_lr_on_a_tie():
    # A grid in descending order, two lrs tied on seed 0: both take the smaller lr.
    jobs = [["optimizer=sgd", f"optimizer.lr={lr}", "seed=0"] for lr in ("0.1", "0.01", "1.0")]
    finals = [3.0, 3.0, -2.0]
    results = [{"status": "ok", "final": f, "goal": "max"} for f in finals]
    assert best_lrs(jobs, results, "optimizer.lr", "seed") == {("optimizer=sgd",): "optimizer.lr=0.01"}
    rs = [records.Record(Identity("s", "smoke", "t", "sgd", float(j[1].split("=")[1]), 0), "ok",
                         final=f) for j, f in zip(jobs, finals)]
    assert cell("t", "sgd", rs, "max").lr == 0.01
    # No tie: both follow seed 0 at each lr, and a min goal flips the order.
    results = [{"status": "ok", "final": f, "goal": "min"} for f in finals]
    rs = [dataclasses.replace(r, final=f) for r, f in zip(rs, finals)]
    assert best_lrs(jobs, results, "optimizer.lr", "seed") == {("optimizer=sgd",): "optimizer.lr=1.0"}
    assert cell("t", "sgd", rs, "min").lr == 1.0
