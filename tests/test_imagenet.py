"""ImageNet ResNet-50 (E8): architecture, data sharding, grouped BN, DDP with gloo on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from tasks.errors import UserError
from tasks.experiments.data.imagenet import SeededImageFolder, ShardedBatchSampler, write_synthetic
from tasks.experiments.imagenet import GroupedBN, build
from tests.helpers import REPO, compose

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def test_resnet50_matches_e8():
    params = list(build("resnet50", 1000).parameters())
    assert len(params) == 161 and sum(p.numel() for p in params) == 25_557_032


def test_sharded_batches_cover_each_global_batch():
    samplers = [ShardedBatchSampler(50, 8, seed=3, shuffle=True, rank=r, world=2) for r in range(2)]
    single = ShardedBatchSampler(50, 8, seed=3, shuffle=True, rank=0, world=1)
    for s in (*samplers, single):
        s.set_epoch(2, start=1)
    for a, b, whole in zip(*samplers, single):
        assert a + b == whole  # rank 0 then rank 1: the same global batch
    assert len(single) == 6  # batches 1..6 of 7 (the last one has 2 images)
    with pytest.raises(UserError, match="does not split evenly"):
        ShardedBatchSampler(50, 9, 0, True, 0, 2)


def test_last_batch_shares_differ_by_at_most_one():
    # 50 images in global batches of 12 over 4 processes: the last batch holds 2 images.
    with pytest.raises(UserError, match="without an image"):
        ShardedBatchSampler(50, 12, 0, True, 0, 4)
    val = [ShardedBatchSampler(50, 12, 0, False, r, 4, train=False) for r in range(4)]
    single = list(ShardedBatchSampler(50, 12, 0, False, 0, 1, train=False))
    shares = [list(s) for s in val]
    assert [len(s) for s in shares] == [4, 5, 4, 5]  # evaluation skips the empty shares
    assert [len(b) for b in shares[0]] == [3, 3, 3, 3]
    assert shares[0][-1] + shares[1][-2] + shares[2][-1] + shares[3][-2] == single[-2]
    assert shares[1][-1] + shares[3][-1] == single[-1]
    train = [ShardedBatchSampler(54, 12, 0, True, r, 4) for r in range(4)]  # last batch: 6
    assert [len(list(s)[-1]) for s in train] == [1, 2, 1, 2]
    assert train[0].global_size(4) == 6 and train[0].global_size(0) == 12


def test_augmentation_depends_only_on_the_sample(tmp_path):
    write_synthetic(tmp_path, 4, 2, classes=2, size=40, seed=0)
    ds = SeededImageFolder(tmp_path / "train", True, 32, 36)
    a, label = ds[(1, 1234)]
    torch.rand(10)  # other draws in between must not matter
    b, _ = ds[(1, 1234)]
    assert a.dtype == torch.uint8 and a.shape == (3, 32, 32) and torch.equal(a, b)
    assert not torch.equal(a, ds[(1, 99)][0])
    val = SeededImageFolder(tmp_path / "val", False, 32, 36)
    assert val[(0, 0)][0].shape == (3, 32, 32)
    with pytest.raises(UserError, match="ImageNet folder"):
        SeededImageFolder(tmp_path / "nope", True, 32, 36)


def test_grouped_bn_statistics_per_group_and_running_stats_from_the_first():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    twin = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    twin.load_state_dict(net.state_dict())
    x = torch.randn(8, 3, 5, 5) * 3 + 1
    out = GroupedBN(net, 4).train()(x)
    expected = torch.cat([twin(x[:4]), nn.Sequential(*twin)(x[4:])])
    assert torch.allclose(out[:4], expected[:4], atol=1e-6)
    assert torch.allclose(out[4:], expected[4:], atol=1e-6)  # normalised by its own group
    reference = nn.BatchNorm2d(4)
    reference.load_state_dict(nn.BatchNorm2d(4).state_dict())
    with torch.no_grad():
        fresh = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
        fresh[0].load_state_dict(net[0].state_dict())
        fresh.train()(x[:4])
    assert torch.allclose(net[1].running_mean, fresh[1].running_mean)


def test_fig9_configurations():
    cells = compose("+experiment=fig9_imagenet").hydra.sweeper.cells
    configs = {tuple(c): compose("task=imagenet_resnet50", *c) for c in cells}
    assert len(configs) == 5
    sgd = configs[("optimizer=sgd",)]
    assert (sgd.optimizer.momentum, sgd.optimizer.weight_decay, sgd.optimizer.lr) == (0.9, 1e-4, 0.1)
    no_wd = configs[("optimizer=sgd", "optimizer.weight_decay=0.0")].optimizer
    assert (no_wd.momentum, no_wd.weight_decay) == (0.9, 0.0)
    # Out of the box (gap 30): the lr of the authors' script, and the one of their README.
    for lr in (0.1, 0.01):
        ootb = configs[("optimizer=nero", f"optimizer.lr={lr}")]
        assert ootb.optimizer.lr == lr and ootb.task.bn_gain_penalty == 0
        assert (ootb.optimizer.beta, ootb.optimizer.bias_scale) == (0.999, None)
    tuned = configs[("optimizer=nero_tuned", "task.bn_gain_penalty=1.0e-4")]
    assert tuned.optimizer.lr == 0.02 and tuned.optimizer.bias_scale == 1.0
    assert tuned.task.bn_gain_penalty == 1e-4


def test_smoke_run(smoke):
    record = smoke("task=imagenet_resnet50")
    assert record.status == "ok"
    assert set(record.history[-1]) >= {"top1_error", "top5_error", "val_loss"}


@pytest.mark.slow
def test_ddp_ranks_agree_and_nero_needs_no_communication(tmp_path):
    out = tmp_path / "ddp.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*TORCHRUN, str(REPO / "tests" / "ddp_worker.py"), str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result == {"world": 2, "backend": "gloo", "params_equal": True, "nero_state_equal": True}


@pytest.mark.slow
def test_ddp_record_equals_single_process(tmp_path):
    args = ["task=imagenet_resnet50", "scale=smoke", "logger=none", "progress=false",
            "task.n_train=32", "task.batch_size=8", "task.bn_group=4", "device=cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    single = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *args,
                             f"out_dir={tmp_path / 'single'}"], capture_output=True, text=True,
                            timeout=300, cwd=REPO, env=env)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([*TORCHRUN, str(REPO / "scripts" / "train.py"), *args,
                          f"out_dir={tmp_path / 'ddp'}"], capture_output=True, text=True,
                         timeout=300, cwd=REPO, env=env)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    path = "adhoc/smoke/imagenet_resnet50/nero/lr=0.01/seed=0/record.json"
    a = json.loads((tmp_path / "single" / path).read_text())
    b = json.loads((tmp_path / "ddp" / path).read_text())
    assert b["device"].startswith("2 x cpu")
    for ea, eb in zip(a["history"], b["history"], strict=True):
        for key in ("train/loss", "train/top1_acc", "top1_error", "val_loss"):
            assert eb[key] == pytest.approx(ea[key], rel=1e-4, abs=1e-5), key
