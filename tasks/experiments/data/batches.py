"""Epoch orders that are a function of (seed, epoch), so a run can resume mid-epoch exactly."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


def index_batches(n: int, batch_size: int, seed: int, epoch: int, start: int = 0,
                  shuffle: bool = True, drop_last: bool = False) -> Iterator[torch.Tensor]:
    """Index batches of one epoch, from batch number ``start`` on."""
    order = epoch_order(n, seed, epoch, shuffle)
    for b in range(start, num_batches(n, batch_size, drop_last)):
        yield order[b * batch_size:(b + 1) * batch_size]


class ResumableBatchSampler(Sampler[list[int]]):
    """A DataLoader batch sampler over ``index_batches``; call ``set_epoch`` before iterating."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True,
                 drop_last: bool = False) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.shuffle, self.drop_last = shuffle, drop_last
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[list[int]]:
        for idx in index_batches(self.n, self.batch_size, self.seed, self.epoch, self.start,
                                 self.shuffle, self.drop_last):
            yield idx.tolist()

    def __len__(self) -> int:
        return num_batches(self.n, self.batch_size, self.drop_last) - self.start


class TensorBatches:
    """Minibatches of tensors that already sit on the training device (no loader, no copies)."""

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int, shuffle: bool = True,
                 drop_last: bool = False) -> None:
        self.tensors = tensors
        self.n = tensors[0].shape[0]
        self.batch_size, self.seed, self.shuffle, self.drop_last = batch_size, seed, shuffle, drop_last

    def __len__(self) -> int:
        return num_batches(self.n, self.batch_size, self.drop_last)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        device = self.tensors[0].device
        for idx in index_batches(self.n, self.batch_size, self.seed, epoch, start, self.shuffle,
                                 self.drop_last):
            idx = idx.to(device, non_blocking=True)
            yield tuple(t.index_select(0, idx) for t in self.tensors)
