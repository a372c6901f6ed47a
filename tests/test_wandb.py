"""W&B gets what the README says it gets (config, metrics, sample images, the final record), read
back from an offline run's folder: no network, no API key."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from tests.helpers import first, train_cli


@pytest.mark.slow
def test_an_offline_wandb_run_holds_the_config_metrics_samples_and_record(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", WANDB_DIR=str(tmp_path / "wandb-dir"), WANDB_SILENT="true",
               HOME=str(tmp_path))  # no ~/.netrc: no credentials of any kind
    proc = train_cli("task=cifar10_cgan", "scale=smoke", "task.epochs=1", "logger=wandb",
                     "progress=false", f"out_dir={tmp_path / 'out'}",
                     f"data_dir={tmp_path / 'data'}", env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record_path = first(tmp_path / "out", "record.json")
    record = json.loads(record_path.read_text())
    run_dir = record_path.parent
    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, list((run_dir / "wandb").iterdir())
    files = offline[0] / "files"

    # The sample grid the cGAN saved after its evaluation, as a W&B image of key "samples".
    images = sorted((files / "media" / "images").glob("samples_*.png"))
    assert len(images) == 1
    ours = Image.open(run_dir / "samples_epoch001.png")
    assert Image.open(images[0]).size == ours.size
    # An offline run keeps what it logged in its .wandb file (summary and config included).
    data = next(offline[0].glob("*.wandb")).read_bytes()
    assert f"media/images/{images[0].name}".encode() in data  # logged, not only on disk

    # The final record (in the summary) and the config (with the identity's fingerprint).
    assert b"nero_record" in data
    assert data.count(record["identity"]["fingerprint"].encode()) >= 2
