"""The cGAN (E4) and FID: architecture counts, the FID maths against closed forms, the protocol."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg

from tasks.errors import UserError
from tasks.experiments import fid
from tasks.experiments.models.biggan import Discriminator, Generator
from tests.helpers import count_params


def test_architectures_match_e4():
    assert count_params(Generator()) == (56, 2_183_091)
    assert count_params(Discriminator()) == (33, 2_644_129)


def test_generator_sampling_is_deterministic_in_eval_mode():
    torch.manual_seed(0)
    g = Generator(nf=8).eval()
    z, y = torch.randn(4, 80), torch.tensor([0, 1, 2, 3])
    a, b = g(z, y), g(z, y)  # no power iteration, BN running statistics
    assert torch.equal(a, b) and a.shape == (4, 3, 32, 32) and a.abs().max() <= 1
    g.train()
    g(z, y)  # a training-mode forward updates the spectral-norm vectors and BN statistics
    assert not torch.equal(g.eval()(z, y), a)


def test_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    closed = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(closed, rel=1e-10)
    # A full-rank rotation of both leaves the distance unchanged.
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    rotated = fid.frechet_distance(q @ mu1, q @ np.diag(s1) @ q.T, q @ mu2, q @ np.diag(s2) @ q.T)
    assert rotated == pytest.approx(closed, rel=1e-8)
    assert fid.frechet_distance(mu1, np.diag(s1), mu1, np.diag(s1)) == pytest.approx(0, abs=1e-8)


def test_fid_on_random_features_matches_a_direct_computation():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 8))
    b = rng.normal(size=(400, 8)) * 1.5 + 0.3
    mu_a, cov_a = a.mean(0), np.cov(a, rowvar=False)
    mu_b, cov_b = b.mean(0), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a)
    direct = (((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
              - 2 * np.trace(linalg.sqrtm(root @ cov_b @ root).real))
    got = fid.frechet_distance(*fid.statistics(a), *fid.statistics(b))
    assert got == pytest.approx(direct, rel=1e-8)


def test_singular_covariances_get_the_usual_offset():
    feats = np.zeros((10, 3))
    feats[:, 0] = np.arange(10)  # rank-one covariance
    value = fid.frechet_distance(*fid.statistics(feats), *fid.statistics(feats + 1))
    assert np.isfinite(value) and value == pytest.approx(3.0, rel=1e-3)


def test_frechet_distance_is_pytorch_fids():
    """Ours is pytorch_fid's calculate_frechet_distance (see fid.py for why it is written out):
    the same number on the same features, a singular product (its 1e-6 offset) included."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(2)
    singular = np.zeros((10, 3))
    singular[:, 0] = np.arange(10)
    for a, b in ((rng.normal(size=(300, 16)), rng.normal(size=(200, 16)) * 1.3 + 0.2),
                 (singular, singular + 1)):
        stats = (*fid.statistics(a), *fid.statistics(b))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its sqrtm(..., disp=False), a singular product
            theirs = calculate_frechet_distance(*stats)
        assert fid.frechet_distance(*stats) == theirs


def test_inception_features_are_pytorch_fids(tmp_path, monkeypatch):
    """FIDInception, loaded from a weights file, gives the features of pytorch_fid's
    InceptionV3 (pool3, resized, scaled to [-1, 1]) with those weights, on the same images.
    The weights are seeded He-initialised ones, the real ones being a download; pytorch_fid
    takes weights only through torch.hub's download, so the test hands it the file there."""
    import pytorch_fid.inception

    from tests.test_gpu import random_inception

    with pytest.raises(UserError, match="inception_path"):
        fid.FIDInception().load(str(tmp_path / "missing.pth"))
    weights = tmp_path / "w.pth"
    torch.save(random_inception().net.state_dict(), weights)
    monkeypatch.setattr(pytorch_fid.inception, "load_state_dict_from_url",
                        lambda url, progress=True: torch.load(weights, weights_only=True))
    theirs = pytorch_fid.inception.InceptionV3([3]).eval()
    ours = fid.FIDInception().load(weights)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = theirs(images.float() / 255)[0].flatten(1)
        got = ours(images)
    assert got.shape == (3, 2048) and expected.abs().max() > 1e-3  # features with information
    assert torch.equal(got, expected)


@pytest.mark.parametrize("stretch", [False, True])
def test_uint8_images_equal_a_png_round_trip(tmp_path, stretch):
    from torchvision.utils import save_image

    torch.manual_seed(0)
    x = torch.rand(3, 3, 8, 8) * 1.6 - 0.8
    ours = fid.to_uint8(x, stretch)
    for i in range(3):
        path = tmp_path / f"{i}.png"
        if stretch:  # the authors' protocol: save_image(..., normalize=True) per image
            save_image(x[i], path, normalize=True)
        else:
            save_image((x[i] + 1) / 2, path)
        png = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(ours[i], png)


def test_smoke_run_reports_both_fids_and_samples(smoke):
    from pathlib import Path

    record = smoke("task=cifar10_cgan")
    assert record.status == "ok", record.reason
    last = record.history[-1]
    assert record.metric == "fid/test" and record.final == last["fid/test"]
    assert last["fid/train"] > 0 and last["fid/real_train_vs_test"] >= 0
    run = Path(record.path).parent
    assert (run / "samples_epoch002.png").exists()
    grid = Image.open(run / "samples_epoch002.png")
    assert grid.size == (10 * 32 + 11 * 2, 10 * 32 + 11 * 2)  # ten classes x ten samples


def test_gan_optimisers_follow_the_code():
    from tests.helpers import compose

    cfg = compose("task=cifar10_cgan", "optimizer=adam", "optimizer.lr=1e-4")
    from tasks.runner.optimizers import kwargs_for

    assert kwargs_for(cfg.optimizer, "G")["betas"] == (0.0, 0.999)
    assert kwargs_for(cfg.optimizer, "D")["betas"] == (0.9, 0.999)
