"""E8: ImageNet ResNet-50 from scratch (Fig. 9 and §5.6), single process or DistributedDataParallel.

    python scripts/train.py task=imagenet_resnet50 optimizer=nero                    # one GPU
    torchrun --nproc_per_node=4 scripts/train.py task=imagenet_resnet50 optimizer=sgd  # four

The global batch is 400 whatever the number of processes. BatchNorm statistics are computed
over groups of ``bn_group`` images (100): the paper's 4-GPU DataParallel normalised each GPU's
100 images separately, and only the first GPU's running statistics were kept. One process with
the whole batch reproduces that by running the groups separately (the running statistics
following the first group only); four processes get it for free.

"Nero tuned" (§5.6, gap 31) adds ``bn_gain_penalty * sum((gamma - 1)^2)`` over the BN gains to
the loss; its sigma_b = 1 for every 1-D tensor is an optimiser option (optimizer=nero_tuned).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from tasks import distributed
from tasks.errors import UserError

from .base import RunContext, Stepper, Task
from .configs import ImageNetConfig
from .data.batches import num_batches
from .data.imagenet import SeededImageFolder, ShardedBatchSampler, normalise, write_synthetic


def build(arch: str, classes: int) -> nn.Module:
    from torchvision.models import resnet50
    from torchvision.models.resnet import BasicBlock, ResNet

    if arch == "resnet50":
        return resnet50(weights=None, num_classes=classes)
    if arch == "resnet_tiny":  # smoke scale: the same code with one BasicBlock per stage
        return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=classes)
    raise UserError(f"unknown ImageNet architecture {arch!r}: resnet50 or resnet_tiny")


@contextlib.contextmanager
def frozen_running_stats(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers normalise with batch statistics but leave their running averages alone."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(bns, saved):
            m.momentum = momentum


class GroupedBN(nn.Module):
    """Runs ``net`` on consecutive groups of ``group`` images: per-group BN batch statistics."""

    def __init__(self, net: nn.Module, group: int | None) -> None:
        super().__init__()
        self.net, self.group = net, group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.group or x.shape[0] <= self.group:
            return self.net(x)
        outs = [self.net(chunk) if i == 0 else self._frozen(chunk)
                for i, chunk in enumerate(x.split(self.group))]
        return torch.cat(outs)

    def _frozen(self, chunk: torch.Tensor) -> torch.Tensor:
        with frozen_running_stats(self.net):
            return self.net(chunk)


class ImageNetResNet50(Task):
    metric = "top1_error"
    goal = "min"
    Config = ImageNetConfig
    cfg: ImageNetConfig

    def __init__(self, cfg: ImageNetConfig, ctx: RunContext) -> None:
        super().__init__(cfg, ctx)
        root = ctx.data_dir / "imagenet"
        if cfg.synthetic:
            root = ctx.run_dir / "synthetic" / "imagenet"
            if distributed.is_main() and not (root / "val").exists():
                write_synthetic(root, cfg.n_train, cfg.n_val, cfg.classes, cfg.resize, seed=0)
            distributed.barrier()
        rank, world = distributed.rank(), distributed.world_size()
        self.train_set = SeededImageFolder(root / "train", True, cfg.image_size, cfg.resize)
        self.val_set = SeededImageFolder(root / "val", False, cfg.image_size, cfg.resize)
        self.sampler = ShardedBatchSampler(len(self.train_set), cfg.batch_size, ctx.seed, True,
                                           rank, world)
        self.val_sampler = ShardedBatchSampler(len(self.val_set), cfg.batch_size, ctx.seed, False,
                                               rank, world, train=False)
        workers = cfg.num_workers
        loader_args = dict(num_workers=workers, pin_memory=ctx.device.type == "cuda",
                           persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
        self.loader = DataLoader(self.train_set, batch_sampler=self.sampler, **loader_args)
        self.val_loader = DataLoader(self.val_set, batch_sampler=self.val_sampler, **loader_args)
        self.channels_last = cfg.channels_last and ctx.device.type == "cuda"
        self.net = build(cfg.arch, cfg.classes).to(ctx.device)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        per_rank = cfg.batch_size // world
        group = cfg.bn_group
        self.model = distributed.wrap(GroupedBN(self.net, group if group and group < per_rank else None),
                                      ctx.device)
        self.bn_gains = [m.weight for m in self.net.modules() if isinstance(m, nn.BatchNorm2d)]

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.net}

    def steps_per_epoch(self) -> int:
        return num_batches(len(self.train_set), self.cfg.batch_size, drop_last=False)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        x = normalise(x.to(self.ctx.device, non_blocking=True))
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def batches(self, epoch: int, start: int) -> Iterator[Any]:
        self.model.train()
        self.sampler.set_epoch(epoch, start)
        for b, (x, y) in enumerate(self.loader, start):
            yield self._input(x), y.to(self.ctx.device, non_blocking=True), self.sampler.global_size(b)

    def train_step(self, batch: Any, step: Stepper) -> dict[str, torch.Tensor]:
        x, y, global_size = batch
        logits = self.model(x)
        loss_sum = F.cross_entropy(logits, y, reduction="sum")
        # DDP averages the ranks' gradients; scaling each rank's summed loss by world / L makes
        # that average the gradient of the global batch's mean loss, also when the shares of a
        # last batch differ in size (world 1: the plain mean).
        loss = loss_sum * (distributed.world_size() / global_size)
        if self.cfg.bn_gain_penalty:
            loss = loss + self.cfg.bn_gain_penalty * sum(((g - 1) ** 2).sum() for g in self.bn_gains)
        step(loss)
        # The global batch's mean cross-entropy (no BN-gain penalty) and accuracy, as every rank sees.
        stats = torch.stack([loss_sum.detach(), (logits.argmax(1) == y).sum().float(),
                             torch.tensor(float(len(y)), device=y.device)])
        distributed.all_reduce_sum(stats)
        return {"loss": stats[0] / stats[2], "top1_acc": stats[1] / stats[2]}

    @torch.no_grad()
    def evaluate(self, epoch: int) -> dict[str, float]:
        distributed.broadcast_buffers(self.net)  # each rank's last forward updated its own
        self.net.eval()
        totals = torch.zeros(4, device=self.ctx.device)  # top-1, top-5, loss sum, count
        for x, y in self.val_loader:
            x, y = self._input(x), y.to(self.ctx.device, non_blocking=True)
            logits = self.net(x)
            top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
            totals += torch.stack([(top5[:, 0] == y).sum().float(),
                                   (top5 == y[:, None]).any(1).sum().float(),
                                   F.cross_entropy(logits, y, reduction="sum"),
                                   torch.tensor(float(len(y)), device=y.device)])
        distributed.all_reduce_sum(totals)
        self.net.train()
        n = float(totals[3])
        return {"top1_error": 100.0 * (1 - float(totals[0]) / n),
                "top5_error": 100.0 * (1 - float(totals[1]) / n), "val_loss": float(totals[2]) / n}
