"""The lr-transfer artefact and its claim, on records with known answers."""

from __future__ import annotations

import itertools
import math

import pytest

from tasks.analysis import claims, registry, transfer
from tasks.analysis.selection import Records
from tasks.runner.records import Record
from tests.test_analysis import rec

SHAPES = [(128, 4), (256, 4), (256, 8)]  # widths 128, 256 at depth 4; depths 4, 8 at width 256
GRID = (0.001, 0.01, 0.1)


def runs(best: dict[str, list[float]], epochs: float = 2.0, status: str = "ok") -> list[Record]:
    """One seed-0 run per optimiser, shape and lr of GRID: test accuracy 0.9 at the shape's best
    lr (``best[optimizer][i]`` for SHAPES[i]) and lower the further the lr is from it."""
    out = []
    for o, bests in best.items():
        for (width, depth), b in zip(SHAPES, bests):
            for lr in GRID:
                acc = 0.9 - 0.1 * abs(math.log10(lr / b))
                variant = {"task.width": float(width), "task.depth": float(depth),
                           "task.epochs": epochs}
                out.append(rec("mnist_mlp", o, lr, 0, acc, sweep=transfer.SWEEP, scale="paper",
                               variant=variant, status=status,
                               history=[{"epoch": 2, "train/acc": acc, "test_acc": acc}]))
    return out


def verdict(rs: list[Record]) -> claims.Verdict:
    claim = next(c for c in claims.CLAIMS if c.key == "transfer.nero_lr_moves_less")
    return claims.judge(claim, Records(rs), registry.makers())


def test_expected_best_of_k_lrs_is_the_mean_over_every_draw():
    values = sorted([0.1, 0.5, 0.93, 0.97, 0.96, 0.2])
    for k in range(1, len(values) + 1):
        draws = list(itertools.combinations(values, k))
        assert transfer.expected_best(values, k) == pytest.approx(
            sum(max(d) for d in draws) / len(draws), rel=1e-12)


def test_best_lrs_series_and_moves_are_read_from_the_records():
    sweep = transfer.collect(Records(runs({"nero": [0.01, 0.01, 0.01],
                                           "adam": [0.01, 0.001, 0.1]})))
    assert sweep.widths == [(128, 4), (256, 4)] and sweep.depths == [(256, 4), (256, 8)]
    assert [sweep.best("adam", s) for s in SHAPES] == [0.01, 0.001, 0.1]
    assert sweep.moves("nero", sweep.widths) == 0.0
    assert sweep.moves("adam", sweep.widths) == pytest.approx(1.0)
    assert sweep.moves("adam", sweep.depths) == pytest.approx(2.0)
    # k = all lrs: every shape's best score; k = 1: the mean score of the grid
    budget = sweep.budget("nero")
    assert budget[-1] == pytest.approx(0.9) and budget[0] == pytest.approx((0.8 + 0.9 + 0.8) / 3)


def test_a_diverged_run_scores_chance_and_never_wins():
    rs = runs({"sgd": [0.1, 0.1, 0.1]})
    for r in rs:
        if r.lr == 0.1 and r.variant["task.width"] == 128.0:
            r.status, r.final, r.history = "diverged", None, []
    sweep = transfer.collect(Records(rs))
    assert sweep.scores["sgd"][(128, 4)][0.1] == transfer.CHANCE
    assert sweep.best("sgd", (128, 4)) == 0.01


def test_records_of_other_settings_are_never_mixed_in():
    rs = runs({"nero": [0.01, 0.01, 0.01]}) + runs({"nero": [0.1, 0.1, 0.1]}, epochs=3.0)[:2]
    sweep = transfer.collect(Records(rs))
    assert [sweep.best("nero", s) for s in SHAPES] == [0.01, 0.01, 0.01]
    assert any("ignored 2 records of other settings" in n for n in sweep.notes)


def test_the_claim_holds_fails_ties_and_waits_on_records_with_known_answers():
    moving = {"adam": [0.001, 0.01, 0.1], "sgd": [0.1, 0.01, 0.001]}
    assert verdict(runs({"nero": [0.01] * 3, **moving})).kind == claims.HOLDS
    assert verdict(runs({"nero": [0.001, 0.1, 0.01], **moving})).kind == claims.FAILS
    tie = runs({"nero": [0.01] * 3, "adam": [0.01] * 3, "sgd": [0.1, 0.01, 0.001]})
    assert verdict(tie).kind == claims.INCONCLUSIVE
    # the same ratio at other lrs is the same move (log10 of each lr would differ in the last bit)
    assert transfer.Sweep({"a": {(1, 1): {0.01: 1.0}, (2, 1): {0.03: 1.0}},
                           "b": {(1, 1): {0.001: 1.0}, (2, 1): {0.003: 1.0}}}, [], [], [], []
                          ).moves("a", [(1, 1), (2, 1)]) == transfer.Sweep(
        {"b": {(1, 1): {0.001: 1.0}, (2, 1): {0.003: 1.0}}}, [], [], [], []).moves(
        "b", [(1, 1), (2, 1)])
    absent = verdict(runs({"nero": [0.01] * 3, "adam": moving["adam"]}))
    assert absent.kind == claims.NOT_RUN and "--artefacts lr_transfer" in absent.run


def test_the_artefact_writes_its_declared_files_with_the_best_lrs(tmp_path):
    rs = runs({"nero": [0.01] * 3, "adam": [0.001, 0.01, 0.1]})
    outcome = registry.ARTEFACTS["lr_transfer"].make(Records(rs), tmp_path, ())
    assert sorted(p.name for p in outcome.files) == sorted(registry.ARTEFACTS["lr_transfer"].files)
    table = (tmp_path / "lr_transfer" / "lr_transfer.md").read_text()
    # Adam's expected best: of one random lr, (0.9 + 0.8 + 0.7) / 3 at two shapes, (0.8 + 0.9 +
    # 0.8) / 3 at one; of two, the better of each pair; of three, 0.9
    assert ("| Adam | 0.001 (0.9000) | 0.01 (0.9000) | 0.1 (0.9000) | 1.0 | 1.0 | 0.811 | 0.867 "
            "| 0.900 |") in table
    assert "| Nero | 0.01 (0.9000) | 0.01 (0.9000) | 0.01 (0.9000) | 0.0 | 0.0 |" in table
    assert set(outcome.missing) == {f"{o} ({transfer.SWEEP}: mnist_mlp)"
                                    for o in ("sgd", "lamb", "madam", "muon")}
    empty = registry.ARTEFACTS["lr_transfer"].make(Records([]), tmp_path / "none", ())
    assert empty.skipped and not (tmp_path / "none").exists()


def test_a_shape_run_at_part_of_the_grid_is_left_out_not_judged_on_it():
    rs = [r for r in runs({"adam": [0.01, 0.001, 0.1]})
          if not (r.variant["task.depth"] == 8.0 and r.lr == 0.1)]  # its best lr not run yet
    sweep = transfer.collect(Records(rs))
    assert (256, 8) not in sweep.scores["adam"] and len(sweep.depths) == 1  # no depth series
    assert "adam at width 256, depth 8: left out, 2 of the 3 lrs run" in sweep.notes


def test_a_shape_no_lr_trains_moves_infinitely_far():
    rs = runs({"sgd": [0.1, 0.1, 0.1], "nero": [0.01] * 3, "adam": [0.001, 0.01, 0.1]})
    for r in rs:
        if r.optimizer == "sgd" and r.variant["task.depth"] == 8.0:
            r.history = [{"epoch": 2, "test_acc": 0.1135}]  # chance at every lr
    sweep = transfer.collect(Records(rs))
    assert not sweep.trains("sgd", (256, 8)) and sweep.trains("sgd", (256, 4))
    assert sweep.moves("sgd", sweep.depths) == math.inf
    assert sweep.moves("sgd", sweep.widths) == 0.0
    v = verdict(rs)  # across widths Nero and SGD tie (0 and 0); across depths SGD never trains
    assert v.kind == claims.INCONCLUSIVE
    assert "holds: across depths (256, 4), (256, 8): Nero's best lr moves 0.0 decades, SGD's ∞" in v.detail
