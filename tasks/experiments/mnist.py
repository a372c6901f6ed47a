"""The MNIST experiments of Fig. 3: the CWN reparameterisation pitfall (E1) and the 100-layer MLP (E2)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import RunContext, Stepper, Task
from .configs import MnistCWNConfig, MnistMLPConfig
from .data.batches import TensorBatches
from .data.mnist import load_mnist, synthetic_mnist
from .models.mlp import CWNMLP, DeepMLP


class _MnistTask(Task):
    """Shared by both: MNIST on the device, per-minibatch accuracy before each update."""

    # Fig. 3 plots the running training accuracy over each epoch's minibatches, measured before
    # each update: the runner's epoch mean of the per-step "acc". Test accuracy sits beside it.
    metric = "train/acc"
    goal = "max"
    Config = MnistMLPConfig
    cfg: MnistMLPConfig

    def __init__(self, cfg: MnistMLPConfig, ctx: RunContext) -> None:
        super().__init__(cfg, ctx)
        if cfg.synthetic:
            self.train_x, self.train_y = synthetic_mnist(cfg.n_train, ctx.seed, ctx.device)
            self.test_x, self.test_y = synthetic_mnist(cfg.n_test, ctx.seed + 10_000, ctx.device)
        else:
            self.train_x, self.train_y = load_mnist(ctx.data_dir, True, ctx.download, ctx.device)
            self.test_x, self.test_y = load_mnist(ctx.data_dir, False, ctx.download, ctx.device)
        self.train = TensorBatches(self.train_x, self.train_y, batch_size=cfg.batch_size,
                                   seed=ctx.seed)
        self.model = self.build_model().to(ctx.device)

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def steps_per_epoch(self) -> int:
        return len(self.train)

    def batches(self, epoch: int, start: int) -> Iterator[Any]:
        self.model.train()
        return self.train.epoch(epoch, start)

    def train_step(self, batch: Any, step: Stepper) -> dict[str, torch.Tensor]:
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.detach().argmax(1) == y).float().mean()  # before the update, as E1/E2
        step(loss)
        return {"loss": loss.detach(), "acc": acc}

    @torch.no_grad()
    def evaluate(self, epoch: int) -> dict[str, float]:
        self.model.eval()
        correct = 0
        for i in range(0, len(self.test_x), 1000):
            logits = self.model(self.test_x[i:i + 1000])
            correct += int((logits.argmax(1) == self.test_y[i:i + 1000]).sum())
        self.model.train()
        return {"test_acc": correct / len(self.test_x)}


class MnistMLP(_MnistTask):
    """E2: plain MLP of ``depth`` layers (5 or 100), width 784, scaled ReLU, batch 250."""

    def build_model(self) -> nn.Module:
        return DeepMLP(self.cfg.depth, self.cfg.width, inputs=self.train_x.shape[1])


class MnistCWN(_MnistTask):
    """E1: 5-layer centred-weight-normalised MLP, raw weights N(0, sigma^2), Adam lr 0.01."""

    step_series = ("acc",)  # the per-minibatch training accuracy that Fig. 3 (left) plots
    Config = MnistCWNConfig
    cfg: MnistCWNConfig

    def __init__(self, cfg: MnistCWNConfig, ctx: RunContext) -> None:
        super().__init__(cfg, ctx)

    def build_model(self) -> nn.Module:
        return CWNMLP(self.cfg.depth, self.cfg.width, inputs=self.train_x.shape[1],
                      sigma=self.cfg.sigma)
