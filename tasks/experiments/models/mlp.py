"""The MNIST models: the plain deep MLP of E2 and the centred-weight-normalised MLP of E1."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def scaled_relu(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = sqrt(2) * max(0, x), which keeps the activation scale through depth (E1, E2)."""
    return math.sqrt(2.0) * F.relu(x)


class DeepMLP(nn.Module):
    """E2: ``depth`` Linear layers with biases, no normalisation, no skips; PyTorch default init.

    depth 100, width 784: 200 tensors, 60 936 410 parameters.
    """

    def __init__(self, depth: int = 100, width: int = 784, inputs: int = 784,
                 classes: int = 10) -> None:
        super().__init__()
        dims = [inputs] + [width] * (depth - 1) + [classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = scaled_relu(layer(x))
        return self.layers[-1](x)


class CWNLinear(nn.Module):
    """A bias-free linear layer used through centred weight normalisation (Eq. 3 of the paper).

    The raw weight is trained; the layer computes x @ CWN(W)^T with each row of W centred and
    scaled to unit norm. The raw entries start from N(0, sigma^2).
    """

    def __init__(self, inputs: int, outputs: int, sigma: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(outputs, inputs) * sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight - self.weight.mean(dim=1, keepdim=True)
        w = w / w.norm(dim=1, keepdim=True)
        return F.linear(x, w)


class CWNMLP(nn.Module):
    """E1: five CWN layers 784-784-784-784-784-10 with the scaled ReLU; 5 tensors, 2 466 464 params."""

    def __init__(self, depth: int = 5, width: int = 784, inputs: int = 784, classes: int = 10,
                 sigma: float = 1.0) -> None:
        super().__init__()
        dims = [inputs] + [width] * (depth - 1) + [classes]
        self.layers = nn.ModuleList(CWNLinear(a, b, sigma) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = scaled_relu(layer(x))
        return self.layers[-1](x)
