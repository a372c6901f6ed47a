"""LR schedules against the trajectories docs/experiments.md describes, at chosen iterations."""

from __future__ import annotations

import math

import pytest

from tasks.experiments.base import Schedule
from tasks.runner.schedules import lr_factor
from tasks.runner.validation import validate
from tests.helpers import compose


def cfg_schedule(task: str) -> Schedule:
    return validate(compose(f"task={task}")).task.schedule


def test_cifar_warmup_then_milestones():
    spec = cfg_schedule("cifar10_vgg11")
    spe, epochs = 391, 199
    f = lambda it, epoch: lr_factor(spec, it=it, epoch=epoch, spe=spe, epochs=epochs)  # noqa: E731
    # Before the k-th step of epochs 1-5: k / 1955 (k = it + 1); reaches 1 at the last step.
    assert f(0, 0) == pytest.approx(1 / 1955)
    assert f(390, 0) == pytest.approx(391 / 1955)
    assert f(1954, 4) == pytest.approx(1.0)
    # Epochs 6-99 (0-based 5-98) at the base lr; 100-149 x0.2; 150-179 x0.04; 180-199 x0.008.
    assert f(1955, 5) == 1.0
    assert f(98 * spe, 98) == 1.0
    assert f(99 * spe, 99) == pytest.approx(0.2)
    assert f(149 * spe, 149) == pytest.approx(0.04)
    assert f(179 * spe, 179) == pytest.approx(0.008)
    assert f(198 * spe, 198) == pytest.approx(0.008)


def test_mnist_exponential_decay():
    spec = cfg_schedule("mnist_mlp")
    for e in (0, 1, 10, 49):
        assert lr_factor(spec, it=e * 240, epoch=e, spe=240, epochs=50) == pytest.approx(0.9**e)


def test_imagenet_warmup_then_cosine():
    spec = cfg_schedule("imagenet_resnet50")
    spe, epochs = 3203, 90
    f = lambda it: lr_factor(spec, it=it, epoch=it // spe, spe=spe, epochs=epochs)  # noqa: E731
    assert f(0) == 0.0  # the very first step uses lr 0
    assert f(1601) == pytest.approx(1601 / 3203)
    total = 288_270
    for t in (3203, 100_000, 288_269):
        assert f(t) == pytest.approx(0.5 * (1 + math.cos(math.pi * t / total)))


def test_translation_triangle():
    spec = cfg_schedule("multi30k_transformer")
    f = lambda k: lr_factor(spec, it=k * 227, epoch=k, spe=227, epochs=100)  # noqa: E731
    assert f(0) == pytest.approx(0.02)
    assert f(49) == pytest.approx(1.0)
    assert f(50) == pytest.approx(0.98)
    assert f(99) == 0.0


def test_step_decays():
    gan = cfg_schedule("cifar10_cgan")
    assert lr_factor(gan, it=0, epoch=99, spe=196, epochs=121) == 1.0
    assert lr_factor(gan, it=0, epoch=100, spe=196, epochs=121) == pytest.approx(0.1)
    lm = cfg_schedule("wikitext2_transformer")
    assert lr_factor(lm, it=0, epoch=9, spe=2984, epochs=20) == 1.0  # epoch 10 (1-based)
    assert lr_factor(lm, it=0, epoch=10, spe=2984, epochs=20) == pytest.approx(0.1)


def test_ppo_linear_decay_per_update():
    spec = cfg_schedule("pong_ppo")
    assert lr_factor(spec, it=0, epoch=0, spe=1, epochs=4882) == 1.0
    assert lr_factor(spec, it=2441, epoch=2441, spe=1, epochs=4882) == pytest.approx(0.5)
    assert lr_factor(spec, it=4881, epoch=4881, spe=1, epochs=4882) == pytest.approx(1 / 4882)
