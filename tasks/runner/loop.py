"""The one training loop every experiment runs through.

``run(spec)`` trains one cell (task x optimiser x lr x seed x variant x scale) and returns its
record, in five steps that read top to bottom below:

1. the config is validated into a :class:`~tasks.runner.validation.RunSpec` (typed, checked
   values and the run's identity: validation.py, identity.py), the only thing read below;
2. the run's folder is locked (one writer per cell); a record of this very configuration that
   says ok is returned as it is, and a record of another configuration is refused;
3. the task, its optimisers and the :class:`~tasks.runner.training.TrainSpec` are built, and a
   checkpoint of this configuration, if there is one, is resumed;
4. :func:`train` runs the epochs: schedule, step, divergence check, progress, checkpoints,
   evaluation;
5. the record is written (``ok``, ``diverged`` or ``failed`` with a reason) and the checkpoint
   removed.

The task supplies data, model, loss and evaluation (tasks/experiments/base.py). A run that is
stopped (SIGTERM, SIGUSR1 from SLURM before a time limit, SIGINT) writes a checkpoint and leaves
no record; the same command resumes it, with the same result as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from tasks import distributed
from tasks.errors import UserError
from tasks.experiments import get_task
from tasks.experiments.base import RunContext, Task

from . import checkpoints, identity, locks, records, validation
from .diagnostics import Diagnostics
from .folders import CHECKPOINT, FIGURE, check_run_folder, check_writable
from .optimizers import build_optimizer, describe
from .reporting import Progress, WandbMirror
from .training import TrainSpec, TrainState
from .validation import RunSpec

REPO = Path(__file__).resolve().parents[2]


class Interrupted(Exception):
    """A signal asked the run to stop; a checkpoint was written and the run can be resumed."""


class Diverged(Exception):
    pass


# -- 1-2: identity, lock, and a record that may already exist -----------------------------------
def run(spec: RunSpec | DictConfig, stop_file: Path | None = None) -> records.Record:
    """Train one cell and return its record (also written to disk); see the module docstring.

    ``spec``: the validated run, or a composed config, which is validated first.
    ``stop_file``: a file whose appearance stops the run like a signal (its sweep is stopping).
    """
    if not isinstance(spec, RunSpec):
        spec = validation.validate(spec)
    out = spec.identity.directory(spec.run.out_dir)
    rank, world, local_rank = distributed.init(spec.run.device)
    main = rank == 0  # only rank 0 writes records, checkpoints, logs and W&B
    if main:
        check_run_folder(out)
        check_writable(out)
    # In a sweep, a cell that another launch of it is training is waited for, then its record
    # is used: two launches of one sweep neither train a cell twice nor blame each other.
    wait = spec.run.wait or stop_file is not None
    lock = locks.cell_lock(out, wait=wait, stopped=lambda: bool(stop_file and stop_file.exists()))
    try:
        with lock if main else contextlib.nullcontext():
            reused = reusable_record(out, spec)
            if reused is not None:
                return reused
            return _train_cell(spec, out, main, world, local_rank, stop_file)
    except locks.Stopped as why:
        raise Interrupted(f"the sweep is stopping ({why})") from None


def reusable_record(out: Path, spec: RunSpec) -> records.Record | None:
    """The cell's record if it may stand for this run: same configuration and status ok."""
    path = out / records.RECORD
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a record; remove it and run again")
    try:
        existing = records.read(path)
    except records.Unreadable as err:
        print(f"{err}; training the cell again", file=sys.stderr, flush=True)
        return None
    if existing is None or spec.run.force:
        return None
    theirs = existing.config
    try:
        same = isinstance(theirs, dict) and identity.fingerprint(theirs) == spec.identity.fingerprint
    except RecursionError:
        theirs, same = None, False
    if not isinstance(theirs, dict):
        theirs = None
    if not same:
        diff = (identity.differences(theirs, spec.config) if theirs
                else "it stores no config")
        raise UserError(f"{path} is the record of another configuration ({diff}); move it "
                        "away, or rerun with force=true to replace it")
    if existing.status != "ok":
        return None
    if spec.run.diagnostics and existing.diagnostics is None:
        print(f"skipping {out}: its record already says ok but has no diagnostics (force=true "
              "reruns it with them)", flush=True)
    else:
        print(f"skipping {out}: its record already says ok (force=true reruns it)", flush=True)
    existing.skipped = True
    return existing


# -- 3: building the run -------------------------------------------------------------------------
def _train_cell(cell: RunSpec, out: Path, main: bool, world: int, local_rank: int,
                stop_file: Path | None) -> records.Record:
    ident = cell.identity
    ckpt_path = out / CHECKPOINT
    if main:
        checkpoints.remove_stale_temporaries(out)
        (out / FIGURE).unlink(missing_ok=True)  # an earlier run's: this one draws its own
        if cell.run.force:
            ckpt_path.unlink(missing_ok=True)
    device = _prepare_process(cell, world, local_rank)
    task, optimizers = _build(cell, out, device)
    spec = TrainSpec.resolve(cell, task.epochs, task.steps_per_epoch(), device)
    if spec.compile:
        for m in task.modules().values():
            m.compile()

    progress = Progress(spec.total_steps, 0, ident.label(), enabled=main and cell.run.progress)
    training = Training(spec, task, optimizers, progress, device, ckpt_path, ident.fingerprint,
                        main)
    training.resume()
    state, checkpointer = training.state, training.checkpointer
    config = dict(cell.config)
    mirror = None
    if cell.run.logger.name is validation.LoggerName.wandb and main:
        mirror = WandbMirror(config["logger"], ident, config, out, progress.line,
                             run_id=checkpointer.wandb_id)
        checkpointer.wandb_id = mirror.run_id  # a resumed process continues this W&B run
        task.ctx.log_image = mirror.log_image  # e.g. the cGAN's sample grids
    record = _record_head(cell, task, device, world, optimizers)

    # -- 4: training, and 5: the record ------------------------------------------------------------
    try:
        with _checkpoint_on_signals(StopRequest(stop_file)) as stop:
            training.train(mirror, stop)
        set_mode(optimizers, "eval")
        record.status, record.reason, record.extra = "ok", None, task.finish()
    except (Interrupted, UserError):  # no record: resumable, or not a result at all
        progress.close()
        if mirror is not None:
            mirror.finish(None, exit_code=1)
        raise
    except Diverged as why:
        record.status, record.reason = "diverged", str(why)
    except Exception as err:
        traceback.print_exc()
        record.status, record.reason = "failed", f"{type(err).__name__}: {err}"
    finally:
        progress.close()
        task.close()
    _record_tail(record, task, state, training.clock, training.notes, training.diagnostics)
    distributed.barrier()
    if main:
        records.write(out / records.RECORD, record)
        if training.diagnostics is not None:
            training.diagnostics.write_figure(out / FIGURE)
        if record.status == "ok" and ckpt_path.exists() and not spec.keep_checkpoint:
            ckpt_path.unlink()
    if mirror is not None:
        mirror.finish(record, exit_code=0 if record.status == "ok" else 1)
    progress.line(_summary(record))
    record.path = str(out / records.RECORD)
    return record


def _prepare_process(spec: RunSpec, world: int, local_rank: int) -> torch.device:
    """The device, threads, seeds and offline switches of this process."""
    run = spec.run
    device = resolve_device(run.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)
    if run.threads:
        torch.set_num_threads(run.threads)
    seed_everything(spec.identity.seed)
    set_backends(run.precision.value, device, run.deterministic)
    if not run.download:  # a missing file fails now, never after a network timeout
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    return device


def _build(spec: RunSpec, out: Path,
           device: torch.device) -> tuple[Task, dict[str, torch.optim.Optimizer]]:
    """The task, then one optimiser per role (after the model: Nero projects it when built)."""
    cls = get_task(spec.identity.task)
    if not isinstance(spec.task, cls.Config):  # the registries disagree: a bug, not bad input
        raise TypeError(f"task {spec.identity.task} takes a {cls.Config.__name__}, but its "
                        f"config was checked as a {type(spec.task).__name__}")
    task: Task = cls(spec.task, RunContext(
        device=device, data_dir=Path(spec.run.data_dir), run_dir=out, seed=spec.identity.seed,
        download=spec.run.download))
    optimizers = {role: build_optimizer(task.param_groups(role), spec.optimizer, role, module)
                  for role, module in task.modules().items()}
    return task, optimizers


def _record_head(spec: RunSpec, task: Task, device: torch.device, world: int,
                 optimizers: dict[str, torch.optim.Optimizer]) -> records.Record:
    """What a record says before training: the run's identity, configuration and provenance
    (its status until training ends: failed)."""
    return records.Record(
        identity=spec.identity,
        status="failed",
        reason="the run did not finish",
        optimizer_family=spec.optimizer_family,
        optimizer_class=describe(spec.optimizer, optimizers),
        metric=task.metric,
        goal=task.goal,
        device=str(device) if world == 1 else f"{world} x {device.type} (DDP)",
        hardware=records.hardware(device),
        backend=backend_flags(),
        versions=records.versions(),
        git=records.git_state(REPO),
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=dict(spec.config),
    )


def _record_tail(record: records.Record, task: Task, state: TrainState, clock: Clock,
                 notes: list[str], diagnostics: Diagnostics | None) -> None:
    """What a record says after training: the metric, the history and how it ended (and, with
    ``diagnostics=true``, the per-layer diagnostics: a record without them has none)."""
    evaluated = [e[task.metric] for e in state.history if e.get(task.metric) is not None]
    record.final = records.finite_or_none(evaluated[-1]) if evaluated else None
    record.best = records.finite_or_none(state.best)
    record.best_epoch = state.best_epoch
    record.epochs_done = state.epoch
    record.steps = state.it
    record.history = state.history
    record.series = state.series
    record.notes = notes
    record.wall_time_s = round(clock.elapsed(), 3)
    record.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if diagnostics is not None:
        record.diagnostics = diagnostics.as_record()
    if record.status == "ok" and record.final is None:
        record.status, record.reason = "failed", f"{task.metric} was never available"


# -- 4: the loop -------------------------------------------------------------------------------------
class Training:
    """One run's training: its task and optimisers, their lr schedulers, where it stands
    (state, clock) and its checkpoints. :meth:`resume` puts a checkpoint back, :meth:`train`
    runs the epochs from there."""

    def __init__(self, spec: TrainSpec, task: Task, optimizers: dict[str, torch.optim.Optimizer],
                 progress: Progress, device: torch.device, checkpoint: Path, fingerprint: str,
                 writes: bool) -> None:
        """``checkpoint``: the run's checkpoint file, written only where ``writes`` (rank 0)."""
        self.spec, self.task, self.optimizers = spec, task, optimizers
        self.progress, self.device = progress, device
        self.state = TrainState(series={k: [] for k in task.step_series})
        self.clock = Clock()
        self.checkpointer = Checkpointer(checkpoint, fingerprint, writes, self.clock, self._parts)
        self.notes: list[str] = []  # what the record should say about how the run went
        self.schedulers: list[torch.optim.lr_scheduler.LambdaLR] = []
        self.diagnostics = Diagnostics(task.modules()) if spec.diagnostics else None

    def _parts(self) -> dict[str, Any]:
        """What a checkpoint holds besides the state, the fingerprint and the W&B run."""
        parts = {"modules": {r: m.state_dict() for r, m in self.task.modules().items()},
                 "optimizers": {r: o.state_dict() for r, o in self.optimizers.items()},
                 "task": self.task.state_dict(),
                 "rng": checkpoints.rng_state()}
        if self.diagnostics is not None:  # mid-epoch, with the weights the epoch started from
            parts["diagnostics"] = self.diagnostics.state_dict()
        return parts

    def _schedule_lrs(self) -> None:
        """One LambdaLR per optimiser over the schedule, at the item training goes on with (the
        position is the state's: a resumed process builds them from there, with the base lrs
        the checkpointed optimisers hold)."""
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(
            opt, self.spec.lr_factor_at, last_epoch=self.state.it - 1)
            for opt in self.optimizers.values()]

    def resume(self) -> None:
        """Everything a checkpoint of this configuration holds, back in place (nothing when there
        is none), and the lrs at the position reached."""
        path = self.checkpointer.path
        if not path.exists():
            self._schedule_lrs()
            return
        payload = checkpoints.load(path, self.checkpointer.fingerprint)
        try:
            for role, m in self.task.modules().items():
                m.load_state_dict(payload["modules"][role])
            for role, opt in self.optimizers.items():
                opt.load_state_dict(payload["optimizers"][role])
            self.task.load_state_dict(payload["task"])
            self.state.load_state_dict(payload["state"], self.device)
            if self.diagnostics is not None and "diagnostics" in payload:
                self.diagnostics.load_state_dict(payload["diagnostics"])
            checkpoints.set_rng_state(payload["rng"])
            self._schedule_lrs()
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            # The right checksum and configuration, other content: what a changed model leaves.
            why = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise UserError(f"checkpoint {path} does not fit this run's model and optimiser "
                            f"({type(err).__name__}{': ' + why[:200] if why else ''}); rerun "
                            "with force=true to start this run from scratch, or delete it") from None
        state = self.state
        self.clock.before = state.elapsed
        self.checkpointer.wandb_id = payload.get("wandb_id")
        self.progress.done = state.it
        self.progress.line(f"resuming {path.parent} from epoch {state.epoch + 1}, item {state.pos}")
        if self.diagnostics is not None and "diagnostics" not in payload:
            first = state.epoch + (1 if state.pos == 0 else 2)
            self.notes.append(f"diagnostics from epoch {first} on: the checkpoint resumed was "
                              "written without them")
            self.progress.line(f"note: {self.notes[-1]}")
        if payload.get("threads") not in (None, torch.get_num_threads()):
            self.notes.append(f"resumed with {torch.get_num_threads()} CPU threads after "
                              f"{payload['threads']}: float sums may round differently from an "
                              "uninterrupted run")
            self.progress.line(f"note: {self.notes[-1]}")

    def train(self, mirror: WandbMirror | None, stop: StopRequest) -> None:
        spec, task, state, progress = self.spec, self.task, self.state, self.progress
        optimizers, checkpointer, device = self.optimizers, self.checkpointer, self.device
        stepper = OptimizerStepper(optimizers, spec.grad_clip)
        first = next(iter(optimizers.values()))
        set_mode(optimizers, "train")
        diagnostics = self.diagnostics
        while state.epoch < spec.epochs:
            if diagnostics is not None and state.pos == 0:
                diagnostics.begin_epoch()
            for item in task.batches(state.epoch, state.pos):
                for scheduler in self.schedulers:  # from the last item's lr to this one's
                    if scheduler.last_epoch < state.it:
                        scheduler.step()
                with spec.autocast(device):
                    metrics = task.train_step(item, stepper)
                state.add_step(metrics, device)
                if state.it % spec.check_every == 0 and not torch.isfinite(state.sums["loss"]):
                    raise Diverged(f"non-finite training loss in epoch {state.epoch + 1}")
                if state.it % spec.log_every == 0:  # the only per-step host sync besides the check
                    shown = {"loss": float(state.sums["loss"]) / state.count,
                             "lr": first.param_groups[0]["lr"]}
                    progress.update(1, shown)
                    if mirror is not None:
                        mirror.log({f"train/{k}": float(v) for k, v in metrics.items()}
                                   | {"lr": shown["lr"]}, step=state.it)
                else:
                    progress.update(1, None)
                if stop.requested():
                    checkpointer.save(state)
                    progress.line(f"{stop.reason}: checkpoint written, exiting")
                    if stop.then is not None:
                        stop.then()  # e.g. submitit requeues the job and exits
                    raise Interrupted(stop.reason)
                checkpointer.maybe_save(spec, state)

            if diagnostics is not None:  # the weights the epoch trained, before any evaluation
                diag = diagnostics.end_epoch(state.epoch + 1)
                if mirror is not None and diag:
                    mirror.log(diag, step=state.it)
            entry = {"epoch": state.epoch + 1, "step": state.it, "lr": first.param_groups[0]["lr"],
                     **state.epoch_means()}
            if not np.isfinite(entry["train/loss"]):
                state.history.append(entry)
                raise Diverged(f"non-finite training loss in epoch {state.epoch + 1}")
            value = None
            if task.should_evaluate(state.epoch + 1):
                set_mode(optimizers, "eval")
                entry.update(task.evaluate(state.epoch + 1))
                set_mode(optimizers, "train")
                # An evaluation metric, or an epoch mean like train/acc; None: not available yet
                # (e.g. no Pong episode has finished).
                value = entry.get(task.metric)
                if value is not None and not np.isfinite(value):
                    state.history.append(entry)
                    state.epoch += 1
                    raise Diverged(f"{task.metric} is {value} after epoch {state.epoch}")
            state.epoch += 1
            state.consider(value, task.goal)
            entry["time_s"] = round(self.clock.elapsed(), 3)
            state.close_epoch(entry)
            progress.line(" | ".join(f"{k} {v:.5g}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in entry.items()))
            if mirror is not None:
                mirror.log({k: v for k, v in entry.items() if k != "step"}, step=state.it)
            checkpointer.maybe_save(spec, state)


def set_mode(optimizers: dict[str, torch.optim.Optimizer], mode: str) -> None:
    """Optimisers that evaluate at other weights than they train at (schedule-free ones) have
    train() and eval(): evaluations and the end-of-run metrics see their eval weights."""
    for opt in optimizers.values():
        switch = getattr(opt, mode, None)
        if callable(switch):
            switch()


class OptimizerStepper:
    """zero_grad -> backward -> clip -> step for the optimiser of a role."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], clip: float | None) -> None:
        self.optimizers = optimizers
        self.clip = clip
        self.params = {role: [p for g in opt.param_groups for p in g["params"]]
                       for role, opt in optimizers.items()}

    def __call__(self, loss: torch.Tensor, role: str = "model") -> None:
        opt = self.optimizers[role]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.params[role], self.clip)
        opt.step()


class Clock:
    """Seconds of training, counted across the processes of a resumed run."""

    def __init__(self) -> None:
        self.before = 0.0  # what earlier processes ran
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return self.before + time.monotonic() - self.started


class Checkpointer:
    """Writes the run's checkpoint when :meth:`TrainSpec.checkpoint_due` says so, or on a signal."""

    def __init__(self, path: Path, fingerprint: str, enabled: bool, clock: Clock,
                 parts: Callable[[], dict[str, Any]]) -> None:
        self.path, self.fingerprint, self.enabled = path, fingerprint, enabled
        self.clock, self.parts = clock, parts
        self.last = time.monotonic()
        self.wandb_id: str | None = None  # the W&B run a resumed process continues

    def maybe_save(self, spec: TrainSpec, state: TrainState) -> None:
        if spec.checkpoint_due(state, time.monotonic() - self.last):
            self.save(state)

    def save(self, state: TrainState) -> None:
        state.elapsed = self.clock.elapsed()
        saved = state.state_dict()  # on every rank: it freezes the step series
        if self.enabled:
            checkpoints.save(self.path, {"fingerprint": self.fingerprint, "state": saved,
                                         "threads": torch.get_num_threads(),
                                         "wandb_id": self.wandb_id, **self.parts()})
        self.last = time.monotonic()


class StopRequest:
    """Why the run should stop at the next step boundary: a signal, or its sweep's stop file.

    ``then`` is what the signal meant to whoever handled it before the run (submitit, in a SLURM
    job: requeue the job); it is called once the checkpoint is written."""

    def __init__(self, stop_file: Path | None = None) -> None:
        self.reason: str | None = None
        self.stop_file = stop_file
        self.polled = time.monotonic()
        self.then: Callable[[], None] | None = None

    def requested(self) -> bool:
        if self.reason is None and self.stop_file is not None and time.monotonic() - self.polled > 1:
            self.polled = time.monotonic()
            if self.stop_file.exists():
                self.reason = "the sweep is stopping"
        return self.reason is not None


@contextlib.contextmanager
def _checkpoint_on_signals(stop: StopRequest) -> Iterator[StopRequest]:
    """SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 (what SLURM sends before a time limit or a preemption:
    submitit's default) ask for a checkpoint at the next step boundary. A handler that was there
    before (submitit's requeue) then runs as it would have. A second SIGINT stops at once."""
    wanted = [signal.SIGTERM, signal.SIGINT] + [
        getattr(signal, name) for name in ("SIGUSR1", "SIGUSR2") if hasattr(signal, name)]

    def handler(signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and stop.reason is not None:
            raise KeyboardInterrupt
        stop.reason = f"signal {signal.Signals(signum).name}"
        before = previous.get(signum)
        if callable(before):
            stop.then = lambda: before(signum, frame)

    previous: dict[int, Any] = {}
    try:
        for sig in wanted:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (e.g. some launchers): periodic checkpoints only
        pass
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# -- helpers -----------------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={name} but no CUDA device is available; use device=cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: use auto, cpu or cuda[:N]") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def set_backends(precision: str, device: torch.device, deterministic: Any) -> None:
    """The one place that sets torch's global numerics flags, every one of them both ways (a
    process may run several cells). ``fp32`` and ``bf16`` are IEEE float32 matmuls and
    convolutions (bf16 autocasts some ops; whatever stays float32 is IEEE), as on the paper's
    GPUs, which had no TF32; only ``precision=tf32`` lets Ampere and later GPUs use TF32, which
    torch's defaults turn on for cuDNN convolutions. The record's ``backend`` says what held."""
    tf32 = precision == "tf32"
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    det = device.type == "cpu" if deterministic == "auto" else bool(deterministic)
    torch.backends.cudnn.deterministic = det
    torch.backends.cudnn.benchmark = not det
    if det and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(det and device.type == "cuda", warn_only=True)


def backend_flags() -> dict[str, Any]:
    """torch's numerics flags now in force, as the record's ``backend`` stores them."""
    return {
        "matmul_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_tf32": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def _summary(record: records.Record) -> str:
    head = f"{record.identity.label()}: {record.status}"
    if record.status != "ok":
        return f"{head} ({record.reason})"
    return (f"{head}, final {record.metric} {record.final:.6g}, best {record.best:.6g} "
            f"({record.wall_time_s:.1f}s)")
