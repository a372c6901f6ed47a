"""The GPU benchmark: optimiser step times, and each task's training throughput through the
runner against a bare loop of the same model, with peak memory.

    python scripts/bench_gpu.py                     # all of it on cuda (make bench runs it there)
    python scripts/bench_gpu.py --tasks cifar10_vgg11 --param-sets resnet50 --steps 20
    python scripts/bench_gpu.py --require-cuda      # exit 2, not 0, where there is no CUDA

It writes ``results/benchmarks/gpu-<device>.md`` (command, device, driver, torch, commit, date,
the tables) and ``gpu-<device>.json`` beside it, the numbers that ``make data PLAN=1`` turns into
GPU-hours; both atomically. Without CUDA it says so in one line and exits 0 (2 with
``--require-cuda``). ``--device cpu`` measures the same things on the CPU (the tests use it at
toy sizes); its files name the CPU.

Optimiser steps: every optimiser steps its own copy of one parameter set with fixed gradients,
rounds interleaved, after warm-up steps (compilation, lazy state) that are not timed; the
median per optimiser, synchronised with the device. Tasks: the paper's config (batch size,
model, optimiser Nero) on synthetic data of the paper's image shapes (the language tasks'
synthetic corpora have a small vocabulary: their rows say so, and the plan does not use them).
"Runner" is ``tasks.runner.loop.run`` for one epoch of ``--steps`` steps (its evaluation on a
test set of one batch included); "bare" is the task's own batches and ``train_step`` in a plain
loop, no record, progress, checkpoint or metric accumulation. A first runner pass of a few steps
warms up compilation and cuDNN autotuning for both.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nero import LAMB, Madam, Nero
from tasks.timing import interleaved_medians, own_copy, synchronize

REPO = Path(__file__).resolve().parent.parent
SCHEMA = 1

OPTIMISERS: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
    "sgd(foreach)": lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, foreach=True),
    "adam(fused)": lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True),
    "nero": lambda ps: Nero(ps, lr=0.01),
    "madam": lambda ps: Madam(ps, lr=0.01),
    "lamb": lambda ps: LAMB(ps, lr=1e-3, betas=(0.0, 0.999)),
}


def gpt2_small_shapes() -> list[tuple[int, ...]]:
    """GPT-2 small's 148 parameter tensors (124 M parameters, tied embedding counted once)."""
    d, vocab, ctx = 768, 50257, 1024
    shapes: list[tuple[int, ...]] = [(vocab, d), (ctx, d)]
    for _ in range(12):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,),
                   (d, 4 * d), (d,)]
    return shapes + [(d,), (d,)]


def param_set(name: str, device: torch.device) -> list[torch.Tensor]:
    if name == "resnet50":
        import torchvision

        shapes = [tuple(p.shape) for p in torchvision.models.resnet50().parameters()]
    elif name == "mlp100":
        from tasks.experiments.models.mlp import DeepMLP

        shapes = [tuple(p.shape) for p in DeepMLP(100, 784).parameters()]
    elif name == "mlp5":  # the runner benchmark's 5 x 784 MLP: a size a CPU test can afford
        from tasks.experiments.models.mlp import DeepMLP

        shapes = [tuple(p.shape) for p in DeepMLP(5, 784).parameters()]
    elif name == "gpt2-small":
        shapes = gpt2_small_shapes()
    else:
        raise SystemExit(f"unknown parameter set {name!r}: choose from {', '.join(PARAM_SETS)} "
                         "or mlp5")
    g = torch.Generator(device=device).manual_seed(0)
    params = []
    for shape in shapes:
        p = nn.Parameter(torch.randn(shape, generator=g, device=device) * 0.05)
        p.grad = torch.randn(shape, generator=g, device=device) * 1e-3
        params.append(p)
    return params


PARAM_SETS = ("resnet50", "mlp100", "gpt2-small")


def bench_optimisers(name: str, device: torch.device, steps: int, warmup: int) -> dict[str, Any]:
    base = param_set(name, device)
    runs = {label: make(own_copy(base)) for label, make in OPTIMISERS.items()}
    medians = interleaved_medians({k: o.step for k, o in runs.items()}, steps, warmup, device)
    return {"tensors": len(base), "parameters": sum(p.numel() for p in base),
            "ms_per_step": {k: 1000 * v for k, v in medians.items()}}


# Synthetic data of the paper's shapes for each task; ``{n}`` is the number of training items.
TASKS: dict[str, dict[str, Any]] = {
    "mnist_cwn": {"overrides": ["task.synthetic=true", "task.n_train={n}", "task.n_test={b}"],
                  "unit": "images", "paper_shapes": True},
    "mnist_mlp": {"overrides": ["task.synthetic=true", "task.n_train={n}", "task.n_test={b}"],
                  "unit": "images", "paper_shapes": True},
    "cifar10_vgg11": {"overrides": ["task.synthetic=true", "task.n_train={n}", "task.n_test={b}"],
                      "unit": "images", "paper_shapes": True},
    "cifar10_resnet18": {"overrides": ["task.synthetic=true", "task.n_train={n}",
                                       "task.n_test={b}"], "unit": "images", "paper_shapes": True},
    "cifar10_cgan": {"overrides": ["task.synthetic=true", "task.n_train={n}", "task.eval_every=1",
                                   "task.fid.extractor=random", "task.fid.samples={b}",
                                   "task.num_workers=0"],
                     "unit": "images", "paper_shapes": True},
    "imagenet_resnet50": {"overrides": ["task.synthetic=true", "task.n_train={n}", "task.n_val={b}"],
                          "unit": "images", "paper_shapes": True},
    "wikitext2_transformer": {"overrides": ["task.synthetic=true", "task.synthetic_tokens={n}"],
                              "unit": "tokens", "paper_shapes": False},
    "multi30k_transformer": {"overrides": ["task.synthetic=true", "task.synthetic_pairs={n}"],
                             "unit": "pairs", "paper_shapes": False},
}


def task_overrides(task: str, steps: int, device: torch.device, out: Path) -> list[str]:
    from tasks.runner.cli import compose
    from tasks.runner.validation import validate

    cfg = validate(compose(f"task={task}")).task
    batch = cfg.batch_size
    per_step = batch * getattr(cfg, "bptt", 1)
    n = per_step * steps + (per_step if TASKS[task]["unit"] == "tokens" else 0)
    spec = [o.format(n=n, b=batch) for o in TASKS[task]["overrides"]]
    return [f"task={task}", "optimizer=nero", "logger=none", "progress=false", "task.epochs=1",
            "checkpoint.every_minutes=null", "checkpoint.every_epochs=null", f"out_dir={out}",
            f"device={device.type}", *spec]


def peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def bench_task(task: str, device: torch.device, steps: int) -> dict[str, Any]:
    from tasks.experiments import get_task
    from tasks.experiments.base import RunContext
    from tasks.runner import loop
    from tasks.runner.cli import compose
    from tasks.runner.optimizers import build_optimizer
    from tasks.runner.training import TrainSpec
    from tasks.runner.validation import validate

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        warm = loop.run(compose(*task_overrides(task, 3, device, out / "warm")))
        if warm.status != "ok":
            raise RuntimeError(f"{task}: the warm-up run ended {warm.status}: {warm.reason}")
        cfg = compose(*task_overrides(task, steps, device, out / "timed"))
        peak_reset(device)
        record = loop.run(cfg)
        runner_peak = peak_gb(device)
        if record.status != "ok":
            raise RuntimeError(f"{task}: the timed run ended {record.status}: {record.reason}")
        runner_s = record.wall_time_s / record.steps

        run = validate(cfg)
        peak_reset(device)
        built = get_task(task)(run.task, RunContext(device=device, data_dir=out / "data",
                                                    run_dir=out / "bare", seed=run.identity.seed,
                                                    download=False))
        optimizers = {r: build_optimizer(built.param_groups(r), run.optimizer, r)
                      for r in built.modules()}
        spec = TrainSpec.resolve(run, built.epochs, built.steps_per_epoch(), device)
        stepper = loop.OptimizerStepper(optimizers, spec.grad_clip)
        synchronize(device)
        t0, done = time.perf_counter(), 0
        for item in built.batches(0, 0):
            with spec.autocast(device):
                built.train_step(item, stepper)
            done += 1
        synchronize(device)
        bare_s = (time.perf_counter() - t0) / done
        bare_peak = peak_gb(device)
        built.close()
    batch = run.task.batch_size * getattr(run.task, "bptt", 1)
    return {"batch_size": run.task.batch_size, "items_per_step": batch,
            "unit": TASKS[task]["unit"], "steps": record.steps,
            "paper_shapes": TASKS[task]["paper_shapes"],
            "runner_s_per_step": runner_s, "bare_s_per_step": bare_s,
            "runner_items_per_s": batch / runner_s, "bare_items_per_s": batch / bare_s,
            "runner_peak_gb": runner_peak, "bare_peak_gb": bare_peak}


def driver_version() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "unknown (no nvidia-smi)"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from tasks.runner.records import cpu_name

    return cpu_name()


def slug(name: str) -> str:
    """The file name part of a device: "NVIDIA H200" -> "nvidia-h200"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def commit() -> str:
    from tasks.runner.records import git_state

    state = git_state(REPO)
    return f"{state['commit'] or 'unknown'}{' (uncommitted changes)' if state['dirty'] else ''}"


def markdown(result: dict[str, Any]) -> str:
    m = result["meta"]
    where = "" if m["device_type"] == "cuda" else " (measured on the CPU, not a GPU)"
    lines = [f"# GPU benchmark: {m['device']}{where}", "",
             f"Command: `{m['command']}`  ",
             f"Device: {m['device']} (driver {m['driver']}, CUDA {m['cuda']}); torch {m['torch']}, "
             f"Python {m['python']}  ",
             f"Commit: {m['commit']}; measured {m['date']}", ""]
    if result["optimizers"]:
        lines += ["## Optimiser step (ms, median after warm-up)", ""]
        for name, res in result["optimizers"].items():
            lines += [f"{name}: {res['tensors']} tensors, {res['parameters']:,} parameters", "",
                      "| optimiser | ms/step | x sgd(foreach) |", "|---|---:|---:|"]
            sgd = res["ms_per_step"]["sgd(foreach)"]
            lines += [f"| {k} | {v:.3f} | {v / sgd:.2f} |" for k, v in res["ms_per_step"].items()]
            lines.append("")
    if result["tasks"]:
        lines += ["## Training throughput at the paper's batch size (paper-scale configs on "
                  "synthetic data, Nero, fp32, one process)",
                  "", "| task | batch | runner items/s | bare items/s | runner overhead | "
                  "peak GiB runner / bare | data |", "|---|---:|---:|---:|---:|---:|---|"]
        for task, r in result["tasks"].items():
            if "error" in r:
                lines.append(f"| {task} | | | | | | failed: {r['error']} |")
                continue
            peak = ("n/a" if r["runner_peak_gb"] is None
                    else f"{r['runner_peak_gb']:.2f} / {r['bare_peak_gb']:.2f}")
            shapes = "paper's shapes" if r["paper_shapes"] else "small synthetic vocabulary"
            lines.append(f"| {task} | {r['batch_size']} | {r['runner_items_per_s']:,.0f} {r['unit']} | "
                         f"{r['bare_items_per_s']:,.0f} | "
                         f"{100 * (r['runner_s_per_step'] / r['bare_s_per_step'] - 1):+.1f}% | "
                         f"{peak} | {shapes}, {r['steps']} steps |")
        lines += ["", "Runner times include one evaluation on a test set of one batch; the bare "
                  "loop has none."]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, result: dict[str, Any]) -> tuple[Path, Path]:
    from tasks.files import write_atomically

    stem = f"gpu-{slug(result['meta']['device'])}"
    md, js = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    write_atomically(js, lambda f: f.write(json.dumps(result, indent=1).encode()))
    write_atomically(md, lambda f: f.write(markdown(result).encode()))
    return md, js


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--require-cuda", action="store_true",
                        help="exit 2 (instead of 0) where there is no CUDA device")
    parser.add_argument("--param-sets", default=",".join(PARAM_SETS),
                        help="comma-separated, from " + ", ".join(PARAM_SETS) + " ('' for none)")
    parser.add_argument("--tasks", default=",".join(TASKS),
                        help="comma-separated, from " + ", ".join(TASKS) + " ('' for none)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed optimiser steps first")
    parser.add_argument("--out", default=str(REPO / "results" / "benchmarks"))
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here, nothing measured (run it on a GPU node)")
        return 2 if args.require_cuda else 0
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", device.index or 0)
        torch.cuda.set_device(device)
    sets = [s for s in args.param_sets.split(",") if s]
    tasks = [t for t in args.tasks.split(",") if t]
    for t in tasks:
        if t not in TASKS:
            parser.error(f"unknown task {t!r}: choose from {', '.join(TASKS)}")
    result: dict[str, Any] = {"schema": SCHEMA, "meta": {
        "command": shlex.join(["python", "scripts/bench_gpu.py", *(argv or sys.argv[1:])]),
        "device": device_name(device), "device_type": device.type, "driver": driver_version()
        if device.type == "cuda" else "n/a", "cuda": torch.version.cuda, "torch": torch.__version__,
        "python": platform.python_version(), "commit": commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "optimizers": {}, "tasks": {}}
    print(f"bench_gpu: {result['meta']['device']}, torch {torch.__version__}", flush=True)
    # The files are rewritten whole after each measurement: a run stopped by a time limit
    # leaves every measurement it finished, and the plan calls the rest unmeasured.
    out = Path(args.out)
    for name in sets:
        res = result["optimizers"][name] = bench_optimisers(name, device, args.steps, args.warmup)
        print(f"  {name}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in res["ms_per_step"].items()),
              flush=True)
        write(out, result)
    for task in tasks:
        try:
            r = result["tasks"][task] = bench_task(task, device, args.steps)
        except Exception as err:  # one task's failure is a row of the table, not the end of it
            result["tasks"][task] = {"error": f"{type(err).__name__}: {str(err)[:200]}"}
            print(f"  {task}: FAILED {result['tasks'][task]['error']}", flush=True)
        else:
            print(f"  {task}: runner {r['runner_items_per_s']:,.0f} {r['unit']}/s, bare "
                  f"{r['bare_items_per_s']:,.0f}", flush=True)
        write(out, result)
    md, js = write(out, result)
    print(f"bench_gpu: wrote {md} and {js.name}")
    return 1 if any("error" in r for r in result["tasks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
