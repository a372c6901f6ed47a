"""The suite's fixtures and collection hook; the helpers tests import are in ``tests/helpers``."""

from __future__ import annotations

import os

import pytest
import torch

from tests.helpers import HAS_CUDA, run_cell

# Tests never talk to W&B (an API key makes wandb retry the network forever here).
os.environ.pop("WANDB_API_KEY", None)
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("WANDB_SILENT", "true")

# Under pytest-xdist (make test), the cores are shared out among the worker processes as joblib
# does for a local sweep's cells: two workers with torch's default of a thread per core each
# would oversubscribe the machine. Subprocesses a test starts inherit it; a test that sets its
# own thread count still does.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, _THREADS)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The tests marked slow first (in their order), so that under pytest-xdist no worker is
    # left with a long one while the others have run out of tests.
    items.sort(key=lambda item: "slow" not in item.keywords)
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (make gpu-check runs these on a GPU)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def smoke(tmp_path):
    """Run one smoke-scale cell in this process: smoke("task=mnist_mlp", "optimizer=sgd")."""

    def _run(*overrides: str) -> dict:
        return run_cell(tmp_path, "scale=smoke", *overrides)

    return _run
