"""The one training loop every experiment runs through (DESIGN.md §3-§5).

``run(cfg)`` trains one cell (task x optimiser x lr x seed x scale) and returns its record. It
owns the device, seeding, optimisers, LR schedules, clipping, the epoch loop, evaluation
cadence, divergence detection, progress, W&B, checkpoints and the record; the task supplies
data, model, loss and evaluation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import tempfile
import time
import traceback
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from tasks.errors import UserError
from tasks.experiments import get_task
from tasks.experiments.base import RunContext, Task

from . import checkpoints as ckpt
from . import distributed, records, schedules
from .optimizers import build_optimizer, check_lr
from .reporting import Progress, WandbMirror

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = "checkpoint.pt"
# Config keys that do not change what a run computes: a checkpoint stays valid across them.
_NOT_IN_FINGERPRINT = ("logger", "device", "data_dir", "out_dir", "checkpoint", "progress",
                       "threads", "force", "hydra", "run_dir", "num_workers")


class Interrupted(Exception):
    """SIGTERM/SIGUSR1 arrived; a checkpoint was written and the run can be resumed."""


class Diverged(Exception):
    pass


def identity_of(cfg: DictConfig) -> dict[str, Any]:
    return {
        "sweep": str(cfg.sweep),
        "scale": str(cfg.scale.name),
        "task": str(cfg.task.name),
        "optimizer": str(cfg.optimizer.id),
        "lr": check_lr(cfg.optimizer.lr),
        "seed": int(cfg.seed),
    }


def fingerprint(cfg: DictConfig) -> str:
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in _NOT_IN_FINGERPRINT:
        data.pop(key, None)
    data.get("task", {}).pop("num_workers", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={name} but no CUDA device is available; use device=cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: use auto, cpu or cuda[:N]") from None


def seed_everything(seed: int, device: torch.device, deterministic: Any) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    det = device.type == "cpu" if deterministic == "auto" else bool(deterministic)
    torch.backends.cudnn.deterministic = det
    torch.backends.cudnn.benchmark = not det
    if det and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def check_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A probe of our own: DDP ranks check the same directory at the same moment.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test"):
            pass
    except OSError as err:
        raise UserError(f"cannot write to output directory {path} ({err.strerror}); choose "
                        "another with out_dir=...") from None


class _Stepper:
    """zero_grad -> backward -> clip -> step for the optimiser of a role."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], clip: float | None) -> None:
        self.optimizers = optimizers
        self.clip = clip
        self.params = {
            role: [p for g in opt.param_groups for p in g["params"]]
            for role, opt in optimizers.items()
        }

    def __call__(self, loss: torch.Tensor, role: str = "model") -> None:
        opt = self.optimizers[role]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params[role], self.clip)
        opt.step()


@contextlib.contextmanager
def _signals_set_flag(flag: dict[str, Any]) -> Iterator[None]:
    """SIGTERM and SIGUSR1 (SLURM preemption) ask for a checkpoint at the next step boundary."""
    wanted = [signal.SIGTERM] + ([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else [])
    previous = {}

    def handler(signum: int, _frame: Any) -> None:
        flag["signal"] = signum

    try:
        for sig in wanted:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (e.g. some launchers): periodic checkpoints only
        previous = {}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train one cell and return its record (also written to disk); see the module docstring."""
    identity = identity_of(cfg)
    out = records.run_dir(cfg.out_dir, identity)
    record_path = out / records.RECORD
    existing = records.read(record_path)
    if existing is not None and existing.get("status") == "ok" and not cfg.get("force", False):
        print(f"skipping {out}: its record already says ok (force=true reruns it)", flush=True)
        existing["_path"] = str(record_path)
        existing["skipped"] = True
        return existing
    schedules.check(cfg.task.schedule)
    rank, world, local_rank = distributed.init(str(cfg.device))
    main = rank == 0  # only rank 0 writes records, checkpoints, logs and W&B
    if main:
        check_writable(out)
    device = resolve_device(str(cfg.device))
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    seed_everything(int(cfg.seed), device, cfg.get("deterministic", "auto"))

    task_cls = get_task(str(cfg.task.name))
    ctx = RunContext(device=device, data_dir=Path(str(cfg.data_dir)), run_dir=out,
                     scale=str(cfg.scale.name), seed=int(cfg.seed), cfg=cfg)
    task: Task = task_cls(cfg.task, ctx)
    modules = task.modules()
    roles = list(modules)
    optimizers = {r: build_optimizer(task.param_groups(r), cfg.optimizer, r) for r in roles}
    for opt in optimizers.values():
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    clip = cfg.optimizer.get("grad_clip") or cfg.task.get("grad_clip")
    if cfg.get("compile", False):
        for m in modules.values():
            m.compile()

    mirror = None
    progress = Progress(task.epochs * task.steps_per_epoch(), 0, f"{identity['task']} "
                        f"{identity['optimizer']} lr={records.format_lr(identity['lr'])} "
                        f"s{identity['seed']}", enabled=main and cfg.get("progress", True))
    config = OmegaConf.to_container(cfg, resolve=True)
    config.pop("hydra", None)
    state: dict[str, Any] = {
        "epoch": 0, "pos": 0, "it": 0, "history": [], "series": {k: [] for k in task.step_series},
        "best": None, "best_epoch": None, "elapsed": 0.0, "sums": {}, "count": 0,
    }
    fp = fingerprint(cfg)
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        payload = ckpt.load(ckpt_path, fp)
        for role, m in modules.items():
            m.load_state_dict(payload["modules"][role])
        for role, opt in optimizers.items():
            opt.load_state_dict(payload["optimizers"][role])
        task.load_state_dict(payload["task"])
        state.update(payload["state"])
        state["sums"] = {k: v.to(device) for k, v in state["sums"].items()}
        ckpt.set_rng_state(payload["rng"])
        progress.line(f"resuming {out} from epoch {state['epoch'] + 1}, item {state['pos']}")
    progress.done = state["epoch"] * task.steps_per_epoch() + state["pos"]

    def save_checkpoint() -> None:
        _freeze_series(state)
        state["elapsed"] = elapsed()
        if not main:
            return
        ckpt.save(ckpt_path, {
            "fingerprint": fp,
            "modules": {r: m.state_dict() for r, m in modules.items()},
            "optimizers": {r: o.state_dict() for r, o in optimizers.items()},
            "task": task.state_dict(),
            "state": state,
            "rng": ckpt.rng_state(),
        })

    started, before = time.monotonic(), state["elapsed"]  # before: what earlier processes ran

    def elapsed() -> float:
        return before + time.monotonic() - started

    if cfg.logger.name == "wandb" and main:
        mirror = WandbMirror(cfg.logger, identity, config, out, progress.line)
        ctx.log_image = mirror.log_image

    record: dict[str, Any] = {
        "schema": records.SCHEMA,
        "identity": identity,
        **identity,
        "optimizer_name": str(cfg.optimizer.name),
        "metric": task.metric,
        "goal": task.goal,
        "device": str(device) if world == 1 else f"{world} x {device.type} (DDP)",
        "hardware": records.hardware(device),
        "versions": records.versions(),
        "git": records.git_state(REPO),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
    }
    flag: dict[str, Any] = {}
    try:
        with _signals_set_flag(flag):
            _loop(cfg, task, optimizers, _Stepper(optimizers, clip), state, progress, mirror,
                  flag, save_checkpoint, elapsed, device)
        record.update(status="ok", reason=None, extra=task.finish())
    except (Interrupted, UserError):  # no record: resumable, or not a run at all
        progress.close()
        if mirror is not None:
            mirror.finish(None, exit_code=1)
        raise
    except Diverged as why:
        record.update(status="diverged", reason=str(why))
    except Exception as err:
        traceback.print_exc()
        record.update(status="failed", reason=f"{type(err).__name__}: {err}")
    finally:
        progress.close()
        task.close()
    history = state["history"]
    evaluated = [e[task.metric] for e in history if e.get(task.metric) is not None]
    record.update(
        final=records.finite_or_none(evaluated[-1]) if evaluated else None,
        best=records.finite_or_none(state["best"]),
        best_epoch=state["best_epoch"],
        epochs_done=state["epoch"],
        steps=state["it"],
        history=history,
        series=state["series"],
        wall_time_s=round(elapsed(), 3),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    if record["status"] == "ok" and record["final"] is None:
        record.update(status="failed", reason=f"{task.metric} was never available")
    distributed.barrier()
    if main:
        records.write(record_path, record)
        if record["status"] == "ok" and ckpt_path.exists() and not cfg.checkpoint.get("keep", False):
            ckpt_path.unlink()
    if mirror is not None:
        mirror.finish(record, exit_code=0 if record["status"] == "ok" else 1)
    progress.line(_summary(record))
    record["_path"] = str(record_path)
    return record


def _summary(record: dict[str, Any]) -> str:
    head = (f"{record['task']} {record['optimizer']} lr={records.format_lr(record['lr'])} "
            f"seed={record['seed']}: {record['status']}")
    if record["status"] != "ok":
        return f"{head} ({record['reason']})"
    return (f"{head}, final {record['metric']} {record['final']:.6g}, best {record['best']:.6g} "
            f"({record['wall_time_s']:.1f}s)")


def _loop(cfg: DictConfig, task: Task, optimizers: dict[str, torch.optim.Optimizer],
          stepper: _Stepper, state: dict[str, Any], progress: Progress,
          mirror: WandbMirror | None, flag: dict[str, Any], save_checkpoint: Any,
          elapsed: Any, device: torch.device) -> None:
    spec = OmegaConf.to_container(cfg.task.schedule, resolve=True)
    spe = task.steps_per_epoch()
    epochs = task.epochs
    every = cfg.checkpoint
    check_every = 1 if device.type == "cpu" else int(cfg.get("check_every", 20))
    log_every = int(cfg.get("log_every", 50))
    last_save = time.monotonic()
    first_opt = next(iter(optimizers.values()))
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16)
                if cfg.get("precision", "fp32") == "bf16" else contextlib.nullcontext())

    while state["epoch"] < epochs:
        epoch = state["epoch"]
        for item in task.batches(epoch, state["pos"]):
            factor = schedules.lr_factor(spec, it=state["it"], epoch=epoch, spe=spe, epochs=epochs)
            for opt in optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = group["base_lr"] * factor
            with autocast:
                metrics = task.train_step(item, stepper)
            sums = state["sums"]
            for key, value in metrics.items():
                value = value.detach().float() if torch.is_tensor(value) else torch.tensor(
                    float(value), device=device)
                sums[key] = sums[key] + value if key in sums else value.clone()
                if key in state["series"]:
                    state["series"][key].append(value)
            state["count"] += 1
            state["pos"] += 1
            state["it"] += 1
            if state["it"] % check_every == 0 and not torch.isfinite(sums["loss"]):
                raise Diverged(f"non-finite training loss in epoch {epoch + 1}")
            if state["it"] % log_every == 0:  # the only per-step host sync besides the check
                shown = {"loss": float(sums["loss"]) / state["count"],
                         "lr": first_opt.param_groups[0]["lr"]}
                progress.update(1, shown)
                if mirror is not None:
                    mirror.log({f"train/{k}": float(v) for k, v in metrics.items()}
                               | {"lr": shown["lr"]}, step=state["it"])
            else:
                progress.update(1, None)
            if flag.get("signal") is not None:
                save_checkpoint()
                progress.line(f"signal {flag['signal']}: checkpoint written, exiting")
                raise Interrupted(f"signal {flag['signal']}")
            due_steps = every.get("every_steps") and state["it"] % int(every.every_steps) == 0
            due_time = (every.get("every_minutes") and
                        time.monotonic() - last_save > 60 * float(every.every_minutes))
            if (due_steps or due_time) and state["pos"] < spe:
                save_checkpoint()
                last_save = time.monotonic()

        # -- end of epoch -----------------------------------------------------------------------
        done = epoch + 1
        count = max(state["count"], 1)
        entry: dict[str, Any] = {"epoch": done, "step": state["it"],
                                 "lr": first_opt.param_groups[0]["lr"]}
        entry.update({f"train/{k}": float(v) / count for k, v in state["sums"].items()})
        _freeze_series(state)
        if not np.isfinite(entry["train/loss"]):
            state["history"].append(entry)
            raise Diverged(f"non-finite training loss in epoch {done}")
        if task.should_evaluate(done):
            entry.update(task.evaluate(done))
            # An evaluation metric, or an epoch mean like train/acc; None: not available yet
            # (e.g. no Pong episode has finished).
            value = entry.get(task.metric)
            if value is not None and not np.isfinite(value):
                state["history"].append(entry)
                state["epoch"] = done
                raise Diverged(f"{task.metric} is {value} after epoch {done}")
            better = value is not None and (
                state["best"] is None or
                (value < state["best"] if task.goal == "min" else value > state["best"]))
            if better:
                state["best"], state["best_epoch"] = value, done
        entry["time_s"] = round(elapsed(), 3)
        state["history"].append(entry)
        state.update(epoch=done, pos=0, sums={}, count=0)
        progress.line(" | ".join(f"{k} {v:.5g}" if isinstance(v, float) else f"{k} {v}"
                                 for k, v in entry.items()))
        if mirror is not None:
            mirror.log({k: v for k, v in entry.items() if k not in ("step",)}, step=state["it"])
        every_epochs = cfg.task.get("checkpoint_every_epochs") or every.get("every_epochs")
        if every_epochs and done % int(every_epochs) == 0 and done < epochs:
            save_checkpoint()
            last_save = time.monotonic()


def _freeze_series(state: dict[str, Any]) -> None:
    """Turn the per-step tensors collected so far into floats (one sync per call)."""
    for values in state["series"].values():
        tensors = [i for i, v in enumerate(values) if torch.is_tensor(v)]
        if tensors:
            floats = torch.stack([values[i] for i in tensors]).tolist()
            for i, f in zip(tensors, floats):
                values[i] = f
