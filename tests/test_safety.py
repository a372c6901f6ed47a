"""Nothing wrong is ever recorded as a result: damaged checkpoints, bad config values, two
writers of one cell, stopped sweeps, unreadable records, full disks and leftovers."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from tasks import files
from tasks.errors import UserError
from tasks.runner import checkpoints, identity, locks, records, validation
from tests.helpers import REPO, compose, first, run_cell, train_cli

SMOKE = ("task=mnist_mlp", "scale=smoke", "logger=none")


def cell_dir(tmp_path: Path, *overrides: str) -> Path:
    return identity.of(compose(*SMOKE, f"out_dir={tmp_path}", *overrides)).directory(tmp_path)


def one_error_line(out: subprocess.CompletedProcess) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


# -- 1. checkpoint integrity -----------------------------------------------------------------------
def test_a_checkpoint_with_damaged_bytes_is_refused(tmp_path):
    run_cell(tmp_path, "task=mnist_mlp", "scale=smoke", "checkpoint.keep=true")
    run = cell_dir(tmp_path)
    (run / "record.json").unlink()
    data = bytearray((run / "checkpoint.pt").read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # a bad sector's worth of zeros
    (run / "checkpoint.pt").write_bytes(bytes(data))
    out = train_cli(*SMOKE, f"out_dir={tmp_path}")
    line = one_error_line(out)
    assert "checkpoint.pt is corrupt (its content does not match its checksum" in line
    assert "delete it" in line and not (run / "record.json").exists()


def test_a_checkpoint_of_an_older_format_is_refused(tmp_path):
    run = cell_dir(tmp_path)
    run.mkdir(parents=True)
    torch.save({"format": 1, "fingerprint": "x"}, run / "checkpoint.pt")
    with pytest.raises(UserError, match="corrupt or not one of this suite's checkpoints"):
        run_cell(tmp_path, "task=mnist_mlp", "scale=smoke")


# -- 2. config values ------------------------------------------------------------------------------
@pytest.mark.parametrize("override,message", [
    ("task.width=0", "task.width must be > 0, got 0"),
    ("task.epochs=0", "task.epochs must be > 0, got 0"),
    ("task.epochs=-1", "task.epochs must be > 0, got -1"),
    ("task.batch_size=0", "task.batch_size must be > 0, got 0"),
    ("task.batch_size=-5", "task.batch_size must be > 0, got -5"),
    ("task.n_train=0", "task.n_train must be > 0, got 0"),
    ("seed=-1", "seed must be a whole number"),
    ("log_every=0", "log_every must be > 0, got 0"),
    ("+task.epoch=5", "unknown config key task.epoch"),
    ("+foo=1", "unknown config key foo"),
    ("+optimizer.momentum=0.5", "optimizer Nero has no option momentum"),
    ("sweep=../../escape", "sweep must be a plain name"),
    ("task.schedule.gamma=-1", "task.gamma must be > 0"),
    ("checkpoint.every_minutes=0", "checkpoint.every_minutes must be > 0"),
])
def test_out_of_range_and_unknown_values_are_refused(override, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validation.validate(compose(*SMOKE, override))


def test_bad_optimizer_values_are_refused():
    with pytest.raises(UserError, match="optimizer SGD"):
        validation.validate(compose(*SMOKE, "optimizer=sgd", "optimizer.momentum=abc"))
    with pytest.raises(UserError, match="optimizer Nero: .*beta"):
        validation.validate(compose(*SMOKE, "optimizer.beta=1.5"))


@pytest.mark.parametrize("override", ["precision=fp8", "compile=maybe", "seed=1.5", "seed=abc",
                                      "task.epochs=abc", "task.batch_size=2.5", "threads=abc"])
def test_values_of_the_wrong_type_fail_while_composing(override):
    from hydra.errors import HydraException

    from tasks.runner.cli import one_line

    with pytest.raises(HydraException) as err:
        compose(*SMOKE, override)
    text = one_line(err.value)
    assert "\n" not in text and override.split("=")[0] in text


@pytest.mark.parametrize("override,message", [
    ("precision=fp8", "expected one of [fp32, tf32, bf16]"),
    ("task.batch_size=abc", "task.batch_size=abc"),
    ("task.epochs=0", "task.epochs must be > 0"),
    ("+task.epoch=5", "unknown config key task.epoch"),
    ("optimizer=sgd optimizer.momentum=abc", "optimizer SGD"),
])
def test_bad_values_are_one_line_and_leave_nothing_behind(tmp_path, override, message):
    out = train_cli(*SMOKE, f"out_dir={tmp_path}", *override.split())
    assert message in one_error_line(out)
    assert out.returncode == 2 and not any(tmp_path.rglob("record.json"))
    assert not any(tmp_path.rglob("checkpoint.pt"))


@pytest.mark.parametrize("damage", ["truncated", "wrong magic", "bad gzip"])
def test_damaged_mnist_files_are_one_line(tmp_path, damage):
    import numpy as np

    from tests.test_mnist import write_idx

    raw = tmp_path / "data" / "MNIST" / "raw"
    images = np.zeros((20, 28, 28), np.uint8)
    write_idx(raw, "train", images, np.zeros(20, np.uint8), gz=damage == "bad gzip")
    write_idx(raw, "t10k", images, np.zeros(20, np.uint8), gz=False)
    if damage == "truncated":
        path = raw / "train-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "wrong magic":
        path = raw / "train-images-idx3-ubyte"
        path.write_bytes(b"\x00\x00\x08\x04" + path.read_bytes()[4:])
    else:
        path = raw / "train-images-idx3-ubyte.gz"
        path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(UserError, match="MNIST|cannot be unpacked"):
        run_cell(tmp_path, "task=mnist_mlp", "download=false", "task.depth=2",
                 "task.width=8", "task.epochs=1")
    assert not any(tmp_path.rglob("record.json"))


# -- 3. one writer per cell ------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_launch_of_a_running_cell_is_refused_or_waits(tmp_path):
    run = cell_dir(tmp_path)
    with locks.cell_lock(run):
        out = train_cli(*SMOKE, f"out_dir={tmp_path}")
        line = one_error_line(out)
        assert f"is being trained by pid {os.getpid()}" in line and "wait=true" in line
        assert not (run / "record.json").exists()

    holder = threading.Event()

    def hold_then_release():
        with locks.cell_lock(run):
            holder.set()
            time.sleep(2)

    thread = threading.Thread(target=hold_then_release)
    thread.start()
    holder.wait()
    waited = train_cli(*SMOKE, f"out_dir={tmp_path}", "wait=true")
    thread.join()
    assert waited.returncode == 0, waited.stderr
    assert records.read(run / "record.json").status == "ok"


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    run = cell_dir(tmp_path)
    code = (f"from tasks.runner.locks import cell_lock; from pathlib import Path; import time\n"
            f"with cell_lock(Path({str(run)!r})):\n    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert train_cli(*SMOKE, f"out_dir={tmp_path}").returncode == 0


# -- 4. a signalled sweep stops --------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])  # 1: cells in the sweep's process; 2: worker processes
def test_sigterm_stops_a_local_sweep_and_the_relaunch_resumes_it(tmp_path, jobs):
    # Three cells: with two at a time, one is still queued when the signal comes. 480 Nero steps
    # a cell (~3 s): a worker sees the stop file within a second of the signal, long before then.
    args = ["-m", *SMOKE, f"out_dir={tmp_path}", "optimizer=nero", "seed=0,1,2",
            "task.n_train=12000", "task.epochs=2", "progress=false", "checkpoint.every_steps=20"]
    env = {**os.environ, "NERO_JOBS": str(jobs), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "train.py"), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not any(tmp_path.rglob("checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # to the sweep's process only, as `kill <pid>` does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err[-3000:]
    assert "the sweep was interrupted; run the same command again to resume it" in err
    assert 1 <= len(list(tmp_path.rglob("checkpoint.pt"))) <= jobs  # the running cells
    assert not any(tmp_path.rglob("record.json"))  # no cell ran to its end or began after
    again = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *args], cwd=REPO,
                           capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    found = list(records.find(tmp_path))
    assert len(found) == 3 and all(r.status == "ok" for r in found)
    assert not any(tmp_path.rglob("checkpoint.pt"))


def test_stopping_another_sweep_in_the_same_folder_does_not_stop_this_one(tmp_path):
    """Each launch has its own stop file: the one another launch (or, before, every sweep of
    the folder) writes while it stops leaves this launch's cell running to its record."""
    args = ["-m", *SMOKE, f"out_dir={tmp_path}", "optimizer=sgd", "task.n_train=4000",
            "task.epochs=2", "progress=false", "checkpoint.every_steps=5"]
    env = {**os.environ, "NERO_JOBS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "train.py"), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not any(tmp_path.rglob("checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.05)
    for other in (".stop", ".stop-4242-0123abcd"):  # main's shared file; another launch's
        (tmp_path / "adhoc" / other).touch()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    found = list(records.find(tmp_path))
    assert len(found) == 1 and found[0].status == "ok" and found[0].epochs_done == 2


def test_a_cell_another_launch_holds_is_waited_for_not_blamed(tmp_path):
    """In a sweep (a stop file given), a cell being trained by another launch is waited for and
    its record used; when this launch is stopped while waiting, the cell is interrupted."""
    from tasks.runner.loop import Interrupted, run

    small = ("task.n_train=100", "task.n_test=50", "task.epochs=1")
    cfg = compose(*SMOKE, *small, f"out_dir={tmp_path}", f"data_dir={tmp_path / 'data'}",
                  "progress=false")
    run_dir = identity.of(cfg).directory(tmp_path)
    stop = tmp_path / "adhoc" / ".stop-1-abc"
    holder = threading.Event()

    def other_launch(seconds: float) -> None:
        with locks.cell_lock(run_dir):
            holder.set()
            time.sleep(seconds)

    thread = threading.Thread(target=other_launch, args=(1.5,))
    thread.start()
    holder.wait()
    record = run(cfg, stop_file=stop)  # waits, then trains the released cell
    thread.join()
    assert record.status == "ok"
    holder.clear()
    thread = threading.Thread(target=other_launch, args=(3,))
    thread.start()
    holder.wait()
    stop.touch()
    with pytest.raises(Interrupted, match="the sweep is stopping"):
        run(compose(*SMOKE, *small, "force=true", f"out_dir={tmp_path}"), stop_file=stop)
    thread.join()


def test_a_sweep_with_a_bad_cell_is_refused_before_any_job(tmp_path):
    out = train_cli("-m", *SMOKE, f"out_dir={tmp_path}", "optimizer.lr=0.01,-1", "task.epochs=1",
                    "progress=false", timeout=300)
    assert out.returncode == 2, out.stderr
    assert "error: optimizer.lr=-1: optimizer.lr must be a finite number > 0, got -1" in out.stderr
    assert "the sweep was not launched (2 cells)" in out.stderr
    assert not any(tmp_path.rglob("record.json")) and not any(tmp_path.rglob("checkpoint.pt"))


@pytest.mark.slow
def test_a_sweep_reports_a_cell_that_fails_in_its_job_and_reruns_only_it(tmp_path):
    bad = cell_dir(tmp_path, "task.epochs=1", "optimizer.lr=0.1")
    bad.mkdir(parents=True)
    (bad / "checkpoint.pt").write_bytes(b"garbage")  # a damaged checkpoint, found by the job
    args = ("-m", *SMOKE, f"out_dir={tmp_path}", "optimizer.lr=0.01,0.1", "task.epochs=1",
            "progress=false")
    out = train_cli(*args, timeout=300)
    assert out.returncode == 1, out.stderr
    assert "sweep: 2 cells: 1 error, 1 ok" in out.stderr
    assert "  error: optimizer.lr=0.1: checkpoint" in out.stderr and "is corrupt" in out.stderr
    (bad / "checkpoint.pt").unlink()
    again = train_cli(*args, timeout=300)
    assert again.returncode == 0 and again.stdout.count("skipping") == 1  # only that cell ran
    assert len(list(records.find(tmp_path))) == 2


# -- 5. unreadable records -------------------------------------------------------------------------
def test_an_unreadable_record_is_reported_and_the_cell_trained_again(tmp_path):
    run = cell_dir(tmp_path)
    run.mkdir(parents=True)
    (run / "record.json").write_bytes(os.urandom(300))
    out = train_cli(*SMOKE, f"out_dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    assert "record.json is not a readable record" in out.stderr and "training the cell again" in out.stderr
    assert records.read(run / "record.json").status == "ok"


def test_a_record_that_is_a_folder_is_refused_before_training(tmp_path):
    run = cell_dir(tmp_path)
    (run / "record.json").mkdir(parents=True)
    line = one_error_line(train_cli(*SMOKE, f"out_dir={tmp_path}"))
    assert "record.json is a folder, not a regular file" in line
    assert not (run / "checkpoint.pt").exists()


def test_the_aggregator_lists_what_it_ignored(tmp_path, capsys):
    from scripts import aggregate as cli

    run_cell(tmp_path, "task=mnist_mlp", "scale=smoke")
    bad = tmp_path / "adhoc" / "broken" / "record.json"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(os.urandom(100))
    problems: list[str] = []
    assert len(list(records.find(tmp_path, problems))) == 1
    assert len(problems) == 1 and "broken/record.json is not a readable record" in problems[0]
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2  # no artefact to write
    out = capsys.readouterr().out
    assert "broken/record.json is not a readable record" in out
    assert "ignored 1 unreadable or unusable (above); 1 of sweep 'adhoc', which no artefact uses" in out


# -- 6. a full or read-only disk -------------------------------------------------------------------
def test_a_full_disk_is_one_line_and_the_last_good_checkpoint_stays(tmp_path, monkeypatch):
    run = cell_dir(tmp_path, "task.epochs=3")
    real_replace = os.replace
    calls = {"n": 0}

    def replace(src, dst):
        if str(dst).endswith("checkpoint.pt"):
            calls["n"] += 1
            if calls["n"] == 2:  # the second checkpoint: the disk is full now
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(UserError, match=r"cannot write .*checkpoint.pt: no space left on the device; "
                                        "the last good checkpoint"):
        run_cell(tmp_path, "task=mnist_mlp", "scale=smoke", "task.epochs=3")
    assert (run / "checkpoint.pt").exists() and not (run / "record.json").exists()
    assert not list(run.glob(f"{checkpoints.TEMP_PREFIX}*"))
    monkeypatch.undo()
    resumed = run_cell(tmp_path, "task=mnist_mlp", "scale=smoke", "task.epochs=3")
    assert resumed.status == "ok" and resumed.epochs_done == 3


def test_a_read_only_folder_is_one_line(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(records, "write_atomically", refuse)
    with pytest.raises(UserError, match="cannot write .*record.json: Read-only file system"):
        run_cell(tmp_path, "task=mnist_mlp", "scale=smoke", "task.epochs=1")


# -- 7. housekeeping -------------------------------------------------------------------------------
def test_leftovers_of_killed_writes_are_removed(tmp_path):
    run = cell_dir(tmp_path)
    run.mkdir(parents=True)
    for i in range(3):
        (run / f"{checkpoints.TEMP_PREFIX}{i}").write_bytes(b"half a checkpoint")
    assert run_cell(tmp_path, *SMOKE[:2]).status == "ok"
    assert not list(run.glob(f"{checkpoints.TEMP_PREFIX}*"))


def test_force_starts_over_instead_of_resuming(tmp_path):
    run_cell(tmp_path, *SMOKE[:2], "checkpoint.keep=true")
    run = cell_dir(tmp_path)
    (run / "record.json").unlink()
    payload = checkpoints.load(run / "checkpoint.pt", identity.of(compose(*SMOKE)).fingerprint)
    checkpoints.save(run / "checkpoint.pt", {**payload, "fingerprint": "not this run"})
    with pytest.raises(UserError, match="different configuration"):  # resuming would load it
        run_cell(tmp_path, *SMOKE[:2])
    assert run_cell(tmp_path, *SMOKE[:2], "force=true").status == "ok"


def test_resuming_with_another_thread_count_is_noted_in_the_record(tmp_path):
    threads = torch.get_num_threads()
    try:
        run_cell(tmp_path, *SMOKE[:2], "task.epochs=2", "threads=1", "checkpoint.keep=true")
        run = first(tmp_path, "checkpoint.pt").parent
        payload = checkpoints.load(run / "checkpoint.pt",
                                   records.read(run / "record.json").fingerprint)
        checkpoints.save(run / "checkpoint.pt", {**payload, "threads": 7})
        (run / "record.json").unlink()
        record = run_cell(tmp_path, *SMOKE[:2], "task.epochs=2", "threads=1")
        assert any("resumed with 1 CPU threads after 7" in n for n in record.notes)
    finally:
        torch.set_num_threads(threads)
