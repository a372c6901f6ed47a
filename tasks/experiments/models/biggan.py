"""E4: the class-conditional BigGAN-like generator and discriminator for 32x32 CIFAR-10.

Spectral norm (PyTorch's parametrisation, one power iteration per training-mode forward) on
every conv, linear and embedding; the optimisers see the raw weights. Orthogonal init of every
conv/linear/embedding weight, N(0, 0.01^2) biases, affine BN gain 1 and bias N(0, 0.01^2).
The class input spans 1000 classes (one-hot in G, a 1000-row embedding in D) although CIFAR-10
has 10, as in the authors' code (gap 16). With nf = 64: G has 56 tensors and 2 183 091
parameters, D 33 tensors and 2 644 129.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _sn(module: nn.Module) -> nn.Module:
    nn.init.orthogonal_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.normal_(module.bias, 0.0, 0.01)
    return spectral_norm(module)


def sn_conv(c_in: int, c_out: int, k: int) -> nn.Module:
    return _sn(nn.Conv2d(c_in, c_out, k, padding=k // 2))


def sn_linear(d_in: int, d_out: int) -> nn.Module:
    return _sn(nn.Linear(d_in, d_out))


class ConditionalBN(nn.Module):
    """BN without affine parameters (momentum 0.001), then x * (1 + gamma(c)) + beta(c)."""

    def __init__(self, channels: int, cond: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False, momentum=0.001, eps=1e-5)
        self.gamma = sn_linear(cond, channels)
        self.beta = sn_linear(cond, channels)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        g = self.gamma(c)[:, :, None, None]
        b = self.beta(c)[:, :, None, None]
        return self.bn(x) * (1 + g) + b


class NonLocal(nn.Module):
    """Self-attention with a fixed mixing coefficient of 1.0 and no 1/sqrt(d) score scaling."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.theta = sn_conv(channels, channels // 8, 1)
        self.phi = sn_conv(channels, channels // 8, 1)
        self.g = sn_conv(channels, channels // 2, 1)
        self.o = sn_conv(channels // 2, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        theta = self.theta(x).flatten(2)  # (b, c/8, hw)
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)  # (b, c/8, hw/4)
        g = F.max_pool2d(self.g(x), 2).flatten(2)  # (b, c/2, hw/4)
        attn = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # (b, hw, hw/4)
        o = (g @ attn.transpose(1, 2)).view(b, c // 2, h, w)
        return x + 1.0 * self.o(o)


class GBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond: int) -> None:
        super().__init__()
        self.bn0 = ConditionalBN(c_in, cond)
        self.conv0 = sn_conv(c_in, c_out, 3)
        self.bn1 = ConditionalBN(c_out, cond)
        self.conv1 = sn_conv(c_out, c_out, 3)
        self.skip = sn_conv(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn0(x, c)), scale_factor=2, mode="nearest")
        h = self.conv1(F.relu(self.bn1(self.conv0(h), c)))
        s = F.interpolate(x, scale_factor=2, mode="nearest")
        return h + (self.skip(s) if self.skip is not None else s)


class Generator(nn.Module):
    def __init__(self, nf: int = 64, z_dim: int = 80, classes: int = 1000) -> None:
        super().__init__()
        self.z_dim, self.classes, self.nf = z_dim, classes, nf
        chunk = z_dim // 4
        cond = z_dim + chunk  # class embedding (z_dim wide) + one z chunk
        self.embed = sn_linear(classes, z_dim)
        self.linear = sn_linear(chunk, 4 * nf * 4 * 4)
        self.block1 = GBlock(4 * nf, 4 * nf, cond)
        self.block2 = GBlock(4 * nf, 2 * nf, cond)
        self.attention = NonLocal(2 * nf)
        self.block3 = GBlock(2 * nf, nf, cond)
        self.bn = nn.BatchNorm2d(nf)  # affine, as coded (gap 18)
        nn.init.normal_(self.bn.bias, 0.0, 0.01)
        self.out = sn_conv(nf, 3, 3)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = self.embed(F.one_hot(y, self.classes).float())
        z0, z1, z2, z3 = z.chunk(4, dim=1)
        h = self.linear(z0).view(-1, 4 * self.nf, 4, 4)
        h = self.block1(h, torch.cat([e, z1], 1))
        h = self.attention(self.block2(h, torch.cat([e, z2], 1)))
        h = self.block3(h, torch.cat([e, z3], 1))
        return torch.tanh(self.out(F.relu(self.bn(h))))


class DBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, down: bool) -> None:
        super().__init__()
        self.conv0 = sn_conv(c_in, c_out, 3)
        self.conv1 = sn_conv(c_out, c_out, 3)
        self.skip = sn_conv(c_in, c_out, 1) if (c_in != c_out or down) else None
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.conv0(F.relu(x))))
        s = self.skip(x) if self.skip is not None else x
        if self.down:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + s


class Discriminator(nn.Module):
    def __init__(self, nf: int = 64, classes: int = 1000) -> None:
        super().__init__()
        self.conv0 = sn_conv(3, nf, 3)
        self.conv1 = sn_conv(nf, nf, 3)
        self.skip0 = sn_conv(3, nf, 1)
        self.block1 = DBlock(nf, 2 * nf, down=True)
        self.attention = NonLocal(2 * nf)
        self.block2 = DBlock(2 * nf, 4 * nf, down=True)
        self.block3 = DBlock(4 * nf, 4 * nf, down=False)
        self.linear = sn_linear(4 * nf, 1)
        self.embed = _sn(nn.Embedding(classes, 4 * nf))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(self.conv1(F.relu(self.conv0(x))), 2)
        h = h + self.skip0(F.avg_pool2d(x, 2))
        h = self.block3(self.block2(self.attention(self.block1(h))))
        h = F.relu(h).mean(dim=(2, 3))
        out = self.linear(h).squeeze(1) + (h * self.embed(y)).sum(1)
        return 10.0 * out  # the fixed output scale of the original
