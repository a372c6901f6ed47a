"""CIFAR-10 through torchvision, held on the training device, with the authors' augmentation.

Two pipelines give the same distribution of training images (E3: crop 32 with zero padding 4,
horizontal flip, rotation by U(-15, 15) degrees, normalisation):

* ``device`` (default): uint8 images on the training device, all three augmentations applied as
  one nearest-neighbour affine resampling per image in a single batched ``grid_sample``. No
  loader workers, no host-to-device copies: the loader can never be the bottleneck.
* ``torchvision``: the PIL transforms of the original, through a DataLoader with workers,
  pinned memory and persistent workers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tasks.errors import UserError

MEAN = (0.4914, 0.4822, 0.4465)  # the authors' normalisation constants (E3)
STD = (0.2023, 0.1994, 0.2010)


def torchvision_cifar10(data_dir: Path, train: bool, download: bool, transform=None):
    """torchvision's CIFAR10 reading ``<data_dir>/cifar-10-batches-py`` (the python pickles).

    A pickle can run any code when it is loaded, so no file of the folder is unpickled before
    every one matches its MD5 in :attr:`prepare.Cifar10.FILES <tasks.experiments.data.prepare.
    Cifar10.FILES>` (torchvision's own table), checked here with torchvision's
    ``check_integrity`` before the data set is built. A file that fails is named in one line.
    With ``download`` and no folder, ``make data``'s fetch gets the archive first.
    """
    from torchvision.datasets import CIFAR10

    from .prepare import Cifar10, verified

    table = Cifar10.FILES
    folder = data_dir / "cifar-10-batches-py"
    if download and not folder.exists():
        Cifar10().fetch(data_dir, "download")
    bad = [n for n in table if (folder / n).is_file() and not verified(folder / n, table[n])]
    if bad:
        raise UserError(f"{', '.join(bad)} in {folder} fail(s) torchvision's MD5 check of "
                        "CIFAR-10 (damaged, or not CIFAR-10), so nothing was unpickled: "
                        "delete the folder and run `make data TASKS=cifar10_vgg11`")
    if not all((folder / n).is_file() for n in table):
        raise UserError(f"CIFAR-10 not found in {folder}: run `make data TASKS=cifar10_vgg11` "
                        "where the network is, or add download=true to fetch it in this run")

    class VerifiedCIFAR10(CIFAR10):
        """Its file table is the suite's, declared as torchvision declares CIFAR100's, so that
        torchvision's own check (it runs again as the data set is built) agrees with ours."""

        train_list = [[name, table[name]] for name, _ in CIFAR10.train_list]
        test_list = [[name, table[name]] for name, _ in CIFAR10.test_list]
        meta = {**CIFAR10.meta, "md5": table[CIFAR10.meta["filename"]]}

    return VerifiedCIFAR10(str(data_dir), train=train, transform=transform)


def load_cifar10(data_dir: Path, train: bool, download: bool,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 3, 32, 32) and int64 labels, on ``device``."""
    ds = torchvision_cifar10(data_dir, train, download)
    x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    return x.to(device), torch.tensor(ds.targets, dtype=torch.long, device=device)


def synthetic_cifar(n: int, seed: int, device: torch.device, size: int = 32,
                    classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable uint8 stand-ins: one colour per class (it survives the augmentation) plus noise."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.rand(classes, 3, 1, 1, generator=torch.Generator().manual_seed(7)) * 255
    y = torch.randint(0, classes, (n,), generator=g)
    x = (0.7 * colours[y] + 0.3 * torch.rand(n, 3, size, size, generator=g) * 255).round()
    return x.to(torch.uint8).to(device), y.to(device)


def normalise(x_uint8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, device=x_uint8.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x_uint8.device).view(1, 3, 1, 1)
    return (x_uint8.float() / 255.0 - mean) / std


def augment(x_uint8: torch.Tensor, generator: torch.Generator | None = None,
            pad: int = 4, degrees: float = 15.0) -> torch.Tensor:
    """Random crop (zero padding ``pad``), horizontal flip and rotation, batched on the device.

    Output pixel p samples input pixel F R^-1 p + t (normalised coordinates): t the crop
    offset, F the flip, R the rotation; zero fill outside, nearest neighbour, as PIL's rotate.
    Returns normalised float images.
    """
    b, _, h, w = x_uint8.shape
    dev = x_uint8.device
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator).float() - pad
    flips = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    angles = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(degrees)
    cos, sin = torch.cos(angles), torch.sin(angles)
    theta = torch.zeros(b, 2, 3)
    # F R^-1 with R^-1 the rotation by -angle; F flips the x axis.
    theta[:, 0, 0], theta[:, 0, 1] = flips * cos, flips * sin
    theta[:, 1, 0], theta[:, 1, 1] = -sin, cos
    theta[:, 0, 2] = 2 * offsets[:, 0] / w
    theta[:, 1, 2] = 2 * offsets[:, 1] / h
    grid = F.affine_grid(theta.to(dev), [b, 3, h, w], align_corners=False)
    out = F.grid_sample(x_uint8.float(), grid, mode="nearest", padding_mode="zeros",
                        align_corners=False)
    return normalise(out)


def torchvision_train_transform():
    from torchvision import transforms as T

    return T.Compose([
        T.RandomCrop(32, padding=4),
        T.RandomHorizontalFlip(),
        T.RandomRotation(15),
        T.ToTensor(),
        T.Normalize(MEAN, STD),
    ])
