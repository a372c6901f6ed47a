"""The CIFAR-10 classifiers of E3: VGG-11 without batch norm and the CIFAR ResNet-18 variant."""

from __future__ import annotations

import torch
from torch import nn

VGG11_LAYERS = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def _kaiming_convs(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class VGG11(nn.Module):
    """Convs without bias or BN (ReLU after each), five max-pools, a 3-layer classifier with dropout.

    Full width: 14 tensors, 28 141 258 parameters. ``width`` scales every channel count and the
    classifier's 4096 (smoke scale only).
    """

    def __init__(self, classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in VGG11_LAYERS:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                c_out = max(1, int(v * width))
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        hidden = max(1, int(4096 * width))
        self.classifier = nn.Sequential(
            nn.Linear(c_in, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(hidden, classes),
        )
        _kaiming_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.residual(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """The CIFAR ResNet-18 of E3: 3x3 stem with BN and **no ReLU after it**, no max-pool (gap 12).

    Full width: 62 tensors, 11 173 962 parameters.
    """

    def __init__(self, classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        widths = [max(1, int(w * width)) for w in (64, 128, 256, 512)]
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]))
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for i, c_out in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, classes)
        _kaiming_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def build(arch: str, classes: int = 10, width: float = 1.0) -> nn.Module:
    if arch == "vgg11":
        return VGG11(classes, width)
    if arch == "resnet18":
        return ResNet18(classes, width)
    raise ValueError(f"unknown CIFAR architecture {arch!r}: vgg11 or resnet18")
