"""The claims artefact and its statistics: hand-made records with known verdicts."""

from __future__ import annotations

import csv
import math

import pytest
from scipy import stats as sp

from tasks.analysis import claims, registry, stats, tables
from tasks.analysis.selection import Records
from tasks.runner import records
from tasks.runner.identity import Identity, plain
from tests.test_analysis import rec

CLAIM = {c.key: c for c in claims.CLAIMS}


def judge(key: str, rs: list[records.Record], **kw) -> claims.Verdict:
    return claims.judge(CLAIM[key], Records(rs, **kw), registry.makers())


# -- statistics ----------------------------------------------------------------------------------
def test_t_interval_is_students_with_n_minus_1_degrees_of_freedom():
    ci = stats.interval([1.0, 2.0, 3.0])
    half = sp.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sd 1 (ddof 1) over sqrt(3)
    assert (ci.mean, ci.low, ci.high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert half == pytest.approx(2.4841, abs=1e-4)  # t(0.975, 2) = 4.3027
    assert not stats.interval([5.0]).known
    assert stats.interval([4.0, 4.0]).low == 4.0  # no spread: the point itself


def test_paired_and_welch_differences_agree_with_scipys_tests():
    a = {0: 10.0, 1: 11.5, 2: 10.7, 3: 12.0}
    b = {0: 9.1, 1: 10.9, 2: 10.5, 3: 10.2}
    paired = stats.difference(a, b, paired=True)
    ref = sp.ttest_rel(list(a.values()), list(b.values())).confidence_interval(0.95)
    assert (paired.low, paired.high) == pytest.approx((ref.low, ref.high), rel=1e-12)
    assert paired.method == stats.PAIRED_METHOD
    welch = stats.difference(a, {0: 9.1, 1: 10.9, 2: 10.5}, paired=True)  # seeds differ: Welch
    ref = sp.ttest_ind(list(a.values()), [9.1, 10.9, 10.5], equal_var=False).confidence_interval()
    assert (welch.low, welch.high) == pytest.approx((ref.low, ref.high), rel=1e-12)
    assert welch.method == stats.WELCH_METHOD
    assert stats.difference(a, b, paired=False).method == stats.WELCH_METHOD


def test_seeds_needed_match_the_textbook_power_tables():
    # Cohen's d = 1, two-sided alpha 0.05, power 0.8: 17 per group unpaired, 10 pairs paired
    unpaired = stats.Interval(1.0, 0.0, 2.0, 3, stats.WELCH_METHOD, sd=1.0)
    paired = stats.Interval(1.0, 0.0, 2.0, 3, stats.PAIRED_METHOD, sd=1.0)
    assert stats.seeds_needed(unpaired) == 17 and stats.seeds_needed(paired) == 10
    assert stats.power(1.0, 17, False) >= 0.8 > stats.power(1.0, 16, False)
    assert stats.seeds_needed(stats.Interval(0.0, -1.0, 1.0, 3, stats.WELCH_METHOD, sd=1.0)) is None
    assert stats.seeds_text(stats.MAX_SEEDS + 1) == f"> {stats.MAX_SEEDS}"


# -- verdicts ----------------------------------------------------------------------------------------
def pong(lamb_beta1: list[float], scale: str = "paper") -> list[records.Record]:
    rs = [rec("pong_ppo", "lamb", 0.001, s, v, scale=scale) for s, v in
          enumerate((-20.0, -19.5, -20.5))]
    return rs + [rec("pong_ppo", "lamb_beta1", 0.001, s, v, sweep="fig8", scale=scale)
                 for s, v in enumerate(lamb_beta1)]


def test_each_verdict_kind_occurs_on_records_with_known_answers():
    holds = judge("fig8.lamb_beta1", pong([15.0, 16.0, 17.0]))
    assert holds.kind == claims.HOLDS and holds.label == "evidence"
    assert holds.records == "scale paper; hardware test CPU; seeds 0, 1, 2"
    assert judge("fig8.lamb_beta1", pong([-18.0, -17.0, -19.0])).kind == claims.FAILS
    unsure = judge("fig8.lamb_beta1", pong([-5.0, 10.0, 3.0]))  # the interval straddles 0
    assert unsure.kind == claims.INCONCLUSIVE
    missing = judge("fig8.lamb_beta1", pong([])[:3])
    assert missing.kind == claims.NOT_RUN
    assert "reproduce.py --artefacts fig8" in missing.run and "fig8_lamb_beta1.yaml" in missing.run
    assert "no records of fig8: pong_ppo/lamb_beta1" in missing.detail


def test_smoke_records_give_a_labelled_verdict_never_an_unlabelled_one():
    v = judge("fig8.lamb_beta1", pong([15.0, 16.0, 17.0], scale="smoke"))
    assert v.kind == claims.HOLDS and v.label == "smoke: not evidence"
    assert v.shown == "holds (smoke: not evidence)"


def constraints(nero_errors: list[float]) -> list[records.Record]:
    """fig1: Nero with both constraints against the three other settings, paired by seed."""
    rs = [rec("cifar10_vgg11", "nero", 0.01, s, v, sweep="fig1", scale="paper")
          for s, v in enumerate(nero_errors)]
    base = (11.0, 12.0, 11.5)
    return rs + [rec("cifar10_vgg11", o, 0.01, s, base[s], sweep="fig1", scale="paper")
                 for o in ("nero_none", "nero_mean", "nero_norm") for s in range(len(nero_errors))]


def test_one_seed_more_flips_an_inconclusive_verdict():
    # improvements 1.0, 2.0, 1.5 (paired): with two seeds the t-interval (df 1) holds 0, with
    # three (df 2) it is [0.26, 2.74]
    two = judge("fig1.both_constraints", constraints([10.0, 10.0]))
    three = judge("fig1.both_constraints", constraints([10.0, 10.0, 10.0]))
    assert two.kind == claims.INCONCLUSIVE and three.kind == claims.HOLDS
    half = sp.t.ppf(0.975, 2) * 0.5 / math.sqrt(3)
    assert f"improvement 1.5 [{1.5 - half:.4g}, {1.5 + half:.4g}]" in three.detail
    assert "paired by seed" in three.detail and "seeds to separate them: " in three.detail
    assert judge("fig1.both_constraints", constraints([10.0])).kind == claims.INCONCLUSIVE


def test_pong_is_never_paired_by_seed():
    rs = [rec("pong_ppo", o, 0.01, s, v + s) for o, v in (("nero", 20.0), ("sgd", 5.0),
                                                          ("adam", 6.0), ("lamb", -20.0))
          for s in range(3)]
    v = judge("table1.nero_best", rs)
    assert v.kind == claims.NOT_RUN  # the other five rows have no records
    assert "Welch" in v.detail and "paired" not in v.detail
    assert "reproduce.py --artefacts table1" in v.run


def deep_mlp(variant: dict, acc: dict[str, float]) -> list[records.Record]:
    return [rec("mnist_mlp", o, 0.001, 0, a, sweep="fig3_deep_mlp", scale="paper",
                variant=variant) for o, a in acc.items()]


def test_a_shortened_run_says_how_much_of_the_paper_it_covers():
    rs = deep_mlp({"task.epochs": 10.0}, {"nero": 0.76, "sgd": 0.112, "adam": 0.112})
    v = judge("fig3_right.deep_mlp", rs, shift={"task.epochs": 10})
    assert v.kind == claims.HOLDS and "one seed: its run decides" in v.detail
    assert "not the paper's settings: task.epochs=10 (first 10 of the paper's 50" in v.records
    assert v.shown == "holds (first 10 of the paper's 50 epochs)"
    default = judge("fig3_right.deep_mlp", rs)
    assert default.kind == claims.NOT_RUN and "aggregate.py --variant task.epochs=10" in default.run
    assert judge("fig3_right.deep_mlp", deep_mlp({}, {"nero": 0.11, "sgd": 0.11, "adam": 0.11})
                 ).kind == claims.FAILS


def test_tuned_nero_closing_the_gap_is_a_paired_contrast():
    def run(name, seed, err):
        label, opt, variant = claims.FIG9[name]
        return rec("imagenet_resnet50", opt, 0.01, seed, err, sweep="fig9", scale="paper",
                   variant=dict(variant))
    rs = [run("sgd", s, 23.0 + 0.1 * s) for s in range(3)] + [
        run("nero", s, 26.0 + 0.1 * s) for s in range(3)]
    assert judge("fig9.tuned", rs).kind == claims.NOT_RUN
    closes = rs + [run("nero_tuned", s, 23.8 + 0.1 * s) for s in range(3)]
    assert judge("fig9.tuned", closes).kind == claims.HOLDS
    short = rs + [run("nero_tuned", s, 25.5 + 0.1 * s) for s in range(3)]
    assert judge("fig9.tuned", short).kind == claims.FAILS


def test_optimiser_state_is_counted_on_the_tasks_model():
    from tests.helpers import compose

    config = plain(compose("task=mnist_mlp", "scale=smoke"))
    v = judge("sec4.memory", [rec("mnist_mlp", "nero", 0.01, 0, 0.9, config=config)])
    depth, width = config["task"]["depth"], config["task"]["width"]
    dims = [784] + [width] * (depth - 1) + [10]
    params = sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
    # Nero: one running average per neuron of a weight, per entry of a bias; Adam: two per
    # entry; each tensor adds its step and (Nero) its scale
    nero = sum(2 * b + 2 * 2 for b in dims[1:])
    adam = 2 * params + 2 * depth
    assert f"{params} parameters; state elements Nero {nero}, Adam {adam}" in v.detail
    assert v.kind == (claims.HOLDS if math.log(nero) / math.log(adam) < 0.75 else claims.FAILS)
    assert judge("sec4.memory", [rec("mnist_mlp", "nero", 0.01, 0, 0.9)]).kind == claims.NOT_RUN


# -- the artefact, its check and Table 1's interval column -----------------------------------------
def test_the_claims_artefact_lists_every_claim_and_the_check_finds_a_missing_one(tmp_path):
    root = tmp_path / "results"
    for r in pong([15.0, 16.0, 17.0]):
        path = Identity(r.sweep, "paper", r.task, r.optimizer, r.lr, r.seed).directory(root)
        records.write(path / "record.json", r)
    from scripts import aggregate, check_artefacts

    assert aggregate.main([str(root), "--only", "claims"]) == 0
    folder = root / "artefacts" / "claims"
    with open(folder / "claims.csv", newline="") as f:
        rows = {row["claim"]: row for row in csv.DictReader(f)}
    assert list(rows) == [c.key for c in claims.CLAIMS]
    assert rows["fig8.lamb_beta1"]["verdict"] == claims.HOLDS
    assert rows["table1.nero_best"]["verdict"] == claims.NOT_RUN
    text = (folder / "claims.md").read_text()
    assert all(f"## {c.key}: " in text for c in claims.CLAIMS)
    assert stats.T_METHOD in text and stats.POWER_METHOD in text
    assert claims.unlisted(folder) == []
    kept = [line for line in (folder / "claims.csv").read_text().splitlines(keepends=True)
            if not line.startswith("fig9.val,")]
    (folder / "claims.csv").write_text("".join(kept))
    assert claims.unlisted(folder) == ["fig9.val"]
    assert check_artefacts.main([str(root / "artefacts")]) == 1


def test_table1_keeps_the_population_std_and_adds_the_t_interval():
    rs = [rec("cifar10_vgg11", "nero", 0.01, s, v) for s, v in enumerate((1.0, 2.0, 3.0))]
    t = tables.table1(Records(rs))
    half = sp.t.ppf(0.975, 2) / math.sqrt(3)
    row = next(line for line in tables.table1_markdown(t).splitlines() if "VGG-11" in line)
    assert "2.00 ± 0.82" in row  # population std of 1, 2, 3, as the paper
    assert f"[{2 - half:.2f}, {2 + half:.2f}]" in row
    assert "Nero 95% CI" in tables.table1_markdown(t)
    nero = next(r for r in tables.table1_rows(t) if r["task"] == "cifar10_vgg11"
                and r["optimizer"] == "nero")
    assert (nero["ci95_low"], nero["ci95_high"]) == pytest.approx((2 - half, 2 + half))


def test_profile_points_have_the_range_the_intervals_allow():
    def row(errors_nero, errors_sgd):
        rs = [rec("cifar10_vgg11", "nero", 0.01, s, v) for s, v in enumerate(errors_nero)]
        rs += [rec("cifar10_vgg11", "sgd", 0.01, s, v) for s, v in enumerate(errors_sgd)]
        got = claims.profile_rows(Records(rs), ("nero", "sgd"))
        return {(r[0], r[1]): r[2:] for r in got}
    apart = row([1.0, 1.0, 1.0], [3.0, 3.0, 3.0])  # no spread: the range is the point
    assert apart[("1", "Nero")] == ["1.00", "[1.00, 1.00]"]
    assert apart[("1", "SGD")] == ["0.00", "[0.00, 0.00]"] and apart[("4", "SGD")][0] == "1.00"
    overlapping = row([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert overlapping[("1", "Nero")] == ["1.00", "[0.00, 1.00]"]
    assert overlapping[("1", "SGD")] == ["0.00", "[0.00, 1.00]"]


def test_defaults_are_composed_outside_a_hydra_app():
    """scripts/aggregate.py reads the defaults of a task (a record's variant, the paper's epochs
    of a shortened run) in a process where Hydra has registered nothing."""
    import subprocess
    import sys

    from tests.helpers import REPO

    code = ("from tasks.analysis import selection; "
            "print(selection.defaults_for('mnist_mlp', 'nero', 'paper')['task.epochs'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-400:]
    assert out.stdout.strip() == "50.0"


def test_not_improving_madam_is_a_gain_under_the_margin():
    def runs(madam_cs: float) -> list[records.Record]:
        rs = []
        for o, v in (("madam", 12.8), ("madam_cs", madam_cs), ("nero_none", 12.2),
                     ("nero", 8.6), ("lamb", 12.7), ("lamb_cs", 8.9)):
            rs += [rec("cifar10_vgg11", o, 0.02, s, v + 0.1 * s, sweep="fig2", scale="paper")
                   for s in range(3)]
        return rs
    assert judge("fig2.constraints", runs(12.6)).kind == claims.HOLDS  # gain 0.2 < 1
    assert judge("fig2.constraints", runs(10.0)).kind == claims.FAILS  # gain 2.8 > 1
    assert judge("fig2.nero_beats", runs(12.6)).kind == claims.HOLDS


def test_the_runner_up_varies_only_when_two_rows_decide_different_ones():
    def row(task, values):  # values are errors: a reward (Pong) is their negative
        sign = -1.0 if claims.GOAL[task] == "max" else 1.0
        return [rec(task, o, 0.01, s, sign * v + 0.1 * s) for o, v in values.items()
                for s in range(3)]
    adam_second = {"nero": 1.0, "sgd": 5.0, "adam": 2.0, "lamb": 4.0}
    lamb_second = {"nero": 1.0, "sgd": 5.0, "adam": 4.0, "lamb": 2.0}
    rows = [row(t, adam_second) for t in claims.TABLE1_TASKS]
    assert judge("table1.runner_up_varies", sum(rows, [])).kind == claims.FAILS
    rows[0] = row(claims.TABLE1_TASKS[0], lamb_second)
    assert judge("table1.runner_up_varies", sum(rows, [])).kind == claims.HOLDS
    assert judge("table1.nero_best", sum(rows, [])).kind == claims.HOLDS
    assert judge("table1.runner_up_varies", sum(rows[1:], [])).kind == claims.NOT_RUN
