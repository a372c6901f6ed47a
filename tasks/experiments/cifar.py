"""CIFAR-10 classification (E3): VGG-11 and ResNet-18, Table 1 rows 2-3 and Figs. 1, 2, 5."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .base import RunContext, Stepper, Task
from .configs import CifarConfig
from .data.batches import ResumableBatchSampler, TensorBatches
from .data.cifar import (
    augment,
    load_cifar10,
    normalise,
    synthetic_cifar,
    torchvision_cifar10,
    torchvision_train_transform,
)
from .models.cifar import build


class Cifar10Classifier(Task):
    """Cross-entropy training; top-1 error (%) on the 10 000 test images after every epoch."""

    metric = "top1_error"
    goal = "min"
    Config = CifarConfig
    cfg: CifarConfig

    def __init__(self, cfg: CifarConfig, ctx: RunContext) -> None:
        super().__init__(cfg, ctx)
        dev = ctx.device
        if cfg.synthetic:
            self.train_x, self.train_y = synthetic_cifar(cfg.n_train, ctx.seed, dev, cfg.image_size)
            test_x, self.test_y = synthetic_cifar(cfg.n_test, ctx.seed + 1, dev, cfg.image_size)
        else:
            self.train_x, self.train_y = load_cifar10(ctx.data_dir, True, ctx.download, dev)
            test_x, self.test_y = load_cifar10(ctx.data_dir, False, ctx.download, dev)
        self.test_x = normalise(test_x)
        self.channels_last = cfg.channels_last and dev.type == "cuda"
        self.model = build(cfg.arch, cfg.classes, cfg.width).to(dev)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.pipeline = cfg.pipeline
        if self.pipeline == "torchvision" and not cfg.synthetic:
            dataset = torchvision_cifar10(ctx.data_dir, True, ctx.download,
                                          torchvision_train_transform())
            self.sampler = ResumableBatchSampler(len(dataset), cfg.batch_size, ctx.seed)
            workers = cfg.num_workers
            self.loader = DataLoader(dataset, batch_sampler=self.sampler, num_workers=workers,
                                     pin_memory=dev.type == "cuda",
                                     persistent_workers=workers > 0)
            self.batches_per_epoch = len(self.sampler)
        else:
            self.pipeline = "device"
            self.train = TensorBatches(self.train_x, self.train_y, batch_size=cfg.batch_size,
                                       seed=ctx.seed)
            self.batches_per_epoch = len(self.train)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def steps_per_epoch(self) -> int:
        return self.batches_per_epoch

    def batches(self, epoch: int, start: int) -> Iterator[Any]:
        self.model.train()
        if self.pipeline == "torchvision":
            self.sampler.set_epoch(epoch, start)
            for x, y in self.loader:
                yield (x.to(self.ctx.device, non_blocking=True),
                       y.to(self.ctx.device, non_blocking=True))
        else:
            for x, y in self.train.epoch(epoch, start):
                yield (augment(x) if self.cfg.augment else normalise(x)), y

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train_step(self, batch: Any, step: Stepper) -> dict[str, torch.Tensor]:
        x, y = batch
        logits = self.model(self._layout(x))
        loss = F.cross_entropy(logits, y)
        step(loss)
        return {"loss": loss.detach(), "acc": (logits.detach().argmax(1) == y).float().mean()}

    @torch.no_grad()
    def evaluate(self, epoch: int) -> dict[str, float]:
        self.model.eval()
        n = len(self.test_x)
        correct, loss = self._score((self.test_x[i:i + 1000] for i in range(0, n, 1000)), self.test_y)
        out = {"top1_error": 100.0 * (1.0 - correct / n), "test_loss": loss / n}
        if self.cfg.eval_train:
            # The authors' second metric: accuracy and loss in eval mode on freshly augmented
            # training images. Its own generator keeps the training stream untouched.
            gen = torch.Generator().manual_seed(self.ctx.seed * 100_003 + epoch)
            images = (self.train_x[i:i + 1000] for i in range(0, len(self.train_x), 1000))
            batches = (augment(x, gen) if self.cfg.augment else normalise(x) for x in images)
            correct, loss = self._score(batches, self.train_y)
            out["train_eval/acc"] = 100.0 * correct / len(self.train_x)
            out["train_eval/loss"] = loss / len(self.train_x)
        self.model.train()
        return out

    def _score(self, batches: Iterator[torch.Tensor], labels: torch.Tensor) -> tuple[float, float]:
        """(number correct, summed cross-entropy) over consecutive batches of 1000 images."""
        correct = torch.zeros((), device=self.ctx.device)
        loss = torch.zeros((), device=self.ctx.device)
        for i, x in enumerate(batches):
            logits = self.model(self._layout(x))
            y = labels[1000 * i:1000 * (i + 1)]
            correct += (logits.argmax(1) == y).sum()
            loss += F.cross_entropy(logits, y, reduction="sum")
        return float(correct), float(loss)
