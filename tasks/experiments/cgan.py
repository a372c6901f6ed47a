"""E4: the class-conditional BigGAN-like GAN on CIFAR-10 with FID (Table 1 row 1, Fig. 4).

Two roles, G and D, each with its own optimiser at the same lr (Adam: beta1 0 for G, 0.9 for D,
as the code ran it). Per batch: one D step on the hinge loss, then one G step with fresh z.
FID after epochs 10, 20, ..., 120 (G in eval mode): train-FID against the first 10 000 training
images, test-FID against the 10 000 test images, each from 10 000 fakes with the reference set's
labels. The record's headline is test-FID after 120 epochs (gap 14); train-FID sits beside it.

``fid.protocol``: ``authors`` (the default, so that Table 1 rows compare with the paper's) is the
original's: reals with random horizontal flips, and per-image min-max stretching of reals and
fakes before 8-bit quantisation; ``standard`` is pytorch-fid's plain protocol (no flips, no
stretching). Either way only 10 000 images per set are used, so the numbers are comparable
across optimisers in this protocol, not with published CIFAR-10 FIDs (gap 15).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from . import fid
from .base import RunContext, Stepper, Task
from .configs import CganConfig
from .data.batches import TensorBatches
from .data.cifar import load_cifar10, synthetic_cifar
from .models.biggan import Discriminator, Generator


def to_unit_range(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1], as ToTensor then Normalize(0.5, 0.5)."""
    return x_uint8.float() / 127.5 - 1.0


class Cifar10CGAN(Task):
    goal = "min"
    Config = CganConfig
    cfg: CganConfig

    def __init__(self, cfg: CganConfig, ctx: RunContext) -> None:
        super().__init__(cfg, ctx)
        self.metric = f"fid/{cfg.fid.headline}"
        dev = ctx.device
        if cfg.synthetic:
            self.train_x, self.train_y = synthetic_cifar(cfg.n_train, ctx.seed, dev)
            self.test_x, self.test_y = synthetic_cifar(cfg.n_train, ctx.seed + 1, dev)
        else:
            self.train_x, self.train_y = load_cifar10(ctx.data_dir, True, ctx.download, dev)
            self.test_x, self.test_y = load_cifar10(ctx.data_dir, False, ctx.download, dev)
        self.G = Generator(cfg.nf, cfg.z_dim, cfg.embed_classes).to(dev)
        self.D = Discriminator(cfg.nf, cfg.embed_classes).to(dev)
        self.train = TensorBatches(self.train_x, self.train_y, batch_size=cfg.batch_size,
                                   seed=ctx.seed)
        self._extractor: nn.Module | None = None
        self._reference: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def steps_per_epoch(self) -> int:
        return len(self.train)

    def batches(self, epoch: int, start: int) -> Iterator[Any]:
        self.G.train()
        self.D.train()  # D is never switched to eval mode, as in the original
        for x, y in self.train.epoch(epoch, start):
            flip = torch.rand(x.shape[0], device=x.device) < 0.5  # RandomHorizontalFlip
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            yield to_unit_range(x), y

    def train_step(self, batch: Any, step: Stepper) -> dict[str, torch.Tensor]:
        real, y = batch
        b, dev = real.shape[0], real.device
        # D step. The fakes are detached: D's gradient is the same, and G's gradient from this
        # loss, which the original computed, was zeroed before G's step anyway.
        fake = self.G(torch.randn(b, self.cfg.z_dim, device=dev), y).detach()
        d_loss = (self.D(fake, y).clamp(min=-1).mean() - self.D(real, y).clamp(max=1).mean())
        step(d_loss, "D")
        # G step with fresh z and the real batch's labels.
        g_loss = -self.D(self.G(torch.randn(b, self.cfg.z_dim, device=dev), y), y).mean()
        step(g_loss, "G")
        d_loss, g_loss = d_loss.detach(), g_loss.detach()
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}

    # -- FID ---------------------------------------------------------------------------------
    def _net(self) -> nn.Module:
        if self._extractor is None:
            f = self.cfg.fid
            from .data.prepare import Inception

            path = f.inception_path or Inception.path(self.ctx.data_dir)
            self._extractor = fid.extractor(f.extractor, path, self.ctx.device, self.ctx.download)
        return self._extractor

    def _uint8_batches(self, images: torch.Tensor, flip: bool) -> Iterator[torch.Tensor]:
        stretch = self.cfg.fid.protocol == "authors"
        g = torch.Generator().manual_seed(self.ctx.seed)
        for i in range(0, len(images), self.cfg.fid.batch_size):
            x = to_unit_range(images[i:i + self.cfg.fid.batch_size])
            if flip:
                mask = (torch.rand(x.shape[0], generator=g) < 0.5).to(x.device)
                x = torch.where(mask[:, None, None, None], x.flip(-1), x)
            yield fid.to_uint8(x, stretch)

    @torch.no_grad()
    def _fakes(self, labels: torch.Tensor, epoch: int) -> Iterator[torch.Tensor]:
        g = torch.Generator().manual_seed(self.ctx.seed * 1000 + epoch)
        stretch = self.cfg.fid.protocol == "authors"
        for i in range(0, len(labels), self.cfg.fid.batch_size):
            y = labels[i:i + self.cfg.fid.batch_size]
            z = torch.randn(len(y), self.cfg.z_dim, generator=g).to(y.device)
            yield fid.to_uint8(self.G(z, y), stretch)

    def _references(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if not self._reference:
            n = self.cfg.fid.samples
            flip = self.cfg.fid.protocol == "authors"
            net = self._net()
            for name, images in (("train", self.train_x[:n]), ("test", self.test_x[:n])):
                self._reference[name] = fid.statistics(
                    fid.features(net, self._uint8_batches(images, flip)))
        return self._reference

    @torch.no_grad()
    def evaluate(self, epoch: int) -> dict[str, float]:
        self.G.eval()
        refs = self._references()
        n = self.cfg.fid.samples
        net = self._net()
        out = {}
        for name, labels in (("train", self.train_y[:n]), ("test", self.test_y[:n])):
            out[f"fid/{name}"] = fid.fid_from(net, self._fakes(labels, epoch), refs[name])
        if epoch == self.cfg.eval_every or epoch == self.epochs:
            out["fid/real_train_vs_test"] = fid.frechet_distance(*refs["train"], *refs["test"])
        self._sample_grid(epoch)
        self.G.train()
        return out

    def _sample_grid(self, epoch: int) -> None:
        """Ten samples of each of the ten classes, one class per row, saved (and mirrored)."""
        from torchvision.utils import save_image

        g = torch.Generator().manual_seed(12345)
        y = torch.arange(10, device=self.ctx.device).repeat_interleave(10)
        z = torch.randn(100, self.cfg.z_dim, generator=g).to(self.ctx.device)
        path = self.ctx.run_dir / f"samples_epoch{epoch:03d}.png"
        save_image(self.G(z, y), path, nrow=10, normalize=True, value_range=(-1, 1))
        if self.ctx.log_image is not None:
            self.ctx.log_image("samples", path)
