"""One run, one identity: variants get their own folders and records, never a stale one."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from tasks.errors import UserError
from tasks.runner import identity, records
from tests.helpers import compose, run_cell, train_cli


def ident(*overrides: str) -> identity.Identity:
    return identity.of(compose(*overrides))


# -- what is and is not part of a run's identity ------------------------------------------------
def test_variant_names_every_computing_key_that_differs_from_the_defaults():
    base = ident("task=mnist_cwn", "optimizer=adam")
    assert base.variant == {} and base.variant_name == ""
    sigma = ident("task=mnist_cwn", "optimizer=adam", "task.sigma=100")
    assert sigma.variant == {"task.sigma": 100.0} and sigma.variant_name == "sigma=100"
    assert sigma.subdir() == Path("paper/mnist_cwn/adam/sigma=100/lr=0.01/seed=0")
    assert sigma.fingerprint != base.fingerprint
    both = ident("task=mnist_mlp", "optimizer=nero", "task.depth=5", "optimizer.beta=0.9")
    assert both.variant == {"task.depth": 5.0, "optimizer.beta": 0.9}
    assert both.variant_name == "depth=5,beta=0.9"


def test_how_and_where_a_run_happens_is_not_part_of_it():
    base = ident("task=cifar10_vgg11")
    for extra in ("device=cpu", "threads=1", "data_dir=/elsewhere", "out_dir=/x", "logger=none",
                  "progress=false", "task.num_workers=0", "download=false",
                  "checkpoint.every_minutes=1", "log_every=7", "sweep=mine"):
        other = ident("task=cifar10_vgg11", extra)
        assert (other.fingerprint, other.variant) == (base.fingerprint, {}), extra


def test_numbers_are_canonical_and_the_lr_and_seed_are_in_the_path_not_the_variant():
    assert ident("task=mnist_cwn", "task.sigma=100").fingerprint == \
        ident("task=mnist_cwn", "task.sigma=100.0").fingerprint
    other = ident("task=mnist_cwn", "optimizer.lr=0.5", "seed=3")
    assert other.variant == {} and other.subdir().parts[-2:] == ("lr=0.5", "seed=3")


def test_nested_and_colliding_keys_get_their_shortest_unique_names():
    cgan = ident("task=cifar10_cgan", "optimizer=adam", "optimizer.modules.D.betas=[0.5,0.9]",
                 "task.schedule.gamma=0.5")
    assert cgan.variant_name == "gamma=0.5,D.betas=0.5_0.9"
    pong = ident("task=pong_ppo", "task.gamma=0.9")  # pong also has task.schedule: no clash
    assert pong.variant_name == "gamma=0.9"


def test_long_variant_names_keep_a_prefix_and_a_hash():
    a = ident("task=multi30k_transformer", "task.d_model=256", "task.d_inner=1024",
              "task.n_layers=3", "task.n_head=4", "task.dropout=0.2", "task.min_freq=2")
    b = ident("task=multi30k_transformer", "task.d_model=256", "task.d_inner=1024",
              "task.n_layers=3", "task.n_head=4", "task.dropout=0.2", "task.min_freq=5")
    assert len(a.variant_name) <= identity.MAX_VARIANT_NAME
    assert a.variant_name.startswith("d_inner=1024,d_model=256,") and "more-" in a.variant_name
    assert a.variant_name != b.variant_name
    assert len(a.variant) == 6  # the record keeps every key, whatever the folder name


def test_optimizer_variants_inherit_their_familys_settings_for_a_task():
    assert compose("task=pong_ppo", "optimizer=lamb_cs").optimizer.eps == 1e-5
    assert compose("task=pong_ppo", "optimizer=lamb_beta1").optimizer.eps == 1e-5
    assert list(compose("task=pong_ppo", "optimizer=lamb_beta1").optimizer.betas) == [0.9, 0.999]
    assert compose("task=mnist_mlp", "optimizer=lamb_cs").optimizer.eps == 1e-6
    assert compose("task=pong_ppo", "optimizer=lamb_cs", "optimizer.eps=1e-3").optimizer.eps == 1e-3


@pytest.mark.parametrize("override,message", [
    ("seed=-1", "seed must be a whole number"),
    ("optimizer.lr=[1,2]", "optimizer.lr must be a finite number > 0, got [1, 2]"),
    ("optimizer.lr=-1", "optimizer.lr must be a finite number > 0"),
    ("sweep=../../escape", "sweep must be a plain name"),
])
def test_bad_identity_values_are_refused(override, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ident("task=mnist_mlp", override)


@pytest.mark.parametrize("override", ["seed=-x", "seed=1.5", "optimizer.lr=[1,2]"])
def test_bad_identity_values_are_one_line_on_the_command_line(tmp_path, override):
    out = train_cli("scale=smoke", "logger=none", f"out_dir={tmp_path}", override)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert not any(tmp_path.rglob("record.json"))


# -- records are never shared or reused across configurations ------------------------------------
@pytest.mark.slow
def test_fig3_left_sweep_gives_six_records_with_the_right_sigma(tmp_path):
    args = ("-m", "+experiment=fig3_cwn", "scale=smoke", "logger=none", f"out_dir={tmp_path}",
            "progress=false")
    out = train_cli(*args, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    found = list(records.find(tmp_path))
    assert len(found) == 6 and all(r.status == "ok" for r in found)
    for r in found:
        sigma = r.config["task"]["sigma"]
        assert sigma in (1.0, 100.0)
        assert r.variant == ({} if sigma == 1.0 else {"task.sigma": 100.0})
        assert ("sigma=100" in r.path) == (sigma == 100.0)
    assert sorted((r.config["task"]["sigma"], r.seed) for r in found) == \
        [(s, seed) for s in (1.0, 100.0) for seed in (0, 1, 2)]
    # the two sigmas really trained differently
    by_sigma = {r.config["task"]["sigma"]: r.final for r in found if r.seed == 0}
    assert by_sigma[1.0] != by_sigma[100.0]
    # Relaunched unchanged: every cell is skipped, nothing is rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("record.json")}
    again = train_cli(*args, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipping") == 6
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("record.json")} == stamps


@pytest.mark.parametrize("change", ["optimizer.beta=0.9", "task.depth=3"])
def test_a_changed_setting_trains_again_into_its_own_folder(tmp_path, change):
    first = run_cell(tmp_path, "task=mnist_mlp", "scale=smoke", "task.epochs=1")
    second = run_cell(tmp_path, "task=mnist_mlp", "scale=smoke", "task.epochs=1", change)
    assert not second.skipped and second.status == "ok"
    assert Path(second.path) != Path(first.path)
    key, value = change.split("=")
    assert second.variant[key] == float(value)
    again = run_cell(tmp_path, "task=mnist_mlp", "scale=smoke", "task.epochs=1", change)
    assert again.skipped and again.final == second.final


def test_a_record_of_another_configuration_is_never_reused(tmp_path, capsys):
    record = run_cell(tmp_path, "task=mnist_mlp", "scale=smoke")
    path = Path(record.path)
    stored = json.loads(path.read_text())
    stored["config"]["task"]["width"] = 32  # e.g. the defaults changed since it was written
    path.write_text(json.dumps(stored))
    with pytest.raises(UserError, match=r"record of another configuration \(task.width 32 vs 64\)"):
        run_cell(tmp_path, "task=mnist_mlp", "scale=smoke")
    forced = run_cell(tmp_path, "task=mnist_mlp", "scale=smoke", "force=true")
    assert not forced.skipped and json.loads(path.read_text())["config"]["task"]["width"] == 64


def test_records_of_the_old_layout_are_reused_only_for_their_own_configuration(tmp_path):
    record = run_cell(tmp_path, "task=mnist_mlp", "scale=smoke")
    path = Path(record.path)
    new = json.loads(path.read_text())
    ident = new.pop("identity")  # schema 1 before variants: the identity flat, with no variant
    old = {**new, "schema": 1, **{k: ident[k] for k in ("sweep", "scale", "task", "optimizer",
                                                        "lr", "seed")}}
    path.write_text(json.dumps(old))
    assert run_cell(tmp_path, "task=mnist_mlp", "scale=smoke").skipped


def test_wandb_run_names_groups_and_config_carry_the_variant(tmp_path, monkeypatch):
    calls = []

    class Run:
        id = "abc123"

        def finish(self, exit_code=0):
            pass

        def log(self, *a, **k):
            pass

        summary = {}

    fake = types.SimpleNamespace(init=lambda **kw: calls.append(kw) or Run(),
                                 Settings=lambda **kw: kw, Image=None)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_cell(tmp_path, "task=mnist_cwn", "scale=smoke", "task.sigma=100", "logger=wandb")
    (kw,) = calls
    assert kw["group"] == "adhoc/smoke/mnist_cwn/sigma=100"
    assert "sigma=100" in kw["name"] and "sigma=100" in kw["tags"]
    assert kw["config"]["identity"]["variant"] == {"task.sigma": 100.0}
    assert kw["config"]["variant"] == "sigma=100"
