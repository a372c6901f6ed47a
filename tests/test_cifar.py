"""CIFAR-10 (E3): architectures, Nero's sigma_b for them, data in the real pickle format, smoke runs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nero import Nero
from tasks.experiments.data.cifar import augment, normalise
from tasks.experiments.models.cifar import VGG11, ResNet18
from tests.helpers import count_params, run_cell


def test_architectures_match_the_paper():
    assert count_params(VGG11()) == (14, 28_141_258)
    assert count_params(ResNet18()) == (62, 11_173_962)
    out = ResNet18()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    # No ReLU after the stem's BN, no max-pool (gap 12): the stem is conv + BN only.
    assert [type(m).__name__ for m in ResNet18().stem] == ["Conv2d", "BatchNorm2d"]


def test_vgg_init_is_kaiming_fan_out():
    torch.manual_seed(0)
    conv = VGG11().features[-3]  # 512 -> 512
    assert conv.weight.std().item() == pytest.approx((2 / (512 * 9)) ** 0.5, rel=0.02)


def test_nero_sigma_b_for_the_cifar_models():
    torch.manual_seed(0)
    vgg = VGG11()
    opt = Nero(vgg.parameters())
    fc1, fc2, fc3 = (m for m in vgg.classifier if isinstance(m, torch.nn.Linear))
    assert opt.state[fc1.bias]["scale"] == pytest.approx(0.0221, rel=0.05)
    assert opt.state[fc2.bias]["scale"] == pytest.approx(0.0078, rel=0.05)
    assert opt.state[fc3.bias]["scale"] == pytest.approx(0.0078, rel=0.6)  # only 10 biases
    net = ResNet18()
    opt = Nero(net.parameters())
    bn = net.stem[1]
    assert opt.state[bn.weight]["scale"] == 1.0
    assert opt.state[bn.bias]["scale"] == 0.01
    assert opt.state[net.fc.bias]["scale"] == pytest.approx(0.0221, rel=0.6)
    for p in net.parameters():
        if p.dim() > 1:
            assert opt.state[p]["scale"] == 1.0


def test_augment_crop_and_flip_are_exact():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    out = augment(x, torch.Generator().manual_seed(3), degrees=0.0)
    g = torch.Generator().manual_seed(3)
    offsets = torch.randint(0, 9, (6, 2), generator=g) - 4
    flips = torch.rand(6, generator=g) < 0.5
    padded = F.pad(x.float(), (4, 4, 4, 4))
    for i in range(6):
        ox, oy = int(offsets[i, 0]), int(offsets[i, 1])
        crop = padded[i, :, 4 + oy:36 + oy, 4 + ox:36 + ox]
        if flips[i]:
            crop = crop.flip(-1)
        assert torch.equal(out[i], normalise(crop.unsqueeze(0).to(torch.uint8))[0])


def test_augment_rotates_by_up_to_15_degrees():
    x = torch.zeros(200, 3, 32, 32, dtype=torch.uint8)
    x[:, :, :, 15:17] = 255  # a vertical bar through the centre
    out = augment(x, torch.Generator().manual_seed(0), pad=0)
    bright = (out[:, 0] > 0).float()
    # The bar stays a bar through the centre, tilted: its top row moves at most tan(15) * 16 px.
    cols = torch.arange(32).float()
    top = (bright[:, 0] * cols).sum(1) / bright[:, 0].sum(1).clamp_min(1)
    shift = (top - 15.5).abs()
    assert shift.max() <= 16 * np.tan(np.radians(15)) + 1.5
    assert shift.max() > 2  # some images really were rotated


def write_cifar(root, n_train=100, n_test=50, seed=0, monkeypatch=None):
    """The layout and pickle structure of the python version of CIFAR-10 (str keys, protocol 2).
    With ``monkeypatch``, the loader's MD5 table becomes these files' own checksums: they are
    verified as the real files are, against a table that fits them."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(n):
        labels = rng.integers(0, 10, n)
        colours = (labels[:, None] * 25 + 10).repeat(3 * 32 * 32, axis=1)
        data = np.clip(colours + rng.integers(-10, 10, (n, 3 * 32 * 32)), 0, 255)
        return {"data": data.astype(np.uint8), "labels": labels.tolist()}

    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(n_train // 5), f, protocol=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch(n_test), f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f, protocol=2)
    if monkeypatch is not None:
        from tasks.experiments.data import prepare

        monkeypatch.setattr(prepare.Cifar10, "FILES", {
            n: prepare.md5(folder / n) for n in prepare.Cifar10.FILES})


@pytest.mark.parametrize("pipeline", ["device", "torchvision"])
def test_real_pickle_format_without_download(tmp_path, pipeline, monkeypatch):
    write_cifar(tmp_path / "data", monkeypatch=monkeypatch)
    record = run_cell(tmp_path, "task=cifar10_resnet18", "task.width=0.125", "task.epochs=3",
                      "task.batch_size=20", "download=false", "task.num_workers=0",
                      "task.schedule.warmup_epochs=1", f"task.pipeline={pipeline}",
                      "task.eval_train=true", "optimizer.lr=0.05")
    assert record.status == "ok", record.reason
    losses = [e["train/loss"] for e in record.history]
    assert losses[-1] < losses[0]
    assert record.metric == "top1_error" and 0 <= record.final <= 100
    # The authors' eval-mode accuracy on augmented training images: 100 images, so a multiple of 1%.
    train_eval = [e["train_eval/acc"] for e in record.history]
    assert all(0 <= a <= 100 and a == round(a) for a in train_eval)
    assert record.history[-1]["train_eval/loss"] < record.history[0]["train_eval/loss"]


def test_missing_cifar_is_a_clear_error(tmp_path):
    from tasks.errors import UserError

    with pytest.raises(UserError, match="CIFAR-10 not found"):
        run_cell(tmp_path, "task=cifar10_vgg11", "download=false")


@pytest.mark.parametrize("task", ["cifar10_vgg11", "cifar10_resnet18"])
def test_smoke_trains(smoke, task):
    record = smoke(f"task={task}")
    assert record.status == "ok"
    losses = [e["train/loss"] for e in record.history]
    assert losses[-1] < 0.8 * losses[0]


def test_the_md5_table_is_torchvisions():
    from torchvision.datasets import CIFAR10

    from tasks.experiments.data.prepare import Cifar10

    theirs = dict(CIFAR10.train_list + CIFAR10.test_list)
    theirs[CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
    assert theirs == Cifar10.FILES


def test_pickles_are_verified_before_any_is_loaded(tmp_path, monkeypatch):
    """A crafted batches.meta (it runs a command when unpickled) never gets unpickled: the
    files fail the MD5 table, here the real one, and the run stops in one line."""
    from tasks.errors import UserError

    write_cifar(tmp_path / "data")
    marker = tmp_path / "ran"
    evil = (b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    (tmp_path / "data" / "cifar-10-batches-py" / "batches.meta").write_bytes(evil)
    with pytest.raises(UserError, match="fail.* torchvision's MD5 check of CIFAR-10"):
        run_cell(tmp_path, "task=cifar10_vgg11", "download=false", "task.synthetic=false")
    assert not marker.exists()
