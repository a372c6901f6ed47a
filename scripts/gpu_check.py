"""Check a GPU node in one command before a sweep is spent on it (``make gpu-check``).

    python scripts/gpu_check.py            # on a GPU node: about 10 minutes on one GPU
    python scripts/gpu_check.py --dry-run  # only print what it would run

Three stages, run in order whatever the earlier ones gave, each within a time limit:

1. the tests marked ``gpu`` (pytest -m gpu): the optimisers' CUDA paths, every task's smoke run
   in fp32, bf16 and compiled, a killed and resumed run, DDP over NCCL, the backend flags, the
   CIFAR augmentation and the FID features on CUDA;
2. ``scripts/bench_gpu.py``, which writes ``results/benchmarks/gpu-<device>.md`` and ``.json``
   (the measured throughput ``make data PLAN=1`` reads);
3. a paper-scale slice: a few hundred steps of VGG-11 (batch 128, Nero) and of the Wikitext-2
   LM (batch 20, bptt 35, Nero) at the paper's settings on synthetic data of the real image and
   sequence shapes, through scripts/train.py, each in its own process (the two side by side).

Each part's output goes to a log of its own, whose end is printed when the part ends. It ends
with one summary (a line per part, then one verdict) and exits 0 only if every part passed. Without CUDA it
prints what it would run and exits 0 with a line saying that nothing ran.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
SLICE_STEPS = 300
# Compilation (Triton, inductor) is CPU work: the gpu tests run as three pytest processes side
# by side on the one GPU, so that it overlaps. Each stage has a time limit; together they stay
# under 10 minutes, and a stage that reaches its limit is reported as such.
TEST_SHARDS = {
    "smoke runs fp32 and bf16": "smoke_runs_on_cuda and not compile",
    "smoke runs compiled": "smoke_runs_on_cuda and compile",
    "optimisers, resume, DDP, flags, data": "not smoke_runs_on_cuda",
}
LIMITS_S = {"gpu tests": 330, "benchmark": 170, "paper-scale slice": 70}


def stages(out: Path) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """(stage, [(part, command)]): the parts of a stage run side by side."""
    cifar_batch, lm_batch, bptt = 128, 20, 35
    common = ["logger=none", "progress=false", "optimizer=nero", "device=cuda", "task.epochs=1",
              "checkpoint.every_minutes=null", f"out_dir={out}", "sweep=gpu-check"]
    tests = [(part, [PY, "-m", "pytest", "-m", "gpu", "-k", expr, "-q", "-rs", "--durations=5",
                     "tests/"]) for part, expr in TEST_SHARDS.items()]
    return [
        ("gpu tests", tests),
        ("benchmark", [("bench_gpu.py", [PY, "scripts/bench_gpu.py", "--require-cuda",
                                         "--steps", "10"])]),
        ("paper-scale slice", [
            (f"VGG-11, {SLICE_STEPS} steps of 128",
             [PY, "scripts/train.py", "task=cifar10_vgg11", *common, "task.synthetic=true",
              f"task.n_train={cifar_batch * SLICE_STEPS}", "task.n_test=10000"]),
            (f"Wikitext-2 LM, {SLICE_STEPS} steps of 20 x 35",
             [PY, "scripts/train.py", "task=wikitext2_transformer", *common, "task.synthetic=true",
              f"task.synthetic_tokens={lm_batch * bptt * (SLICE_STEPS + 1)}"]),
        ]),
    ]


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def run_stage(parts: list[tuple[str, list[str]]], limit: float, logs: Path,
              env: dict[str, str]) -> list[tuple[str, str, float]]:
    """Run the parts side by side (output to one log each); (part, outcome, seconds) each."""
    started = []
    for i, (part, cmd) in enumerate(parts):
        log = logs / f"{len(list(logs.iterdir()))}-{i}.log"
        handle = open(log, "w")  # noqa: SIM115 - closed once its process has ended
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
        started.append((part, proc, handle, log, time.monotonic()))
    results = []
    deadline = time.monotonic() + limit
    for part, proc, handle, log, t0 in started:
        try:
            rc = proc.wait(timeout=max(deadline - time.monotonic(), 1))
            outcome = "ok" if rc == 0 else f"FAILED (exit {rc})"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            outcome = f"FAILED (time limit {limit:.0f}s)"
        handle.close()
        text = log.read_text(errors="replace")
        print(f"--- {part}: {outcome}\n" + "\n".join(text.splitlines()[-40:]), flush=True)
        results.append((part, outcome, time.monotonic() - t0))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print the stages, run nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nero-gpu-check-") as tmp:
        plan = stages(Path(tmp) / "runs")
        cuda = cuda_available()
        if args.dry_run or not cuda:
            for name, parts in plan:
                for part, cmd in parts:
                    print(f"would run  {name} / {part} (limit {LIMITS_S[name]}s, side by side "
                          f"with the stage's other parts): {shlex.join(cmd)}")
            why = "--dry-run" if args.dry_run else "no CUDA device here"
            print(f"gpu-check: nothing ran ({why}); run `make gpu-check` on a GPU node")
            return 0
        env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
        env.pop("WANDB_API_KEY", None)
        logs = Path(tmp) / "logs"
        logs.mkdir()
        summary = []
        t_all = time.monotonic()
        for name, parts in plan:
            print(f"\n=== {name} ({len(parts)} part(s), limit {LIMITS_S[name]}s)", flush=True)
            summary += [(name, *r) for r in run_stage(parts, LIMITS_S[name], logs, env)]
        print("\n=== gpu-check summary")
        for name, part, outcome, seconds in summary:
            print(f"  {outcome:<8} {name} / {part} ({seconds:.0f}s)")
        failed = [f"{name} / {part}" for name, part, outcome, _ in summary if outcome != "ok"]
        print(f"gpu-check: {'all stages passed' if not failed else 'FAILED: ' + ', '.join(failed)}"
              f" in {time.monotonic() - t_all:.0f}s")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
