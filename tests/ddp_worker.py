"""Run by torchrun in tests: DDP steps with Nero; rank 0 writes whether the ranks agree."""

import json
import sys

import torch
import torch.distributed as dist
from torch import nn

from nero import Nero
from tasks.runner import distributed


def main(out: str) -> None:
    rank, world, _ = distributed.init("cpu")
    torch.manual_seed(0)  # the same initialisation everywhere (DDP also broadcasts rank 0's)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 6 * 6, 5))
    model = distributed.wrap(net, torch.device("cpu"))
    opt = Nero(net.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(100 + rank)  # each rank sees different data
    for _ in range(5):
        x, y = torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 5, (4,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()  # no collective call of its own
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    state = torch.cat([opt.state[p]["v"] for p in net.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    states = [torch.zeros_like(state) for _ in range(world)]
    dist.all_gather(gathered, flat)
    dist.all_gather(states, state)
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"world": world,
                       "params_equal": all(torch.equal(gathered[0], t) for t in gathered),
                       "nero_state_equal": all(torch.equal(states[0], t) for t in states)}, f)
    distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
