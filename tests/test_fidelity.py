"""Fidelity on real data, at the paper's settings: the first epoch of Fig. 3 (left).

The authors' result pickles give the mean minibatch training accuracy of each epoch for three
seeds (docs/experiments.md, E1). Epoch 1 at seed 0 takes about 7 s per sigma on two CPU cores.

Tolerances, from the seed-to-seed spread and from what a drift does (both measured here):

* sigma = 1: the authors' seeds give 0.941, 0.942, 0.942 (mean 0.9417, range 0.001); ours
  0.9426, 0.9420, 0.9423. Tolerance 0.003 (three times their range). Each drift we tried moves
  epoch 1 by at least 0.0056: Adam with beta1 = 0 (0.9331), weight norm without centring
  (0.9331), unnormalised pixels (0.9361), a plain ReLU instead of sqrt(2) ReLU (0.9338).
* sigma = 100: the authors' 0.554, 0.541, 0.550 (mean 0.5483, population std 0.0054); ours
  0.5661, 0.5531, 0.5599. Tolerance 0.03 (five and a half of their standard deviations; our
  seed 0 sits 0.018 above their mean). An initialisation drift shows here: raw weights from
  U(-sigma, sigma) instead of N(0, sigma^2) give 0.6698.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.experiments.data.prepare import Mnist
from tests.helpers import REPO, run_cell

DATA = Path(os.environ.get("NERO_DATA", REPO / "data"))
AUTHORS_EPOCH1 = {1.0: (0.941, 0.942, 0.942), 100.0: (0.554, 0.541, 0.550)}
TOLERANCE = {1.0: 0.003, 100.0: 0.03}

pytestmark = pytest.mark.skipif(
    not Mnist().check(DATA).ok,
    reason=f"real MNIST not in {DATA}/MNIST/raw (make mnist puts it there)")


@pytest.mark.slow
@pytest.mark.parametrize("sigma", [1.0, 100.0])
def test_fig3_left_epoch_one_matches_the_authors(tmp_path, sigma):
    record = run_cell(tmp_path, "+experiment=fig3_cwn", f"task.sigma={sigma}", "task.epochs=1",
                      f"data_dir={DATA}")
    assert record.config["task"]["batch_size"] == 250 and record.steps == 240
    ours = record.history[0]["train/acc"]
    theirs = sum(AUTHORS_EPOCH1[sigma]) / 3
    assert abs(ours - theirs) <= TOLERANCE[sigma], (ours, theirs)
    # The first ten minibatches: about 0.7 for sigma = 1 and chance (0.1) for sigma = 100.
    first = sum(record.series["acc"][:10]) / 10
    assert (0.65 < first < 0.80) if sigma == 1.0 else (first < 0.2), first
