"""MNIST (E1, E2): the loader on files in torchvision's real on-disk format, and the real test set."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from tasks.experiments.data.prepare import Mnist
from tests.helpers import REPO, run_cell

DATA = Path(os.environ.get("NERO_DATA", REPO / "data"))


def write_idx(raw: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    with opener(raw / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as f:
        f.write(struct.pack(">IIII", 2051, len(images), 28, 28) + images.astype(np.uint8).tobytes())
    with opener(raw / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_loads_real_idx_files_without_download(tmp_path, gz):
    rng = np.random.default_rng(0)
    raw = tmp_path / "data" / "MNIST" / "raw"
    labels = rng.integers(0, 10, 600)
    images = rng.integers(0, 40, (600, 28, 28)) + (labels[:, None, None] * 20)
    write_idx(raw, "train", images[:500], labels[:500], gz)
    write_idx(raw, "t10k", images[500:], labels[500:], gz)
    record = run_cell(tmp_path, "task=mnist_mlp", "task.depth=3", "task.width=32",
                      "task.epochs=3", "task.batch_size=50", "download=false")
    assert record.status == "ok"
    assert record.history[-1]["train/loss"] < record.history[0]["train/loss"]


@pytest.mark.skipif(not Mnist().check(DATA).ok,
                    reason=f"real MNIST not in {DATA}/MNIST/raw (make mnist puts it there)")
def test_real_mnist_test_set(tmp_path):
    from tasks.experiments.data.mnist import load_mnist

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (raw / name).write_bytes((DATA / "MNIST" / "raw" / name).read_bytes())
    x, y = load_mnist(tmp_path, train=False, download=False, device=torch.device("cpu"))
    assert x.shape == (10_000, 784) and y.shape == (10_000,)
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1.0) < 0.05  # E1's constants
    assert torch.bincount(y).tolist()[1] == 1135  # the majority class "1" (E2's chance level)
