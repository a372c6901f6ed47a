"""From records to the paper's artefacts: hand-made records with known answers."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import pytest

from tasks.analysis import artefacts, published, tables
from tasks.analysis.selection import Records, cell
from tasks.runner import records
from tasks.runner.identity import Identity

TASKS = [{"task": "toy_min", "order": "1", "label": "Toy", "dataset": "D", "model": "M",
          "metric": "err", "metric_label": "error", "goal": "min", "unit": "", "perfect": "0"},
         {"task": "toy_max", "order": "2", "label": "Game", "dataset": "G", "model": "CNN",
          "metric": "reward", "metric_label": "reward", "goal": "max", "unit": "", "perfect": "21"}]


def rec(*args, **kwargs) -> records.Record:
    """A record of these values, as the reader makes it from a schema-1 file."""
    return records.Record.from_json({"schema": 1, **fields(*args, **kwargs)})


def fields(task, opt, lr, seed, final, status="ok", scale="smoke", sweep="table1", variant=None,
           history=None, **extra):
    history = history or [{"epoch": e, "err": final, "reward": final, "top1_error": final,
                           "fid/test": final, "fid/train": final, "val_ppl": final}
                          for e in (1, 2)]
    return {"task": task, "optimizer": opt, "lr": lr, "seed": seed, "final": final,
            "status": status, "scale": scale, "sweep": sweep, "hardware": "test CPU",
            "variant": variant or {}, "git": {"commit": "0123456789abcdef", "dirty": False},
            "history": history, "finished_at": "2026-01-01", **extra}


def table(rs, tasks=TASKS):
    return tables.table1(Records(rs), tasks=tasks)


# -- the protocol ------------------------------------------------------------------------------------
def test_best_lr_is_chosen_on_seed_zero_and_reported_over_seeds():
    rs = [rec("toy_min", "nero", 0.01, 0, 5.0), rec("toy_min", "nero", 0.1, 0, 4.0),
          rec("toy_min", "nero", 0.1, 1, 6.0), rec("toy_min", "nero", 0.1, 2, 5.0),
          rec("toy_min", "nero", 1.0, 0, 9.0)]
    c = cell("toy_min", "nero", rs, "min")
    assert c.lr == 0.1  # seed 0 decides: 4.0 beats 5.0, although the mean at 0.1 is 5.0
    assert c.mean == pytest.approx(5.0)
    assert c.std == pytest.approx(math.sqrt(2 / 3))  # population std of 4, 6, 5
    assert c.seeds == [0, 1, 2] and c.status == "ok"


def test_ties_go_to_the_smaller_lr_and_max_goals_flip():
    rs = [rec("toy_max", "sgd", 0.1, 0, 3.0), rec("toy_max", "sgd", 0.01, 0, 3.0),
          rec("toy_max", "sgd", 1.0, 0, -2.0)]
    c = cell("toy_max", "sgd", rs, "max")
    assert c.lr == 0.01 and c.mean == 3.0 and c.std == 0.0


def test_diverged_and_failed_runs_never_win_and_are_shown():
    rs = [rec("toy_min", "adam", 0.1, 0, None, "diverged"), rec("toy_min", "adam", 0.01, 0, 7.0),
          rec("toy_min", "adam", 0.01, 1, None, "failed"), rec("toy_min", "adam", 0.01, 2, 9.0)]
    c = cell("toy_min", "adam", rs, "min")
    assert c.lr == 0.01 and c.status == "partial" and c.mean == 8.0 and c.seeds == [0, 2]
    assert tables.cell_text(c) == "8.00 ± 1.00 (2/3 ok)"
    dead = cell("toy_min", "lamb", [rec("toy_min", "lamb", 0.1, 0, None, "diverged")], "min")
    assert dead.status == "diverged" and not dead.ok and tables.cell_text(dead) == "diverged (1 run)"
    assert cell("toy_min", "sgd", [], "min").status == "missing"


def test_variants_are_never_mixed_into_one_mean():
    rs = [rec("toy_min", "nero", 0.01, s, 1.0) for s in range(3)]
    rs += [rec("toy_min", "nero", 0.01, s, 100.0, variant={"task.depth": 5.0}) for s in range(3)]
    t = table(rs)
    assert t.cells[("toy_min", "nero")].mean == 1.0  # Table 1: the default variant only
    other = Records(rs).cell(sweeps=["table1"], task="toy_min", optimizer="nero", goal="min",
                             variant={"task.depth": 5.0})
    assert other.mean == 100.0 and len(other.records) == 3


def test_two_configurations_of_one_variant_are_not_mixed_and_the_choice_is_noted():
    old = [rec("toy_min", "nero", 0.01, s, 1.0, finished_at="2026-01-01",
               config={"task": {"name": "toy_min", "epochs": 5}}) for s in range(3)]
    new = [rec("toy_min", "nero", 0.01, s, 2.0, finished_at="2026-02-01",
               config={"task": {"name": "toy_min", "epochs": 6}}) for s in range(3)]
    rs = Records(old + new)
    c = rs.cell(sweeps=["table1"], task="toy_min", optimizer="nero", goal="min")
    assert c.mean == 2.0 and len(c.records) == 3
    assert len(rs.notes) == 1 and "task.epochs 5 vs 6" in rs.notes[0] and "not a mix" in rs.notes[0]


def test_old_records_without_a_variant_are_read_against_the_current_defaults():
    from tasks.runner.identity import plain
    from tests.helpers import compose

    config = plain(compose("task=mnist_mlp", "scale=smoke", "task.depth=7"))
    old = {"schema": 1, **{k: v for k, v in fields("mnist_mlp", "nero", 0.01, 0, 0.9).items()
                           if k != "variant"}}
    assert records.Record.from_json({**old, "config": config}).variant == {"task.depth": 7.0}
    config_default = plain(compose("task=mnist_mlp", "scale=smoke"))
    assert records.Record.from_json({**old, "config": config_default}).variant == {}


# -- Table 1 and the appendix ---------------------------------------------------------------------------
def test_bold_best_and_underlined_runner_up_with_paper_values():
    rs = []
    for opt, value in (("nero", 1.0), ("sgd", 3.0), ("adam", 2.0), ("lamb", 4.0)):
        rs += [rec("toy_min", opt, 0.01, s, value) for s in range(3)]
    rs += [rec("toy_max", "nero", 0.01, 0, 20.0), rec("toy_max", "sgd", 0.01, 0, 10.0)]
    t = table(rs)
    assert t.ranks("toy_min", "min") == {"nero": 1, "adam": 2}
    assert t.ranks("toy_max", "max") == {"nero": 1, "sgd": 2}
    md = tables.table1_markdown(t)
    row = next(line for line in md.splitlines() if line.startswith("| Toy"))
    assert "**1.00 ± 0.00**" in row and "<u>2.00 ± 0.00</u>" in row
    assert "3.00 ± 0.00" in row and "**3.00" not in row and "<u>3.00" not in row
    game = next(line for line in md.splitlines() if line.startswith("| Game"))
    assert "missing" in game and "20.00 ± 0.00 (n=1)" in game
    assert "Scale: smoke" in md and "test CPU" in md and "NOT paper scale" in md
    assert "Seeds: 0, 1, 2" in md and "Commit: 0123456789" in md


def test_paper_values_and_differences_beside_ours():
    rs = [rec("cifar10_vgg11", "nero", 0.01, s, v) for s, v in enumerate((11.0, 11.2, 11.3))]
    t = tables.table1(Records(rs))
    row = next(line for line in tables.table1_markdown(t).splitlines() if "VGG-11" in line)
    assert "paper 11.16 ± 0.17, Δ +0.01" in row
    vgg = next(r for r in tables.table1_rows(t) if r["task"] == "cifar10_vgg11"
               and r["optimizer"] == "nero")
    assert vgg["paper_mean"] == 11.16 and vgg["best_lr"] == 0.01 and vgg["seeds"] == "0 1 2"
    assert vgg["diff"] == pytest.approx((11.0 + 11.2 + 11.3) / 3 - 11.16)


def test_latex_structure():
    t = table([rec("toy_min", "nero", 0.01, 0, 1.5), rec("toy_min", "sgd", 0.1, 0, 2.5)])
    tex = tables.table1_latex(t)
    lines = tex.splitlines()
    assert lines[0] == r"\begin{table*}[t]" and lines[-1] == r"\end{table*}"
    assert r"\begin{tabular}{llllcccccccc}" in tex
    body = [line for line in lines if line.endswith(r"\\") and "Toy" in line][0]
    assert body.count("&") == 11
    assert r"\textbf{$1.50 \pm 0.00$}" in body and r"\underline{$2.50 \pm 0.00$}" in body


def test_performance_profile():
    rs = [rec("toy_min", "nero", 0.01, 0, 1.0), rec("toy_min", "sgd", 0.01, 0, 3.0),
          rec("toy_max", "nero", 0.01, 0, 11.0), rec("toy_max", "sgd", 0.01, 0, 16.0)]
    profile = tables.performance_profile(table(rs), [1.0, 2.0, 3.0])
    # toy_min: gaps 1 and 3; toy_max: gaps 10 and 5 (distance to 21).
    assert profile["nero"] == [0.5, 1.0, 1.0]
    assert profile["sgd"] == [0.5, 0.5, 1.0]
    assert profile["adam"] == [0.0, 0.0, 0.0]


def test_appendix_table_from_fig_sweeps():
    rs = [rec("cifar10_vgg11", "nero", 0.02, s, 9.0 + s, sweep="fig1") for s in range(3)]
    rs += [rec("cifar10_vgg11", "madam_cs", 0.06, 0, 12.5, sweep="fig2")]
    rows, md = tables.appendix(Records(rs))
    nero = next(r for r in rows if r["config"] == "nero")
    assert nero["mean"] == 10.0 and nero["best_lr"] == 0.02 and nero["paper_mean"] == 8.61
    assert nero["diff"] == pytest.approx(10.0 - 8.61)
    assert "**10.00 ± 0.82**" in md
    assert next(r for r in rows if r["config"] == "lamb")["status"] == "missing"


# -- the figures' overlays and comparisons ---------------------------------------------------------------
def comparison(out: Path, name: str) -> list[list[str]]:
    lines = (out / name / "comparison.md").read_text().splitlines()
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines
            if line.startswith("| ") and not line.startswith("| ---")]


def test_fig3_left_overlays_the_authors_epoch_means(tmp_path):
    rs = []
    for sigma, base in ((1.0, 0.90), (100.0, 0.50)):
        for seed in range(3):
            acc = [base + 0.01 * seed + 0.02 * e for e in range(5)]  # epoch means, known
            rs.append(rec("mnist_cwn", "adam", 0.01, seed, acc[-1], sweep="fig3_cwn",
                          variant={} if sigma == 1.0 else {"task.sigma": sigma},
                          epochs_done=5, series={"acc": [a for a in acc for _ in range(4)]},
                          history=[{"epoch": e + 1, "train/acc": a} for e, a in enumerate(acc)]))
    outcome = artefacts.fig3_left(Records(rs), tmp_path)
    assert outcome.skipped is None and {p.suffix for p in outcome.files} == {".png", ".pdf", ".md"}
    rows = {(r[0], r[1]): r for r in comparison(tmp_path, "fig3_left")[1:]}
    assert len(rows) == 10
    sigma100_epoch1 = rows[("100", "1")]
    authors = published.fig3_left()[100.0][1]
    assert sigma100_epoch1[2] == "0.51"  # ours: mean of 0.50, 0.51, 0.52
    assert float(sigma100_epoch1[3]) == pytest.approx(sum(authors) / 3, abs=1e-4)  # 0.5483
    assert sigma100_epoch1[4] == "0.541-0.554"
    assert float(sigma100_epoch1[5]) == pytest.approx(0.51 - sum(authors) / 3, abs=1e-4)
    assert float(rows[("1", "5")][3]) == pytest.approx((0.991 + 0.994 + 0.993) / 3, abs=1e-4)


def authors_seeds(opt):
    runs = [r for r in published.fig3_right() if r.optimizer == opt and r.stage == "seeds"]
    assert len(runs) == 3
    return runs


def test_fig3_right_says_per_epoch_whether_ours_lies_in_the_authors_seed_range(tmp_path):
    """Constructed 10-epoch runs (--variant task.epochs=10) placed against the authors' three
    Nero seeds: below, inside, above, and within half an image of their maximum (inside)."""
    nero = authors_seeds("nero")
    low = [min(r.train_acc[e] for r in nero) for e in range(50)]
    high = [max(r.train_acc[e] for r in nero) for e in range(50)]
    mid = [sum(r.train_acc[e] for r in nero) / 3 for e in range(50)]
    ours = [low[0] - 0.01, mid[1], high[2] + 0.02, high[3] + 1e-6] + mid[4:10]
    history = [{"epoch": e + 1, "train/acc": v, "test_acc": 0.5} for e, v in enumerate(ours)]
    adam = authors_seeds("adam")
    chance = [{"epoch": e + 1, "train/acc": adam[0].train_acc[e], "test_acc": 0.1135}
              for e in range(10)]
    sgd = [{"epoch": e + 1, "train/acc": 0.3, "test_acc": 0.2} for e in range(10)]
    shortened = {"task.epochs": 10}
    rs = [rec("mnist_mlp", "nero", 0.001, 0, ours[-1], sweep="fig3_deep_mlp", scale="paper",
              variant=shortened, history=history),
          rec("mnist_mlp", "adam", 0.001, 0, chance[-1]["train/acc"], sweep="fig3_deep_mlp",
              scale="paper", variant=shortened, history=chance),
          rec("mnist_mlp", "sgd", 0.01, 0, 0.3, sweep="fig3_deep_mlp", scale="paper",
              variant=shortened, history=sgd)]
    outcome = artefacts.fig3_right(Records(rs, shift=shortened), tmp_path)
    assert outcome.skipped is None and outcome.missing == ["LAMB (fig3_deep_mlp: mnist_mlp)"]
    text = (tmp_path / "fig3_right" / "comparison.md").read_text()
    assert "cut short (task.epochs=10)" in text and "has their 50 epochs" in text
    rows = comparison(tmp_path, "fig3_right")
    per_epoch = {(r[0], int(r[3])): r for r in rows if len(r) == 9 and r[3].isdigit()}
    assert sorted(e for o, e in per_epoch if o == "Nero") == list(range(1, 11))  # only ours
    assert per_epoch[("Nero", 1)][8] == "below: -0.0100"
    assert per_epoch[("Nero", 1)][5] == f"{low[0]:.4f}" and per_epoch[("Nero", 1)][7] == f"{high[0]:.4f}"
    assert per_epoch[("Nero", 2)][8] == "inside"
    assert per_epoch[("Nero", 3)][8] == "above: +0.0200"
    assert per_epoch[("Nero", 4)][8] == "inside"  # 1e-6 above: under half an image
    assert all(per_epoch[("Adam", e)][8] == "inside" for e in range(1, 11))
    assert ("SGD", 1) not in per_epoch  # ours at 0.01, theirs chose 0.1: not their seed range
    assert ("- Nero (η=0.001), our seed 0, 10 epochs: inside at epochs 2, 4-10; above at epoch 3 "
            "(by up to +0.0200, epoch 3); below at epoch 1 (by up to -0.0100, epoch 1).") in text
    search = {(r[0], r[1]): r for r in rows if len(r) == 10 and r[0] != "optimiser"}
    assert len(search) == 16  # their 4 lrs for each of 4 optimisers
    theirs = next(r for r in published.fig3_right() if r.stage == "lr_search"
                  and r.optimizer == "sgd" and r.lr == 0.01)
    assert search[("SGD", "0.01")][4:8] == ["10", "0.3000", f"{theirs.train_acc[9]:.4f}",
                                            f"{0.3 - theirs.train_acc[9]:+.4f}"]
    assert search[("SGD", "0.01")][9] == "—"  # ours stop at 10 of their 50: no test Δ
    assert search[("SGD", "0.1")][4] == "no run"


def test_fig3_right_full_runs_meet_the_authors_final_test_accuracy(tmp_path):
    lamb = authors_seeds("lamb")
    top = max(r.test_acc for r in lamb)
    history = [{"epoch": e, "train/acc": lamb[1].train_acc[e - 1], "test_acc": top + 0.01}
               for e in range(1, 51)]
    rs = [rec("mnist_mlp", "lamb", 0.01, 2, 0.7, sweep="fig3_deep_mlp", scale="paper",
              history=history),
          rec("mnist_mlp", "lamb", 0.01, 0, 0.7, sweep="fig3_deep_mlp", scale="paper",
              variant={"task.epochs": 10}, history=history[:10])]  # another variant: not used
    artefacts.fig3_right(Records(rs), tmp_path)
    rows = comparison(tmp_path, "fig3_right")
    final = [r for r in rows if len(r) == 6 and r[0] == "LAMB"]
    assert final == [["LAMB", "0.01", "2", f"{top + 0.01:.4f}",
                      f"{min(r.test_acc for r in lamb):.4f}-{top:.4f}", "above: +0.0100"]]
    per_epoch = [r for r in rows if len(r) == 9 and r[0] == "LAMB"]
    assert len(per_epoch) == 50 and all(r[2] == "2" and r[8] == "inside" for r in per_epoch)


def test_fig3_right_draws_every_optimiser_in_its_own_panels(tmp_path, monkeypatch):
    """SGD, Adam and LAMB all sit at chance: each gets its own panels, and in an lr-search panel
    runs on the same line carry distinct, staggered markers."""
    drawn = {}
    save = artefacts.figures.save
    monkeypatch.setattr(artefacts.figures, "save", lambda fig, *a: drawn.setdefault("fig", fig)
                        and save(fig, *a))
    rs = [rec("mnist_mlp", o, lr, 0, 0.1124, sweep="fig3_deep_mlp", scale="paper",
              history=[{"epoch": e, "train/acc": 0.1124, "test_acc": 0.1135} for e in (1, 2)])
          for o, lr in (("nero", 0.001), ("sgd", 0.1), ("adam", 0.001), ("lamb", 0.01))]
    artefacts.fig3_right(Records(rs), tmp_path)
    top, bottom = drawn["fig"].axes[:4], drawn["fig"].axes[4:]
    assert [ax.get_title().split(",")[0] for ax in top] == ["Nero", "SGD", "Adam", "LAMB"]
    for ax in top:
        assert "ours, seed 0" in [line.get_label() for line in ax.get_lines()]
    for ax in bottom:
        theirs = [line for line in ax.get_lines() if line.get_label().startswith("authors")]
        assert len(theirs) == 4
        assert len({(line.get_marker(), str(line.get_markevery())) for line in theirs}) == 4


def test_published_fig3_right_csv_is_every_run_and_epoch_of_the_authors_pickles(tmp_path):
    import csv
    import pickle
    import subprocess

    from tests.helpers import REPO
    authors = REPO / "results" / "published" / "authors"
    out = tmp_path / "runs.csv"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "published_fig3_right.py"),
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # the committed CSV is what the script writes
    assert out.read_bytes() == (REPO / "results" / "published" / "fig3_right_runs.csv").read_bytes()
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    expected = []
    for name in ("100-layer-lr-search.p", "100-layer-3-seeds.p"):
        with open(authors / name, "rb") as f:  # our committed copies: a plain reference read
            runs = pickle.load(f)
        for (opt, lr, seed), (train, test) in runs.items():
            expected += [(name, opt, lr, seed, e, acc, test) for e, acc in enumerate(train, 1)]
    got = [(r["source"], r["optimizer"], float(r["lr"]), int(r["seed"]), int(r["epoch"]),
            float(r["train_acc"]), float(r["test_acc"])) for r in rows]
    assert got == expected  # exactly the pickles' floats, every run, every epoch
    assert len({g[:4] for g in got}) == len(published.fig3_right())
    by_run = {(r.source, r.optimizer, r.lr, r.seed): r for r in published.fig3_right()}
    for source, opt, lr, seed, epoch, acc, test in got:
        run = by_run[(source, opt, lr, seed)]
        assert run.train_acc[epoch - 1] == acc and run.test_acc == test


def test_published_fig3_right_refuses_a_pickle_that_would_run_code(tmp_path):
    import os
    import pickle
    import shutil
    import subprocess

    from tests.helpers import REPO
    marker = tmp_path / "ran"

    class Crafted:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    folder = tmp_path / "authors"
    folder.mkdir()
    shutil.copy(REPO / "results" / "published" / "authors" / "100-layer-lr-search.p", folder)
    (folder / "100-layer-3-seeds.p").write_bytes(pickle.dumps({("nero", 0.001, 0): Crafted()}))
    out = tmp_path / "runs.csv"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "published_fig3_right.py"),
                           "--authors", str(folder), "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 1 and not marker.exists() and not out.exists()
    assert done.stderr.count("\n") == 1 and "only plain data is allowed" in done.stderr
    from scripts import published_fig3_right as script
    bad = tmp_path / "bad.p"
    bad.write_bytes(pickle.dumps({("nero", 0.001, 0): ([0.1, "0.2"], 0.3)}))
    with pytest.raises(ValueError, match="is not \\(opt, lr, seed\\)"):
        script.load(bad)


def test_fig8_puts_lamb_with_momentum_beside_table_1s_pong_row(tmp_path):
    rs = [rec("pong_ppo", o, lr, s, value, history=[{"epoch": e, "reward": value} for e in (1, 2)])
          for o, lr, value in (("nero", 0.01, 20.0), ("sgd", 0.1, 10.0), ("adam", 1e-4, 15.0),
                               ("lamb", 1e-3, -19.0)) for s in range(3)]
    rs += [rec("pong_ppo", "lamb", 0.1, 0, -21.0, history=[{"epoch": 1, "reward": -21.0}])]
    rs += [rec("pong_ppo", "lamb_beta1", 1e-3, s, 18.0 + s, sweep="fig8",
               history=[{"epoch": 1, "reward": 18.0 + s}]) for s in range(3)]
    outcome = artefacts.fig8(Records(rs), tmp_path)
    assert outcome.skipped is None and not outcome.missing
    rows = {r[1]: r for r in comparison(tmp_path, "fig8")[1:]}
    assert rows["Nero"][4] == "20.6 ± 0.05" and rows["Nero"][5] == "-0.62"
    assert rows["LAMB"][2] == "0.001" and rows["LAMB"][4] == "-19.5 ± 0.1"  # best lr chosen
    assert rows["LAMB β1=0.9"][3] == "19 ± 0.816" and rows["LAMB β1=0.9"][4] == "not published"


def test_table1_shows_wikitext2_validation_and_test_perplexity_of_the_same_runs(tmp_path):
    def run(opt, lr, seed, val, test):
        return rec("wikitext2_transformer", opt, lr, seed, val, scale="paper",
                   extra={"test_ppl_of_best_val_model": test})
    rs = [run("nero", 0.01, s, 170.0 + s, 160.0 + 2 * s) for s in range(3)]
    rs += [run("nero", 0.1, 0, 200.0, 100.0)]  # a worse lr: its test value is never used
    outcome = artefacts.table1(Records(rs), tmp_path)
    assert outcome.skipped is None
    rows = comparison(tmp_path, "table1")[1:]
    val = [r for r in rows if r[:2] == ["wikitext2_transformer", "nero"]]
    test = [r for r in rows if r[:2] == [artefacts.WIKITEXT2_TEST, "nero"]]
    assert val[0][2:] == ["171 ± 0.816", "173 ± 0.51", "-1.99"]
    assert test[0][2:] == ["162 ± 1.63", "173 ± 0.51", "-10.99"]
    assert not [r for r in rows if r[0] == artefacts.WIKITEXT2_TEST and r[1] != "nero"]
    assert "test_ppls.txt" in (tmp_path / "table1" / "comparison.md").read_text()


def test_fig9_shows_the_five_configurations_and_the_target(tmp_path):
    def run(opt, variant, seed, err, lr=None):
        return rec("imagenet_resnet50", opt, lr or (0.1 if opt == "sgd" else 0.01), seed, err,
                   sweep="fig9", variant=variant,
                   history=[{"epoch": 1, "top1_error": err, "train/top1_acc": 0.8}])
    rs = [run("sgd", {}, s, 23.0 + s) for s in range(3)]
    rs += [run("sgd", {"optimizer.weight_decay": 0.0}, s, 26.0) for s in range(3)]
    rs += [run("nero", {}, s, 25.0) for s in range(2)]  # lr 0.01, one seed missing
    rs += [run("nero", {}, s, 30.0 + s, lr=0.1) for s in range(3)]  # worse, yet shown as it is
    outcome = artefacts.fig9(Records(rs), tmp_path)
    assert outcome.skipped is None
    assert outcome.missing == ["Nero tuned (fig9: imagenet_resnet50)"]
    rows = {r[1]: r for r in comparison(tmp_path, "fig9")[1:]}
    assert rows["SGD + wd"][3] == "24 ± 0.816" and rows["SGD, no wd"][3] == "26 ± 0"
    # The two out-of-the-box lrs (gap 30) are two curves, neither the better of both.
    script, readme = rows["Nero OOTB (script, lr 0.1)"], rows["Nero OOTB (README, lr 0.01)"]
    assert (script[2], script[3]) == ("0.1", "31 ± 0.816")
    assert (readme[2], readme[3]) == ("0.01", "25 ± 0")
    assert rows["Nero tuned"][3] == "—"


# -- the command line ---------------------------------------------------------------------------------
def test_cli_writes_what_the_records_allow_and_says_what_it_skipped(tmp_path, capsys):
    root = tmp_path / "results"
    for opt, value in (("nero", 10.0), ("sgd", 12.0)):
        for seed in range(3):
            path = Identity("table1", "smoke", "cifar10_vgg11", opt, 0.01, seed).directory(root)
            records.write(path / "record.json", rec("cifar10_vgg11", opt, 0.01, seed,
                                                    value + seed))
    (root / "junk").mkdir()
    (root / "junk" / "record.json").write_text("{not json")
    from scripts import aggregate as cli

    assert cli.main([str(root)]) == 0
    out = capsys.readouterr().out
    art = root / "artefacts"
    for name in ("table1/table1.md", "table1/table1.csv", "table1/table1.tex",
                 "table1/comparison.md", "fig5/fig5.png", "fig5/fig5.pdf", "fig5/comparison.md",
                 "lr_sensitivity/lr_sensitivity.png", "profile/profile.pdf"):
        assert (art / name).stat().st_size > 0, name
    assert "skipped fig3_left: no records of fig3_cwn" in out
    assert "without" in next(line for line in out.splitlines() if line.startswith("wrote   fig5"))
    assert "ignored " in out and "junk/record.json is not a readable record" in out
    assert cli.main([str(root), "--only", "fig3_left"]) == 2  # nothing it could write
    assert cli.main([str(tmp_path / "empty_missing")]) == 2
    assert cli.main([str(root), "--only", "fig99"]) == 2


def test_cli_variant_draws_a_shortened_sweep_and_says_so(tmp_path, capsys):
    """--variant task.epochs=3 takes the shortened runs beside full ones, never a mix, and
    every caption names the setting; without it the full runs are used."""
    root = tmp_path / "results"
    for variant, value in (({}, 10.0), ({"task.epochs": 3}, 40.0)):
        for seed in range(3):
            name = ",".join(f"{k.split('.')[-1]}={v}" for k, v in variant.items())
            path = Identity("table1", "smoke", "cifar10_vgg11", "nero", 0.01, seed, variant,
                            name).directory(root)
            records.write(path / "record.json", rec(
                "cifar10_vgg11", "nero", 0.01, seed, value, variant=variant))
    from scripts import aggregate as cli

    for args, mean, said in (([], "10.00", False), (["--variant", "task.epochs=3"], "40.00", True)):
        out = tmp_path / f"out{len(args)}"
        assert cli.main([str(root), "--only", "table1", "--out", str(out), *args]) == 0
        text = (out / "table1" / "table1.md").read_text()
        assert f"{mean} ± 0.00" in text
        assert ("Not the paper's settings: every run has task.epochs=3." in text) is said
    assert cli.main([str(root), "--variant", "epochs"]) == 2
    assert "--variant: 'epochs' is not KEY=VALUE" in capsys.readouterr().err


def test_reading_a_wandb_project_through_the_public_api(tmp_path, monkeypatch):
    stored = [rec("cifar10_vgg11", "nero", 0.01, s, 11.0 + s) for s in range(3)]

    class Run:
        def __init__(self, r):
            self.summary = {"nero_record": json.dumps(r.to_json())}

    class Api:
        def runs(self, path):
            assert path == "me/nero-repro"
            return [Run(r) for r in stored] + [types.SimpleNamespace(summary={})]

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Api=Api))
    from scripts import aggregate as cli

    assert cli.main(["--wandb", "me/nero-repro", "--out", str(tmp_path), "--only", "table1"]) == 0
    assert "12.00 ± 0.82" in (tmp_path / "table1" / "table1.md").read_text()


def test_every_experiment_composes():
    from tests.helpers import REPO, compose

    for path in sorted((REPO / "conf" / "experiment").rglob("*.yaml")):
        name = path.relative_to(REPO / "conf" / "experiment").with_suffix("").as_posix()
        cfg = compose(f"+experiment={name}")
        assert cfg.sweep and cfg.task.name
