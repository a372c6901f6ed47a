"""The shared runner: records, resume after SIGKILL, divergence, bad input, W&B, MNIST data."""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tasks import files
from tasks.errors import UserError
from tasks.runner import records
from tasks.runner.identity import Identity
from tests.helpers import (
    REPO,
    assert_resumed_as_uninterrupted,
    compose,
    first,
    killed_and_resumed,
    run_cell,
    train_cli,
)


# -- records ---------------------------------------------------------------------------------
def test_smoke_run_trains_and_writes_a_complete_record(smoke):
    record = smoke("task=mnist_mlp", "optimizer=nero", "task.epochs=3")
    assert record.status == "ok"
    path = Path(record.path)
    assert path.name == "record.json"
    assert path.parent.name == "seed=0" and path.parent.parent.name == "lr=0.01"
    on_disk = json.loads(path.read_text())
    for key in ("identity", "metric", "goal", "final", "best", "history", "status", "wall_time_s",
                "device", "versions", "git", "config", "hardware", "backend", "diagnostics"):
        assert key in on_disk, key
    assert on_disk["schema"] == records.SCHEMA == 2
    assert on_disk["identity"] == {"sweep": "adhoc", "scale": "smoke", "task": "mnist_mlp",
                                   "optimizer": "nero", "variant": {"task.epochs": 3.0},
                                   "lr": 0.01, "seed": 0, "variant_name": "epochs=3",
                                   "fingerprint": record.fingerprint}
    assert not set(on_disk) & set(on_disk["identity"])  # the identity is stored once
    assert path.parent.parent.parent.name == "epochs=3"
    assert records.read(path) == record
    losses = [e["train/loss"] for e in on_disk["history"]]
    assert len(losses) == 3 and losses[-1] < 0.5 * losses[0]  # it really trains
    assert on_disk["final"] == on_disk["history"][-1]["train/acc"]
    assert on_disk["best"] == max(e["train/acc"] for e in on_disk["history"])
    assert not (path.parent / "checkpoint.pt").exists()  # removed after an ok run


def test_ok_record_is_skipped_on_relaunch(smoke):
    first = smoke("task=mnist_mlp", "optimizer=sgd")
    again = smoke("task=mnist_mlp", "optimizer=sgd")
    assert again.skipped and again.final == first.final


ANY_RUN = Identity("adhoc", "smoke", "mnist_mlp", "nero", 0.01, 0, {"task.epochs": 3.0},
                   "epochs=3", "0123456789abcdef")
FLAT = ("sweep", "scale", "task", "optimizer", "variant", "lr", "seed", "variant_name",
        "fingerprint")


def test_a_record_reads_back_from_its_file_as_it_was_written(tmp_path):
    record = records.Record(
        ANY_RUN, "diverged", reason="non-finite training loss in epoch 2", config={"seed": 0},
        metric="train/acc", goal="max", final=0.5, best=0.75, best_epoch=1, epochs_done=2,
        steps=10, history=[{"epoch": 1, "train/acc": 0.75}], series={"acc": [0.5, 0.75]},
        extra={"k": 1}, notes=["a note"], optimizer_family="none",
        optimizer_class={"class": "nero.nero.Nero"}, device="cpu", hardware="a CPU",
        backend={"matmul_tf32": False}, versions={"torch": "2"}, git={"commit": None},
        started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:01:00+00:00",
        wall_time_s=60.0, diagnostics={"layers": {"fc1": [1.0]}})
    path = tmp_path / "record.json"
    records.write(path, record)
    back = records.read(path)
    assert back == record and back.path == str(path) and not back.skipped
    on_disk = json.loads(path.read_text())
    assert not set(on_disk) & set(FLAT) and set(on_disk["identity"]) == set(FLAT)
    path.write_text(json.dumps({**on_disk, "final": "0.5"}))
    with pytest.raises(records.Unreadable, match=r"is not a usable record \(its final is a str"):
        records.read(path)


def test_a_schema_1_record_reads_as_the_schema_2_record_of_the_same_run(tmp_path):
    """Every record under results/ is of schema 1 (the identity flat and under "identity");
    it reads into the Record that the run's schema-2 file holds."""
    real = REPO / "results/mnist-cpu/fig3_cwn/paper/mnist_cwn/adam/sigma=100/lr=0.01/seed=0"
    old = tmp_path / "old" / "record.json"
    old.parent.mkdir()
    shutil.copy(real / "record.json", old)
    raw = json.loads(old.read_text())
    assert raw["schema"] == 1 and raw["identity"]["task"] == raw["task"] == "mnist_cwn"
    record = records.read(old)
    new = tmp_path / "new" / "record.json"
    records.write(new, record)
    assert records.read(new) == record and json.loads(new.read_text())["schema"] == 2
    assert (record.sweep, record.task, record.optimizer, record.lr, record.seed) == (
        "fig3_cwn", "mnist_cwn", "adam", 0.01, 0)
    assert record.variant == {"task.sigma": 100.0} and record.variant_name == "sigma=100"
    assert record.fingerprint == raw["fingerprint"] and record.history == raw["history"]


def test_every_committed_record_reads():
    found = sorted((REPO / "results").rglob("record.json"))
    assert found
    for path in found:
        raw = json.loads(path.read_text())
        record = records.read(path)
        assert path.parent.as_posix().endswith(record.identity.subdir().as_posix())
        assert {k: getattr(record, k) for k in FLAT} == {k: raw[k] for k in FLAT}
        assert (record.config, record.final, record.status) == (raw["config"], raw["final"],
                                                                raw["status"])


def test_record_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "a" / "record.json"
    record = records.Record(ANY_RUN, "ok", final=1.0)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(UserError, match="cannot write .*record.json"):
        records.write(path, record)
    assert not path.exists()
    assert list(path.parent.iterdir()) == []  # no temporary file left behind
    monkeypatch.undo()
    records.write(path, record)
    assert records.read(path).final == 1.0
    with pytest.raises(ValueError):
        records.write(path, dataclasses.replace(record, status="maybe"))


def test_every_task_and_optimizer_composes():
    from tasks.experiments import TASKS
    from tasks.runner.optimizers import check_options

    optimizers = [p.stem for p in (REPO / "conf" / "optimizer").glob("*.yaml")]
    assert {"nero", "sgd", "adam", "lamb", "madam", "adamw", "lion"} <= set(optimizers)
    for task in TASKS:
        for scale in ("paper", "smoke"):
            assert compose(f"task={task}", f"scale={scale}").task.name == task
    # Every optimiser config, and every per-task setting of every variant of its family: each
    # key is a real constructor argument, and the class accepts the values.
    per_task = {(p.parent.name, p.stem) for p in (REPO / "conf" / "task_optimizer").rglob("*.yaml")}
    assert ("pong_ppo", "lamb") in per_task and ("cifar10_cgan", "adam") in per_task
    for opt in optimizers:
        family = compose(f"optimizer={opt}").hydra.runtime.choices.optimizer_family
        tasks = ["mnist_mlp"] + [t for t, f in per_task if f == family]
        for task in tasks:
            check_options(compose(f"task={task}", f"optimizer={opt}").optimizer)


def test_baseline_settings_as_each_experiment_ran_them():
    assert list(compose("task=cifar10_vgg11", "optimizer=adam").optimizer.betas) == [0.0, 0.999]
    assert list(compose("task=mnist_mlp", "optimizer=adam").optimizer.betas) == [0.9, 0.999]
    assert list(compose("task=mnist_mlp", "optimizer=lamb").optimizer.betas) == [0.9, 0.999]
    assert compose("task=cifar10_vgg11", "optimizer=sgd").optimizer.momentum == 0.0
    gan = compose("task=cifar10_cgan", "optimizer=adam").optimizer
    assert list(gan.betas) == [0.0, 0.999] and list(gan.modules.D.betas) == [0.9, 0.999]
    ppo = compose("task=pong_ppo", "optimizer=adam").optimizer
    assert ppo.eps == 1e-5
    lm_sgd = compose("task=wikitext2_transformer", "optimizer=sgd")
    assert lm_sgd.optimizer.grad_clip == 0.25
    assert compose("task=wikitext2_transformer", "optimizer=nero").optimizer.grad_clip is None
    imagenet = compose("task=imagenet_resnet50", "optimizer=sgd").optimizer
    assert imagenet.momentum == 0.9 and imagenet.weight_decay == 1e-4


# -- resume ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_record(tmp_path):
    # 960 steps, a checkpoint every 7: killed long before the end, after some steps past one.
    args = ["task=mnist_mlp", "optimizer=nero", "scale=smoke", "logger=none", "task.epochs=4",
            "task.n_train=12000", "checkpoint.every_steps=7", "progress=true"]
    a, b, stderr = killed_and_resumed(tmp_path, args)
    assert_resumed_as_uninterrupted(a, b, stderr)


def test_wall_time_counts_each_second_once_with_frequent_checkpoints(tmp_path):
    t0 = time.monotonic()
    record = run_cell(tmp_path, "task=mnist_mlp", "scale=smoke", "task.epochs=2",
                      "checkpoint.every_steps=1")
    wall = time.monotonic() - t0
    assert record.status == "ok"
    assert 0 < record.history[-1]["time_s"] <= record.wall_time_s <= wall


def test_sigterm_writes_a_checkpoint_and_exits(tmp_path):
    args = ["task=mnist_mlp", "optimizer=sgd", "scale=smoke", "logger=none", "task.epochs=200",
            f"out_dir={tmp_path}"]
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "train.py"), *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not first(tmp_path, "checkpoint.pt") and time.time() < deadline:  # after epoch 1
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "checkpoint written" in err
    assert not list(tmp_path.rglob("record.json"))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    run = tmp_path / "adhoc/smoke/mnist_mlp/nero/lr=0.01/seed=0"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    out = train_cli("task=mnist_mlp", "scale=smoke", "logger=none", f"out_dir={tmp_path}")
    assert out.returncode == 2
    assert "checkpoint.pt is corrupt" in out.stderr and "delete it" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (run / "record.json").exists()


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    from tasks.runner import checkpoints

    run_cell(tmp_path, "scale=smoke", "task=mnist_mlp", "checkpoint.keep=true")
    run = tmp_path / "adhoc/smoke/mnist_mlp/nero/lr=0.01/seed=0"
    (run / "record.json").unlink()
    from tasks.runner import identity

    cfg = compose("scale=smoke", "task=mnist_mlp", "logger=none", f"out_dir={tmp_path}")
    payload = checkpoints.load(run / "checkpoint.pt", identity.of(cfg).fingerprint)
    checkpoints.save(run / "checkpoint.pt", {**payload, "fingerprint": "0123456789abcdef"})
    with pytest.raises(UserError, match="different configuration"):
        run_cell(tmp_path, "scale=smoke", "task=mnist_mlp")


def test_checkpoints_hold_no_code():
    # weights_only loading: only tensors and plain containers, nothing that runs code.
    from tasks.runner import checkpoints as ckpt

    state = ckpt.rng_state()
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    torch.load(buf, weights_only=True)


# -- divergence and bad input ----------------------------------------------------------------
def test_divergence_is_recorded_and_ends_the_run(smoke):
    record = smoke("task=mnist_mlp", "optimizer=sgd", "optimizer.lr=1e6", "task.epochs=5")
    assert record.status == "diverged"
    assert "non-finite" in record.reason
    assert record.epochs_done < 5
    assert record.final is None


@pytest.mark.parametrize(
    "args,message",
    [
        (["task=nope"], "Could not find 'task/nope'"),
        (["optimizer=nope"], "Could not find 'optimizer/nope'"),
        (["optimizer.lr=-0.1"], "optimizer.lr must be a finite number > 0"),
        (["optimizer.lr=0"], "optimizer.lr must be a finite number > 0"),
        (["optimizer.betta=0.9"], "optimizer.betta"),
        (["device=cuda:7"] if not torch.cuda.is_available() else ["device=nope"], "device"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    out = train_cli("scale=smoke", "logger=none", f"out_dir={tmp_path}", *args)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.rglob("record.json"))


@pytest.mark.slow
def test_missing_data_and_unwritable_output(tmp_path):
    out = train_cli("task=mnist_mlp", "download=false", "logger=none",
                    f"data_dir={tmp_path / 'empty'}", f"out_dir={tmp_path / 'o'}")
    assert out.returncode == 2 and "error: MNIST: not in" in out.stderr and "make data" in out.stderr
    assert "Traceback" not in out.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = train_cli("scale=smoke", "logger=none", f"out_dir={blocker}")
    assert out.returncode != 0 and "cannot write to output directory" in out.stderr + out.stdout


# -- W&B -------------------------------------------------------------------------------------
def test_wandb_offline_and_no_secret_in_outputs(tmp_path):
    secret = "sk-this-must-never-be-written"
    out = train_cli("task=mnist_mlp", "scale=smoke", "logger=wandb", f"out_dir={tmp_path}",
                    env={"WANDB_MODE": "offline", "NERO_TEST_TOKEN": secret,
                         "WANDB_API_KEY": ""})
    assert out.returncode == 0, out.stderr
    run = tmp_path / "adhoc/smoke/mnist_mlp/nero/lr=0.01/seed=0"
    assert records.read(run / "record.json").status == "ok"
    assert list((run / "wandb").glob("offline-run-*"))
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert secret.encode() not in path.read_bytes(), path


def test_wandb_disabled_logs_nothing_remote(tmp_path):
    out = train_cli("task=mnist_mlp", "scale=smoke", "logger=wandb", f"out_dir={tmp_path}",
                    env={"WANDB_MODE": "disabled"})
    assert out.returncode == 0, out.stderr
    assert not list(tmp_path.rglob("offline-run-*"))
