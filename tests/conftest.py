"""The suite's fixtures and collection hook; the helpers tests import are in ``tests/helpers``."""

from __future__ import annotations

import os

import pytest

from tests.helpers import HAS_CUDA, run_cell

# Tests never talk to W&B (an API key makes wandb retry the network forever here).
os.environ.pop("WANDB_API_KEY", None)
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("WANDB_SILENT", "true")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
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
