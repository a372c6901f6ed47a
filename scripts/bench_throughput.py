"""Training throughput of the paper's models: images/s or tokens/s of full training steps.

    python scripts/bench_throughput.py                       # every model, on the GPU if any
    python scripts/bench_throughput.py --models vgg11,resnet18 --device cpu --steps 5
    python scripts/bench_throughput.py --quick      # the LM, 1 step: checks the script only

A step is forward, backward and a Nero step on synthetic data already on the device (so the
number is the model's and the optimiser's, not the loader's), in IEEE fp32 as the paper (the
backend flags of a run with precision=fp32: TF32 off), with channels_last on GPUs; "bf16" runs the
same under autocast. Data pipelines are measured by the
tasks themselves (the CIFAR pipeline augments on the device and never waits for a loader).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nero import Nero
from tasks.runner.loop import set_backends

Workload = tuple[nn.Module, Callable[[nn.Module], torch.Tensor], int]


def _vision(arch: str, batch: int, size: int, dev: torch.device) -> Workload:
    if arch in ("vgg11", "resnet18"):
        from tasks.experiments.models.cifar import build

        model, classes = build(arch), 10
    else:
        import torchvision

        model, classes = torchvision.models.resnet50(), 1000
    model = model.to(dev)
    x = torch.randn(batch, 3, size, size, device=dev)
    if dev.type == "cuda":  # the tasks' GPU layout
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,), device=dev)
    return model, lambda m: F.cross_entropy(m(x), y), batch


def _lm(batch: int, dev: torch.device) -> Workload:
    from tasks.experiments.models.transformer_lm import TransformerLM

    vocab, bptt = 33_278, 35
    model = TransformerLM(vocab).to(dev)
    tokens = torch.randint(0, vocab, (bptt, batch), device=dev)
    return model, lambda m: F.nll_loss(m(tokens).view(-1, vocab), tokens.view(-1)), bptt * batch


def _mt(batch: int, dev: torch.device) -> Workload:
    from tasks.experiments.models.transformer_mt import Seq2SeqTransformer

    vocab, length = 10_000, 24
    model = Seq2SeqTransformer(vocab, pad=0).to(dev)
    src = torch.randint(1, vocab, (batch, length), device=dev)
    trg = torch.randint(1, vocab, (batch, length), device=dev)

    def loss(m: nn.Module) -> torch.Tensor:
        return F.cross_entropy(m(src, trg[:, :-1]).reshape(-1, vocab), trg[:, 1:].reshape(-1))

    return model, loss, batch * (length - 1)


MODELS: dict[str, Callable[[torch.device], Workload]] = {
    "vgg11": lambda d: _vision("vgg11", 128, 32, d),
    "resnet18": lambda d: _vision("resnet18", 128, 32, d),
    "resnet50": lambda d: _vision("resnet50", 64, 224, d),
    "transformer_lm": lambda d: _lm(20, d),
    "transformer_mt": lambda d: _mt(128, d),
}
UNITS = {"transformer_lm": "tokens/s", "transformer_mt": "tokens/s"}


def bench(name: str, device: torch.device, steps: int, warmup: int, bf16: bool) -> float:
    model, loss_fn, items = MODELS[name](device)
    opt = Nero(model.parameters(), lr=0.01)
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step() -> None:
        with ctx:
            loss = loss_fn(model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return items * steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 30 GPU, 3 CPU)")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="the Wikitext-2 LM, 1 warm-up and 1 timed step: checks the script only")
    args = parser.parse_args()
    if args.quick:
        args.models, args.steps = "transformer_lm", 1
    device = torch.device(args.device)
    set_backends("bf16" if args.bf16 else "fp32", device, deterministic=False)
    steps = args.steps or (30 if device.type == "cuda" else 3)
    warmup = 1 if args.quick else (2 if device.type == "cpu" else 5)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__} on {name} ({torch.get_num_threads()} threads), "
          f"{'bf16 autocast' if args.bf16 else 'fp32'}, {steps} timed steps")
    for model in args.models.split(","):
        rate = bench(model, device, steps, warmup=warmup, bf16=args.bf16)
        print(f"  {model:<16} {rate:12.1f} {UNITS.get(model, 'images/s')}")


if __name__ == "__main__":
    main()
