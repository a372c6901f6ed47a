"""Optimiser step time and state memory against SGD(foreach), measured in one process.

    python scripts/bench_optim.py                 # ResNet-50 and a 100-layer 784-wide MLP
    python scripts/bench_optim.py --device cuda --rounds 30
    python scripts/bench_optim.py --quick         # a 10-layer 64-wide MLP, 2 rounds: checks the script

Every optimiser steps on the same parameters and gradients; the steps are interleaved round by
round and the median per optimiser is divided by SGD(foreach)'s median from the same rounds,
so the ratios do not depend on what else the machine is doing. The first steps (compilation,
lazy state) are excluded. Times are wall-clock per step, synchronised on accelerators.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from nero import LAMB, Madam, Nero
from tasks.timing import interleaved_medians, own_copy


def mlp(depth: int = 100, width: int = 784) -> nn.Module:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(width, 10 if i == depth - 1 else width))
    return nn.Sequential(*layers)


OPTIMISERS: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
    "sgd(foreach)": lambda ps: torch.optim.SGD(ps, lr=0.01, foreach=True),
    "nero(fused)": lambda ps: Nero(ps, lr=0.01, fused=True),
    "nero(plain loop)": lambda ps: Nero(ps, lr=0.01, fused=False),
    "adam(fused)": lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True),
    "adam(foreach)": lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True),
    "lamb(fused)": lambda ps: LAMB(ps, lr=1e-3, betas=(0.0, 0.999), fused=True),
    "lamb(foreach)": lambda ps: LAMB(ps, lr=1e-3, betas=(0.0, 0.999), fused=False, foreach=True),
    "madam(fused)": lambda ps: Madam(ps, lr=0.01, fused=True),
    "madam(plain loop)": lambda ps: Madam(ps, lr=0.01, fused=False),
}


def state_elements(opt: torch.optim.Optimizer) -> int:
    return sum(
        v.numel()
        for s in opt.state.values()
        for v in s.values()
        if isinstance(v, torch.Tensor) and v.dim() > 0
    )


def bench(name: str, model: nn.Module, device: str, rounds: int, warmup: int) -> dict:
    model = model.to(device)
    params = list(model.parameters())
    torch.manual_seed(0)
    for p in params:
        p.grad = torch.randn_like(p) * 1e-2
    opts = {key: make(own_copy(params)) for key, make in OPTIMISERS.items()}
    medians = interleaved_medians({k: o.step for k, o in opts.items()}, rounds, warmup, device)
    base = medians["sgd(foreach)"]
    n_weights = sum(p.numel() for p in params)
    adam_state = state_elements(opts["adam(foreach)"])
    nero_state = state_elements(opts["nero(fused)"])
    print(f"\n{name}: {len(params)} tensors, {n_weights:,} parameters, device {device}")
    print(f"{'optimiser':<18} {'ms/step':>9} {'x sgd':>7}")
    rows = {}
    for key, med in medians.items():
        rows[key] = {"ms": med * 1e3, "ratio_to_sgd_foreach": med / base}
        print(f"{key:<18} {med * 1e3:9.2f} {med / base:7.2f}")
    ratio = nero_state / adam_state
    print(
        f"state elements: nero {nero_state:,}  adam {adam_state:,}  "
        f"nero/adam = {100 * ratio:.3f}%"
    )
    return {
        "model": name,
        "tensors": len(params),
        "parameters": n_weights,
        "steps": rows,
        "nero_state_elements": nero_state,
        "adam_state_elements": adam_state,
        "nero_over_adam_state": ratio,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--models", default="resnet50,mlp100")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--quick", action="store_true",
                        help="a 10-layer 64-wide MLP, 2 rounds after 1 warm-up: checks the script")
    args = parser.parse_args()
    models = {"resnet50": torchvision.models.resnet50, "mlp100": mlp, "mlp10x64": lambda: mlp(10, 64)}
    if args.quick:
        args.models, args.rounds, args.warmup = "mlp10x64", 2, 1
    hardware = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor()
    print(f"torch {torch.__version__}, {hardware or platform.machine()}, "
          f"{torch.get_num_threads()} CPU threads")
    results = [
        bench(name, models[name](), args.device, args.rounds, args.warmup)
        for name in args.models.split(",")
    ]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "device": args.device,
                       "hardware": hardware, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
