"""Runner overhead: an MNIST-MLP epoch through the runner vs a bare PyTorch loop, one process.

    python scripts/bench_runner.py [--rounds 3] [--device cpu]
    python scripts/bench_runner.py --quick     # 1 round of 1 step: checks the script only

Both do the same work: the 5-layer 784-wide MLP of E2 on MNIST-shaped data (synthetic, so no
download is needed), batch 250, Nero, per-step accuracy, one test evaluation and, for the
runner, its record. Rounds alternate between the bare loop, the runner and the runner with
``diagnostics=true`` (per-layer norms, means and angles each epoch: tasks/runner/diagnostics.py);
the ratio of medians to the bare loop's is printed for each runner, diagnostics off and on.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from nero import Nero
from tasks.experiments.data.batches import TensorBatches
from tasks.experiments.data.mnist import synthetic_mnist
from tasks.experiments.models.mlp import DeepMLP
from tasks.runner.cli import compose
from tasks.runner.loop import run

OVERRIDES = ["task=mnist_mlp", "optimizer=nero", "logger=none", "progress=false", "task.depth=5",
             "task.width=784", "task.synthetic=true", "task.epochs=1", "checkpoint.every_minutes=null"]


def bare(n_train: int, device: torch.device) -> float:
    t0 = time.perf_counter()
    torch.manual_seed(0)
    x, y = synthetic_mnist(n_train, 0, device)
    tx, ty = synthetic_mnist(2000, 10_000, device)
    batches = TensorBatches(x, y, batch_size=250, seed=0)
    model = DeepMLP(5, 784).to(device)
    opt = Nero(model.parameters(), lr=0.01)
    loss_sum, acc_sum = torch.zeros((), device=device), torch.zeros((), device=device)
    for xb, yb in batches.epoch(0):
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        acc_sum += (logits.detach().argmax(1) == yb).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach()
    with torch.no_grad():
        model.eval()
        correct = sum(int((model(tx[i:i + 1000]).argmax(1) == ty[i:i + 1000]).sum())
                      for i in range(0, len(tx), 1000))
    _ = (float(loss_sum), float(acc_sum), correct)
    return time.perf_counter() - t0


def through_runner(n_train: int, device: torch.device, out: Path, i: int,
                   diagnostics: bool = False) -> float:
    cfg = compose(*OVERRIDES, f"task.n_train={n_train}", "task.n_test=2000", f"out_dir={out}",
                  f"sweep=bench{i}", f"device={device.type}",
                  f"diagnostics={str(diagnostics).lower()}")
    t0 = time.perf_counter()
    record = run(cfg)
    elapsed = time.perf_counter() - t0
    assert record.status == "ok", record
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=15000, help="60 steps of batch 250")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true",
                        help="1 round of 1 step (250 examples): checks the script only")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.n_train = 1, 250
    device = torch.device(args.device)
    bare_times: list[float] = []
    runner_times: dict[bool, list[float]] = {False: [], True: []}  # by diagnostics
    with tempfile.TemporaryDirectory() as tmp:
        warm = min(2000, args.n_train)
        bare(warm, device)  # warm-up: allocator, kernels, imports
        for diagnostics in runner_times:
            through_runner(warm, device, Path(tmp) / f"warm-{diagnostics}", -1, diagnostics)
        for i in range(args.rounds):
            bare_times.append(bare(args.n_train, device))
            for diagnostics, times in runner_times.items():  # own folders: never a skipped cell
                times.append(through_runner(args.n_train, device, Path(tmp) / str(diagnostics),
                                            i, diagnostics))
    b = statistics.median(bare_times)
    print(f"MNIST-MLP epoch ({args.n_train // 250} steps of 250, 5x784, Nero) on {device}, "
          f"median of {args.rounds} interleaved rounds:")
    for diagnostics, times in runner_times.items():
        r = statistics.median(times)
        target = "target <= 5%" if not diagnostics else "one pass over the weights per epoch"
        print(f"  diagnostics={str(diagnostics).lower():5}  bare loop {b:.3f}s   runner {r:.3f}s   "
              f"overhead {100 * (r / b - 1):+.1f}% ({target})")


if __name__ == "__main__":
    main()
