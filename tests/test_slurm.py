"""The cluster path against a real SLURM scheduler (scripts/slurm_cluster.sh; make slurm-test).

Skipped with one line where no cluster answers. Every run here is a smoke-scale MNIST cell on the
local single-node cluster, one CPU and one thread per job, so that a SLURM run and a local one
compute exactly the same thing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.runner import records
from tests.helpers import REPO, first, strip_times, train_cli


def cluster_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    return out.returncode == 0 and ("idle" in out.stdout or "mix" in out.stdout)


if not cluster_up():
    pytest.skip("no SLURM cluster answers (make slurm-test starts a local one)",
                allow_module_level=True)
pytestmark = pytest.mark.slurm

CELL = ("task=mnist_mlp", "scale=smoke", "logger=none", "threads=1")
ON_SLURM = ("hydra/launcher=slurm", "cluster.gpus=0", "cluster.cpus_per_task=1", "cluster.mem_gb=1",
            "cluster.timeout_min=10")
LONG = ("task.n_train=12000", "task.epochs=3", "checkpoint.every_steps=20")


def sweep(tmp: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return train_cli("-m", *CELL, *ON_SLURM, f"out_dir={tmp}", *args, timeout=timeout)


def own_jobs(out: Path) -> list[tuple[str, str]]:
    """(job id, time used) of the queued or running jobs this test submitted: those whose batch
    script lies under its ``out`` (submitit writes it into the sweep's folder). The tests run two
    at a time (make slurm-test), so the queue also holds the other test's jobs."""
    lines = subprocess.run(["squeue", "-h", "-o", "%i|%M|%o"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    return [(job, used) for job, used, command in (line.split("|", 2) for line in lines)
            if str(out) in command]


def test_a_sweep_on_slurm_leaves_the_records_a_local_sweep_would(tmp_path):
    out = sweep(tmp_path / "slurm", "optimizer=nero,sgd", "seed=0,1")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "submitting 4 jobs; their logs:" in out.stderr
    local = train_cli("-m", *CELL, f"out_dir={tmp_path / 'local'}", "optimizer=nero,sgd", "seed=0,1")
    assert local.returncode == 0, local.stderr[-3000:]
    on_slurm = {(r.optimizer, r.seed): r for r in records.find(tmp_path / "slurm")}
    here = {(r.optimizer, r.seed): r for r in records.find(tmp_path / "local")}
    assert set(on_slurm) == set(here) and len(here) == 4
    for key, r in here.items():
        assert on_slurm[key].status == "ok"
        assert strip_times(on_slurm[key].history) == strip_times(r.history), key


def test_a_requeued_job_resumes_and_ends_as_an_uninterrupted_run(tmp_path):
    reference = train_cli(*CELL, *LONG, f"out_dir={tmp_path / 'ref'}")
    assert reference.returncode == 0, reference.stderr[-2000:]
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "train.py"), "-m", *CELL,
                             *ON_SLURM, *LONG, f"out_dir={tmp_path / 'slurm'}"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not first(tmp_path / "slurm", "checkpoint.pt") and time.time() < deadline:
        time.sleep(0.2)
    jobs = own_jobs(tmp_path / "slurm")
    assert len(jobs) == 1, jobs
    subprocess.run(["scontrol", "requeue", jobs[0][0]], check=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    a = json.loads(first(tmp_path / "ref", "record.json").read_text())
    b = json.loads(first(tmp_path / "slurm", "record.json").read_text())
    assert strip_times(a["history"]) == strip_times(b["history"])
    logs = "".join(p.read_text() for p in (tmp_path / "slurm").rglob("*_log.err"))
    assert "resuming" in logs  # the second run of the job continued from the checkpoint


def _run_process(folder: Path) -> int | None:
    """The pid of the python process of the job whose submitit folder is under ``folder``."""
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (Path(cmd[0].decode()).name.startswith("python") and b"submitit.core._submit" in cmd
                and any(str(folder).encode() in c for c in cmd)):  # not srun, which starts it
            return int(proc.name)
    return None


def _state(pid: int) -> str:
    """The process's state letter (T: stopped), "" once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""
    return next(line.split()[1] for line in status.splitlines() if line.startswith("State:"))


def _signalled_or_gone(pid: int, sig: signal.Signals) -> bool:
    """True once ``sig`` is pending for the stopped process, it runs again (slurmstepd sends
    SIGCONT with the signals it delivers) or it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    pending = [int(line.split()[1], 16) for line in status.splitlines()
               if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(m & (1 << (sig - 1)) for m in pending) or _state(pid) != "T"


def _wait(what, condition, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"waited {seconds:.0f} s for {what}")


def test_a_job_reaching_its_time_limit_checkpoints_is_requeued_and_finishes(tmp_path):
    """Sized in work, not in wall time: whatever the node's speed, the job reaches its time
    limit once, after it has made progress (its first checkpoint) and before it can finish.

    The job starts with a limit far beyond its work (10 min). Once it has written a checkpoint,
    the test freezes its process (SIGSTOP: no step is taken while the clock runs), sets the
    limit to 1-2 minutes from now, and waits for SLURM's own warning (SIGUSR2,
    signal_delay_s before the limit; slurmstepd continues a stopped process it signals, else
    the test does); then the process handles it
    (checkpoint, submitit's requeue), and the requeued job, its limit set back to 10 min,
    finishes the run. The record must equal an uninterrupted run's.
    """
    reference = train_cli(*CELL, *LONG, f"out_dir={tmp_path / 'ref'}")
    assert reference.returncode == 0, reference.stderr[-2000:]
    out = tmp_path / "slurm"
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "train.py"), "-m", *CELL,
                             *ON_SLURM, *LONG, "hydra.launcher.signal_delay_s=45",
                             f"out_dir={out}"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait("the first checkpoint", lambda: first(out, "checkpoint.pt"), 600)
        pid = _wait("the job's process", lambda: _run_process(out), 60)
        os.kill(pid, signal.SIGSTOP)
        _wait("the process to stop", lambda: _state(pid) == "T", 30)
        ((job_id, used),) = own_jobs(out)  # the time used as M:SS (under the 10 min limit)
        # The limit falls 1 to 2 min from now; SLURM warns within its 30 s check interval of
        # signal_delay_s before it, so at least 45 s before the job would be killed.
        subprocess.run(["scontrol", "update", f"JobId={job_id}",
                        f"TimeLimit={int(used.split(':')[0]) + 2}"], check=True)
        try:
            _wait("SLURM's time-limit warning", lambda: _signalled_or_gone(pid, signal.SIGUSR2), 300)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        logs = lambda: "".join(p.read_text() for p in out.rglob("*_log.*"))  # noqa: E731
        _wait("the requeue", lambda: "checkpoint written" in logs(), 120)
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=10"], check=True)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    (record,) = list(records.find(out))
    a = json.loads(first(tmp_path / "ref", "record.json").read_text())
    assert record.status == "ok"
    assert strip_times(record.history) == strip_times(a["history"])
    text = logs()
    assert "this job is timed-out" in text  # submitit counted a time limit, not a preemption
    assert "signal SIGUSR2: checkpoint written" in text and "resuming" in text


def test_a_failing_cell_is_reported_and_only_it_reruns(tmp_path):
    out_dir = tmp_path
    bad = out_dir / "adhoc/smoke/mnist_mlp/nero/epochs=1/lr=0.1/seed=0"
    bad.mkdir(parents=True)
    (bad / "checkpoint.pt").write_bytes(b"garbage")
    out = sweep(out_dir, "optimizer.lr=0.01,0.1", "task.epochs=1")
    assert out.returncode == 1, out.stderr[-3000:]
    assert "  error: optimizer.lr=0.1: checkpoint" in out.stderr and "is corrupt" in out.stderr
    (bad / "checkpoint.pt").unlink()
    again = sweep(out_dir, "optimizer.lr=0.01,0.1", "task.epochs=1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list(records.find(out_dir))) == 2
    logs = list(out_dir.rglob("*_log.out"))
    assert sum("skipping" in p.read_text() for p in logs) == 1


def test_an_impossible_request_fails_fast_in_one_line(tmp_path):
    t0 = time.monotonic()
    out = sweep(tmp_path, f"cluster.cpus_per_task={os.cpu_count() * 100}", timeout=120)
    assert out.returncode == 2, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "the scheduler refused the jobs" in errors[0]
    assert time.monotonic() - t0 < 60
