"""ImageNet (ILSVRC-2012) in torchvision's ImageFolder layout, decoded by torchvision.io.

Layout: ``<data_dir>/imagenet/{train,val}/<wnid>/*.JPEG`` (validation images moved into their
class folders, the standard preparation; README.md shows the commands). Workers decode to uint8
tensors and apply E8's geometric transforms (train: RandomResizedCrop 224 with scale (0.08, 1)
and ratio (3/4, 4/3), horizontal flip; val: resize 256, centre crop 224); the float conversion
and normalisation happen on the training device, so only uint8 crops cross the bus.

Each sample draws its random crop from a generator seeded by (run seed, epoch, index): the
augmentation is the same whatever the number of workers or processes, and after a resume.
Batches are global batches split across data-parallel ranks, each rank taking a contiguous
slice, so the global batch (400 in E8) is preserved whatever the number of GPUs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from tasks.errors import UserError

from .batches import epoch_order, num_batches

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class SeededImageFolder(Dataset):
    """ImageFolder whose items are (index, seed) pairs: uint8 (3, H, W) images and labels."""

    def __init__(self, root: Path, train: bool, size: int, resize: int) -> None:
        from torchvision.datasets import ImageFolder
        from torchvision.transforms import v2

        if not root.is_dir():
            raise UserError(f"ImageNet folder {root} not found: prepare ILSVRC-2012 as "
                            "<data_dir>/imagenet/{train,val}/<wnid>/*.JPEG (see README.md)")
        self.folder = ImageFolder(str(root), loader=_decode)
        if train:
            self.transform = v2.Compose([v2.RandomResizedCrop(size, antialias=True),
                                         v2.RandomHorizontalFlip()])
        else:
            self.transform = v2.Compose([v2.Resize(resize, antialias=True), v2.CenterCrop(size)])

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = item
        image, label = self.folder[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image), label


def _decode(path: str) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image, read_file

    return decode_image(read_file(path), mode=ImageReadMode.RGB)


class ShardedBatchSampler(Sampler[list[tuple[int, int]]]):
    """This rank's slice of each global batch of one epoch, from global batch ``start`` on.

    A global batch of L images gives rank r the images [r L / world, (r + 1) L / world): shares
    that differ by at most one. Training needs every rank in every step (DDP reduces the
    gradients), so a last batch with fewer images than processes is refused up front;
    evaluation (``train=False``) simply skips a rank's empty share.
    """

    def __init__(self, n: int, global_batch: int, seed: int, shuffle: bool, rank: int,
                 world: int, train: bool = True) -> None:
        if global_batch % world:
            raise UserError(f"the global batch {global_batch} does not split evenly over "
                            f"{world} processes")
        if train and 0 < n % global_batch < world:
            raise UserError(f"the last batch of an epoch ({n % global_batch} of {n} images) "
                            f"would leave some of the {world} processes without an image: "
                            "change the batch size, the number of processes or the data")
        self.n, self.global_batch, self.seed, self.shuffle = n, global_batch, seed, shuffle
        self.rank, self.world, self.train = rank, world, train
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return sum(1 for _ in self._shares())

    def global_size(self, b: int) -> int:
        """How many images global batch ``b`` holds (all ranks together)."""
        return min(self.global_batch, self.n - b * self.global_batch)

    def _shares(self) -> Iterator[tuple[int, int, int]]:
        for b in range(self.start, num_batches(self.n, self.global_batch, drop_last=False)):
            size = self.global_size(b)
            lo, hi = size * self.rank // self.world, size * (self.rank + 1) // self.world
            if hi > lo or self.train:
                yield b, lo, hi

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_order(self.n, self.seed, self.epoch, self.shuffle)
        for b, lo, hi in self._shares():
            mine = order[b * self.global_batch + lo:b * self.global_batch + hi].tolist()
            yield [(i, (self.seed * 1_000_003 + self.epoch) * 10_000_019 + i) for i in mine]


def normalise(x_uint8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, device=x_uint8.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x_uint8.device).view(1, 3, 1, 1)
    return (x_uint8.float() / 255.0 - mean) / std


def write_synthetic(root: Path, n_train: int, n_val: int, classes: int, size: int, seed: int) -> None:
    """A tiny ImageFolder in ImageNet's layout (PNG files), learnable from colour."""
    from torchvision.io import write_png

    g = torch.Generator().manual_seed(seed)
    colours = torch.randint(0, 256, (classes, 3, 1, 1), generator=torch.Generator().manual_seed(3))
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            label = i % classes
            folder = root / split / f"n{label:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            noise = torch.randint(0, 60, (3, size, size), generator=g)
            image = (colours[label] * 0.8 + noise).clamp(0, 255).to(torch.uint8)
            write_png(image, str(folder / f"img_{i:05d}.png"))
