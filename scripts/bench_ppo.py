"""Pong PPO throughput on this machine: agent steps/s of the environments alone and end to end.

    python scripts/bench_ppo.py [--envs 8] [--updates 3]
    python scripts/bench_ppo.py --quick    # 2 environments, 1 short update: checks the script only

env-only: random actions through 8 wrapped Pong copies, in-process (sync) and one process per
copy (async). End to end: full PPO updates (128-step rollouts, 4 x 4 minibatch steps, Nero)
through the task, i.e. what a training run sustains.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nero import Nero
from tasks.experiments.base import RunContext
from tasks.experiments.data.atari import make_vector_env
from tasks.experiments.pong_ppo import PongPPO
from tasks.runner.cli import compose
from tasks.runner.loop import OptimizerStepper, resolve_device
from tasks.runner.validation import validate


def env_only(n: int, kind: str, steps: int) -> float:
    envs = make_vector_env("PongNoFrameskip-v4", n, kind)
    envs.reset(seed=list(range(n)))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        envs.step(rng.integers(0, 6, n))
    rate = n * steps / (time.perf_counter() - t0)
    envs.close()
    return rate


def end_to_end(n: int, kind: str, updates: int, device: torch.device,
               overrides: tuple[str, ...] = ()) -> float:
    spec = validate(compose("task=pong_ppo", f"task.num_envs={n}", f"task.vector_env={kind}",
                            *overrides))
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(device=device, data_dir=Path(spec.run.data_dir), run_dir=Path(tmp), seed=0)
        task = PongPPO(spec.task, ctx)
        opt = Nero(task.model.parameters(), lr=0.01)
        stepper = OptimizerStepper({"model": opt}, clip=spec.task.grad_clip)
        try:
            task.train_step(0, stepper)  # warm-up
            t0 = time.perf_counter()
            for u in range(updates):
                task.train_step(u, stepper)
            rate = updates * n * task.cfg.num_steps / (time.perf_counter() - t0)
        finally:
            task.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true",
                        help="2 environments, 20 env-only steps, 1 update of 16-step rollouts: "
                             "checks the script only")
    args = parser.parse_args()
    # --quick: 16-step rollouts, one epoch of 2 minibatches per update
    small = ("task.num_steps=16", "task.update_epochs=1", "task.num_minibatches=2")
    if args.quick:
        args.envs, args.steps, args.updates = 2, 20, 1
    device = resolve_device(args.device)
    print(f"Pong, {args.envs} environments, torch threads {torch.get_num_threads()}, {device}")
    for kind in ("sync", "async"):
        print(f"  env-only ({kind}):   {env_only(args.envs, kind, args.steps):8.0f} agent steps/s")
    for kind in ("sync", "async"):
        rate = end_to_end(args.envs, kind, args.updates, device, small if args.quick else ())
        print(f"  end to end ({kind}): {rate:8.0f} agent steps/s (PPO updates with Nero)")


if __name__ == "__main__":
    main()
