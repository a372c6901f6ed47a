"""Run by torchrun in tests: DDP steps with Nero; rank 0 writes whether the ranks agree.

    ddp_worker.py OUT [cpu|cuda]

On the CPU the process group is gloo, joined through tasks.distributed. On CUDA it is
NCCL, joined here even at world size 1 (where the runner needs no process group), so that
NCCL and DDP's gradient reducer really run; at world size 1 rank 0 also trains the same model
without DDP and reports whether the two agree exactly.
"""

import json
import os
import sys

import torch
import torch.distributed as dist
from torch import nn

from nero import Nero
from tasks import distributed


def build() -> nn.Module:
    torch.manual_seed(0)  # the same initialisation everywhere (DDP also broadcasts rank 0's)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 6 * 6, 5))


def train(net: nn.Module, model: nn.Module, device: torch.device, rank: int) -> Nero:
    opt = Nero(net.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(100 + rank)  # each rank sees different data
    for _ in range(5):
        x, y = torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 5, (4,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x.to(device)), y.to(device)).backward()
        opt.step()  # no collective call of its own
    return opt


def flat(net: nn.Module, opt: Nero) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.cat([p.detach().reshape(-1) for p in net.parameters()]),
            torch.cat([opt.state[p]["v"] for p in net.parameters()]))


def main(out: str, device_name: str = "cpu") -> None:
    if device_name == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        dist.init_process_group("nccl")
        rank, world, device = dist.get_rank(), dist.get_world_size(), torch.device("cuda", local)
        net = build().to(device)
        model = nn.parallel.DistributedDataParallel(net, device_ids=[local])
    else:
        rank, world, _ = distributed.init("cpu")
        device = torch.device("cpu")
        net = build()
        model = distributed.wrap(net, device)
    opt = train(net, model, device, rank)
    params, state = flat(net, opt)
    gathered = [torch.zeros_like(params) for _ in range(world)]
    states = [torch.zeros_like(state) for _ in range(world)]
    dist.all_gather(gathered, params)
    dist.all_gather(states, state)
    if rank == 0:
        result = {"world": world, "backend": dist.get_backend(),
                  "params_equal": all(torch.equal(gathered[0], t) for t in gathered),
                  "nero_state_equal": all(torch.equal(states[0], t) for t in states)}
        if device_name == "cuda" and world == 1:
            alone = build().to(device)
            alone_params, alone_state = flat(alone, train(alone, alone, device, rank))
            result["single_process_equal"] = (torch.equal(alone_params, params)
                                              and torch.equal(alone_state, state))
        with open(out, "w") as f:
            json.dump(result, f)
    distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
