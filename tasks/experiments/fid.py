"""Fréchet Inception Distance, computed in memory, batch by batch (no image files).

The standard protocol is pytorch-fid's: 8-bit images, scaled to [0, 1], resized to 299x299
(bilinear, align_corners False), scaled to [-1, 1], through the FID port of TF-Inception
(``pt_inception-2015-12-05``) up to its 2048-d pool3 features; mu and Sigma (``np.cov``) per
set; FID = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) with scipy's ``sqrtm``, adding 1e-6 I
to both covariances when the product is singular, and refusing imaginary parts above 1e-3.

``to_uint8`` turns generator outputs in [-1, 1] into the 8-bit images the protocol starts from,
either plainly or with the authors' per-image min-max stretching (``save_image(normalize=True)``
in their code, gap 15). A PNG written and read back gives exactly these bytes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

from tasks.errors import UserError


# -- the distance ------------------------------------------------------------------------------------
def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """pytorch_fid's ``calculate_frechet_distance`` line for line (tests/test_cgan.py), written
    out because pytorch-fid 0.3.0 calls ``sqrtm(..., disp=False)``, which SciPy 1.18 removes."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a singular product is handled just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag))} in sqrtm")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# -- images -> features -----------------------------------------------------------------------------
def to_uint8(images: torch.Tensor, stretch: bool) -> torch.Tensor:
    """Images in [-1, 1] -> uint8, as torchvision's save_image quantises (x * 255 + 0.5)."""
    x = images.float()
    if stretch:  # the authors' per-image min-max stretching
        flat = x.flatten(1)
        lo = flat.min(1).values.view(-1, 1, 1, 1)
        hi = flat.max(1).values.view(-1, 1, 1, 1)
        x = (x - lo) / (hi - lo).clamp_min(1e-5)
    else:
        x = (x + 1) / 2
    return x.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


class FIDInception(nn.Module):
    """pytorch-fid's TF-Inception port: torchvision's Inception-v3 with the FID blocks.

    The features of pytorch_fid's ``InceptionV3`` (tests/test_cgan.py); built here because that
    class fetches its weights itself through torch.hub, where a run reads them from a given path.
    """

    def __init__(self) -> None:
        super().__init__()
        from pytorch_fid.inception import (
            FIDInceptionA,
            FIDInceptionC,
            FIDInceptionE_1,
            FIDInceptionE_2,
        )
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
        net.Mixed_5b = FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = FIDInceptionE_1(1280)
        net.Mixed_7c = FIDInceptionE_2(2048)
        self.net = net
        self.blocks = nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c,
            net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c,
            nn.AdaptiveAvgPool2d(1),
        )

    def load(self, path: str | Path, download: bool = False) -> FIDInception:
        """Weights from ``path`` (``task.fid.inception_path``, else ``<data_dir>/fid/...``, where
        ``make data`` puts them); only with ``download`` from the release, into that path."""
        path = Path(path)
        if not path.exists() and download:
            from .data.prepare import Inception

            Inception.download_to(path)
        if not path.exists():
            raise UserError(
                f"FID needs the Inception weights ({path.name}) at {path}: run `make data "
                "TASKS=cifar10_cgan` where the network is, set task.fid.inception_path to a "
                "copy, or add download=true")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise UserError(f"{path} is not a readable weights file ({type(err).__name__}); "
                            "delete it and fetch it again (make data TASKS=cifar10_cgan)") from None
        self.net.load_state_dict(state)
        return self.eval()

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        x = images_uint8.float() / 255.0
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.blocks(2 * x - 1).flatten(1)


class RandomFeatures(nn.Module):
    """A fixed random conv net (64-d features): a stand-in so that smoke-scale FID takes seconds.

    Not an FID: numbers from it are only comparable with each other.
    """

    def __init__(self, dims: int = 64) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.convs = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, dims, 3, 2, 1),
                                   nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        with torch.no_grad():
            for p in self.convs.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.eval()

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.convs(images_uint8.float() / 127.5 - 1).flatten(1)


def extractor(kind: str, inception_path: str | Path, device: torch.device,
              download: bool = False) -> nn.Module:
    if kind == "inception":
        return FIDInception().load(inception_path, download).to(device)
    if kind == "random":
        return RandomFeatures().to(device)
    raise UserError(f"unknown FID feature extractor {kind!r}: inception or random")


@torch.no_grad()
def features(net: nn.Module, batches: Iterator[torch.Tensor]) -> np.ndarray:
    """Features of uint8 image batches, gathered on the host as float64."""
    out = [net(b).double().cpu() for b in batches]
    return torch.cat(out).numpy()


def fid_from(net: nn.Module, fake: Iterator[torch.Tensor],
             reference: tuple[np.ndarray, np.ndarray]) -> float:
    mu, sigma = statistics(features(net, fake))
    return frechet_distance(mu, sigma, *reference)

