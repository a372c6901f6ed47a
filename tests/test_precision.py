"""precision=fp32 means IEEE float32 on every device: the flags each setting sets, read inside a
run and in its record (the GPU's own numerics are checked by the GPU tests)."""

from __future__ import annotations

import pytest
import torch

from tasks.experiments.mnist import MnistMLP
from tests.helpers import compose

# What each precision must leave in force while the task trains (a CPU run: deterministic).
EXPECTED = {
    "fp32": {"matmul_tf32": False, "cudnn_tf32": False, "float32_matmul_precision": "highest"},
    "bf16": {"matmul_tf32": False, "cudnn_tf32": False, "float32_matmul_precision": "highest"},
    "tf32": {"matmul_tf32": True, "cudnn_tf32": True, "float32_matmul_precision": "high"},
}
CPU_RUN = {"cudnn_benchmark": False, "cudnn_deterministic": True, "deterministic_algorithms": False}


def _flags_now() -> dict:
    return {"matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_tf32": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


@pytest.fixture
def restore_flags():
    saved = _flags_now()
    yield
    torch.set_float32_matmul_precision(saved["float32_matmul_precision"])
    torch.backends.cuda.matmul.allow_tf32 = saved["matmul_tf32"]
    torch.backends.cudnn.allow_tf32 = saved["cudnn_tf32"]
    torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
    torch.use_deterministic_algorithms(saved["deterministic_algorithms"])


@pytest.mark.parametrize("precision", ["fp32", "bf16", "tf32"])
def test_each_precision_sets_its_backend_flags_and_records_them(smoke, monkeypatch, restore_flags,
                                                                precision):
    # Start from the opposite of what the run must set, as an earlier cell of the process (or
    # torch's own default: TF32 convolutions) may have left it.
    opposite = not EXPECTED[precision]["matmul_tf32"]
    torch.set_float32_matmul_precision("high" if opposite else "highest")
    torch.backends.cuda.matmul.allow_tf32 = opposite
    torch.backends.cudnn.allow_tf32 = opposite
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.deterministic = False
    seen = []
    train_step = MnistMLP.train_step

    def spy(self, batch, step):
        seen.append(_flags_now())
        return train_step(self, batch, step)

    monkeypatch.setattr(MnistMLP, "train_step", spy)
    record = smoke("task=mnist_mlp", f"precision={precision}", "device=cpu", "task.epochs=1")
    assert record.status == "ok", record.reason
    assert seen and all(s == {**EXPECTED[precision], **CPU_RUN} for s in seen)
    assert record.backend == {**EXPECTED[precision], **CPU_RUN}


def test_tf32_is_part_of_the_identity():
    from tasks.runner import identity

    fp32, tf32 = compose("precision=fp32"), compose("precision=tf32")
    assert identity.fingerprint(fp32) != identity.fingerprint(tf32)
    assert identity.of(tf32).variant == {"precision": "tf32"}
    assert identity.of(fp32).variant == {}
