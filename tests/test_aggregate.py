"""From records to Table 1: hand-made records with known answers, the sweeper, the launchers."""

from __future__ import annotations

import json
import math
import sys
import types

import pytest

from tasks.analysis import tables as aggregate
from tasks.runner import records
from tasks.runner.identity import Identity
from tests.conftest import REPO

TASKS = [{"task": "toy_min", "order": "1", "label": "Toy", "dataset": "D", "model": "M",
          "metric": "err", "metric_label": "error", "goal": "min", "unit": "", "perfect": "0"},
         {"task": "toy_max", "order": "2", "label": "Game", "dataset": "G", "model": "CNN",
          "metric": "reward", "metric_label": "reward", "goal": "max", "unit": "", "perfect": "21"}]


def rec(task, opt, lr, seed, final, status="ok", scale="smoke", sweep="table1"):
    return {"task": task, "optimizer": opt, "lr": lr, "seed": seed, "final": final,
            "status": status, "scale": scale, "sweep": sweep, "hardware": "test CPU",
            "history": [{"epoch": e, "err": final, "reward": final, "top1_error": final}
                        for e in (1, 2)]}


def make(records_list, tasks=TASKS):
    return aggregate.table1(records_list, tasks=tasks)


def test_best_lr_is_chosen_on_seed_zero_and_reported_over_seeds():
    rs = [rec("toy_min", "nero", 0.01, 0, 5.0), rec("toy_min", "nero", 0.1, 0, 4.0),
          rec("toy_min", "nero", 0.1, 1, 6.0), rec("toy_min", "nero", 0.1, 2, 5.0),
          rec("toy_min", "nero", 1.0, 0, 9.0)]
    c = aggregate.cell("toy_min", "nero", rs, "min")
    assert c.lr == 0.1  # seed 0 decides: 4.0 beats 5.0, although the mean at 0.1 is 5.0
    assert c.mean == pytest.approx(5.0)
    assert c.std == pytest.approx(math.sqrt(2 / 3))  # population std of 4, 6, 5
    assert c.seeds == [0, 1, 2] and c.status == "ok"


def test_ties_go_to_the_smaller_lr_and_max_goals_flip():
    rs = [rec("toy_max", "sgd", 0.1, 0, 3.0), rec("toy_max", "sgd", 0.01, 0, 3.0),
          rec("toy_max", "sgd", 1.0, 0, -2.0)]
    c = aggregate.cell("toy_max", "sgd", rs, "max")
    assert c.lr == 0.01 and c.mean == 3.0 and c.std == 0.0


def test_diverged_and_failed_runs_never_win_and_are_shown():
    rs = [rec("toy_min", "adam", 0.1, 0, None, "diverged"), rec("toy_min", "adam", 0.01, 0, 7.0),
          rec("toy_min", "adam", 0.01, 1, None, "failed"), rec("toy_min", "adam", 0.01, 2, 9.0)]
    c = aggregate.cell("toy_min", "adam", rs, "min")
    assert c.lr == 0.01 and c.status == "partial" and c.mean == 8.0 and c.seeds == [0, 2]
    assert aggregate.cell_text(c) == "8.00 ± 1.00 (2/3 ok)"
    dead = aggregate.cell("toy_min", "lamb", [rec("toy_min", "lamb", 0.1, 0, None, "diverged")], "min")
    assert dead.status == "diverged" and not dead.ok and aggregate.cell_text(dead) == "diverged (1 run)"
    assert aggregate.cell("toy_min", "sgd", [], "min").status == "missing"


def test_bold_best_and_underlined_runner_up_with_paper_values():
    rs = []
    for opt, value in (("nero", 1.0), ("sgd", 3.0), ("adam", 2.0), ("lamb", 4.0)):
        rs += [rec("toy_min", opt, 0.01, s, value) for s in range(3)]
    rs += [rec("toy_max", "nero", 0.01, 0, 20.0), rec("toy_max", "sgd", 0.01, 0, 10.0)]
    table = make(rs)
    assert table.ranks("toy_min", "min") == {"nero": 1, "adam": 2}
    assert table.ranks("toy_max", "max") == {"nero": 1, "sgd": 2}
    md = aggregate.table1_markdown(table)
    row = next(line for line in md.splitlines() if line.startswith("| Toy"))
    assert "**1.00 ± 0.00**" in row and "<u>2.00 ± 0.00</u>" in row
    assert "3.00 ± 0.00" in row and "**3.00" not in row and "<u>3.00" not in row
    game = next(line for line in md.splitlines() if line.startswith("| Game"))
    assert "missing" in game and "20.00 ± 0.00 (n=1)" in game
    assert "Scale: smoke" in md and "test CPU" in md and "NOT paper scale" in md


def test_paper_values_and_differences_beside_ours():
    tasks = aggregate.paper_tasks()
    assert [t["task"] for t in tasks][:2] == ["cifar10_cgan", "cifar10_vgg11"]
    rs = [rec("cifar10_vgg11", "nero", 0.01, s, v) for s, v in enumerate((11.0, 11.2, 11.3))]
    md = aggregate.table1_markdown(aggregate.table1(rs))
    row = next(line for line in md.splitlines() if "VGG-11" in line)
    assert "paper 11.16 ± 0.17, Δ +0.01" in row
    rows = aggregate.table1_rows(aggregate.table1(rs))
    vgg = next(r for r in rows if r["task"] == "cifar10_vgg11" and r["optimizer"] == "nero")
    assert vgg["paper_mean"] == 11.16
    assert vgg["diff"] == pytest.approx((11.0 + 11.2 + 11.3) / 3 - 11.16)
    assert vgg["best_lr"] == 0.01 and vgg["seeds"] == "0 1 2"


def test_latex_structure():
    rs = [rec("toy_min", "nero", 0.01, 0, 1.5), rec("toy_min", "sgd", 0.1, 0, 2.5)]
    tex = aggregate.table1_latex(make(rs))
    lines = tex.splitlines()
    assert lines[0] == r"\begin{table*}[t]" and lines[-1] == r"\end{table*}"
    assert r"\begin{tabular}{llllcccccccc}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    body = [line for line in lines if line.endswith(r"\\") and "Toy" in line][0]
    assert body.count("&") == 11
    assert r"\textbf{$1.50 \pm 0.00$}" in body and r"\underline{$2.50 \pm 0.00$}" in body
    assert r"\caption{Scale: smoke." in tex


def test_performance_profile():
    rs = [rec("toy_min", "nero", 0.01, 0, 1.0), rec("toy_min", "sgd", 0.01, 0, 3.0),
          rec("toy_max", "nero", 0.01, 0, 11.0), rec("toy_max", "sgd", 0.01, 0, 16.0)]
    profile = aggregate.performance_profile(make(rs), [1.0, 2.0, 3.0])
    # toy_min: gaps 1 and 3; toy_max: gaps 10 and 5 (distance to 21).
    assert profile["nero"] == [0.5, 1.0, 1.0]
    assert profile["sgd"] == [0.5, 0.5, 1.0]
    assert profile["adam"] == [0.0, 0.0, 0.0]


def test_appendix_table_from_fig_sweeps():
    rs = [rec("cifar10_vgg11", "nero", 0.02, s, 9.0 + s, sweep="fig1") for s in range(3)]
    rs += [rec("cifar10_vgg11", "madam_cs", 0.06, 0, 12.5, sweep="fig2")]
    rows, md = aggregate.appendix(rs)
    nero = next(r for r in rows if r["config"] == "nero")
    assert nero["mean"] == 10.0 and nero["best_lr"] == 0.02 and nero["paper_mean"] == 8.61
    assert "**10.00 ± 0.82**" in md
    assert next(r for r in rows if r["config"] == "lamb")["status"] == "missing"


def test_cli_writes_every_output(tmp_path):
    root = tmp_path / "results"
    for opt, value in (("nero", 10.0), ("sgd", 12.0)):
        for seed in range(3):
            path = Identity("table1", "smoke", "cifar10_vgg11", opt, 0.01, seed).directory(root)
            path = path / "record.json"
            records.write(path, {"schema": 1, **rec("cifar10_vgg11", opt, 0.01, seed, value + seed)})
    from scripts import aggregate as cli

    assert cli.main([str(root)]) == 0
    for name in ("table1.md", "table1.csv", "table1.tex", "figures/curves_cifar10_vgg11.png",
                 "figures/lr_cifar10_vgg11.pdf", "figures/performance_profile.png"):
        assert (root / name).exists(), name
    assert cli.main([str(tmp_path / "empty_missing")]) == 2


def test_reading_a_wandb_project_through_the_public_api(tmp_path, monkeypatch):
    stored = [rec("cifar10_vgg11", "nero", 0.01, s, 11.0 + s) for s in range(3)]

    class Run:
        def __init__(self, r):
            self.summary = {"nero_record": json.dumps(r)}

    class Api:
        def runs(self, path):
            assert path == "me/nero-repro"
            return [Run(r) for r in stored] + [types.SimpleNamespace(summary={})]

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Api=Api))
    from scripts import aggregate as cli

    assert cli.main(["--wandb", "me/nero-repro", "--out", str(tmp_path), "--no-figures"]) == 0
    assert "12.00 ± 0.82" in (tmp_path / "table1.md").read_text()


def test_every_experiment_composes():
    from tests.conftest import compose

    for path in sorted((REPO / "conf" / "experiment").rglob("*.yaml")):
        name = path.relative_to(REPO / "conf" / "experiment").with_suffix("").as_posix()
        cfg = compose(f"+experiment={name}")
        assert cfg.sweep and cfg.task.name
