"""Per-layer diagnostics (``diagnostics=true``): the numbers against a float64 computation by hand,
Nero's invariants as they report them, the record key and the figure when on, nothing when off,
the same identity either way, and a killed run resumed mid-epoch giving the same numbers."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nero import Nero
from tasks.runner import checkpoints, loop, validation
from tasks.runner.diagnostics import ANGLE_UNIT, STATS, Diagnostics
from tasks.runner.folders import FIGURE
from tests.helpers import (
    assert_resumed_as_uninterrupted,
    compose,
    killed_and_resumed,
    run_cell,
    strip_times,
)

EPS = float(torch.finfo(torch.float32).eps)
SMOKE = ("scale=smoke", "task=mnist_mlp", "optimizer=nero", "task.epochs=2", "checkpoint.keep=true")
PNG = b"\x89PNG\r\n\x1a\n"


def expected(start: np.ndarray, end: np.ndarray) -> dict[str, float | None]:
    """The stats by hand in float64: rows are neurons (a 1-D tensor is one row), the angle is
    arccos of the cosine, in degrees; a neuron that is zero at either end has no angle."""
    a = start.reshape(len(start), -1) if start.ndim > 1 else start.reshape(1, -1)
    b = end.reshape(len(end), -1) if end.ndim > 1 else end.reshape(1, -1)
    norm, mean = np.linalg.norm(b, axis=1), b.mean(axis=1)
    na = np.linalg.norm(a, axis=1)
    ok = (norm > 0) & (na > 0)
    cos = (a[ok] * b[ok]).sum(1) / (na[ok] * norm[ok])
    angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    return {"norm_mean": norm.mean(), "norm_std": norm.std(), "norm_min": norm.min(),
            "norm_max": norm.max(), "mean_mean": mean.mean(), "mean_std": mean.std(),
            "mean_min": mean.min(), "mean_max": mean.max(),
            "angle_mean": angle.mean() if ok.any() else None,
            "angle_max": angle.max() if ok.any() else None}


def assert_close(got: dict, want: dict, start: np.ndarray, end: np.ndarray,
                 stats: tuple[str, ...] = STATS) -> None:
    """float32 sums over a neuron's d entries round by at most ~d eps of their size; the angle,
    from unit vectors with entries rounded by eps, by a few sqrt(d) eps radians (arccos of the
    float64 cosine is exact to far below that)."""
    d = end[0].size if end.ndim > 1 else end.size
    size = float(max(np.abs(start).max(), np.abs(end).max(), np.linalg.norm(end.reshape(-1))))
    bound = 4 * d * EPS * size
    for stat in stats:
        if want[stat] is None:
            assert got[stat] is None, stat
        elif stat.startswith("angle"):
            assert got[stat] == pytest.approx(want[stat], abs=math.degrees(8 * d * EPS)), stat
        else:
            assert got[stat] == pytest.approx(want[stat], abs=bound), stat


def test_the_numbers_of_an_epoch_agree_with_a_float64_computation_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = Nero(model.parameters(), lr=0.05)
    diag = Diagnostics({"model": model})
    diag.begin_epoch()
    start = {k: v.detach().double().numpy().copy() for k, v in diag.params.items()}
    for _ in range(5):  # an "epoch" of five Nero steps
        loss = model(torch.randn(16, 20)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    logged = diag.end_epoch(1)
    record = diag.as_record()
    assert record["epochs"] == [1] and record["angle_unit"] == ANGLE_UNIT == "degrees"
    assert list(record["layers"]) == ["model.0.weight", "model.0.bias", "model.2.weight",
                                      "model.2.bias"]
    assert [record["layers"][k]["neurons"] for k in record["layers"]] == [8, 1, 3, 1]
    for name, p in diag.params.items():
        end = p.detach().double().numpy()
        got = {stat: record["layers"][name][stat][0] for stat in STATS}
        assert_close(got, expected(start[name], end), start[name], end)
        assert got["angle_mean"] > 0  # they did turn
        assert logged[f"diag/{name}/angle_mean"] == got["angle_mean"]


def test_a_zero_neuron_has_no_angle_and_a_tensor_of_zeros_none():
    layer = nn.Linear(4, 3, bias=False)
    diag = Diagnostics({"model": layer})
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]]))
        diag.begin_epoch()
        layer.weight.copy_(torch.tensor([[1.0, 1, 0, 0], [0, 2, 0, 0], [-1, -1, 0, 0]]))
    diag.end_epoch(1)
    s = diag.as_record()["layers"]["model.weight"]
    assert s["angle_mean"] == [pytest.approx((45 + 180) / 2)]
    assert s["angle_max"] == [pytest.approx(180)]
    with torch.no_grad():
        diag.begin_epoch()
        layer.weight.zero_()
    diag.end_epoch(2)
    assert s["angle_mean"][1] is None and s["angle_max"][1] is None and s["norm_max"][1] == 0


class FakeMirror:
    """Stands for WandbMirror: keeps what the run logs."""

    logged: list[tuple[dict, int]] = []

    def __init__(self, *args, run_id=None, **kwargs) -> None:
        self.run_id = "fake"

    def log(self, metrics, step: int) -> None:
        self.logged.append((dict(metrics), step))

    def log_image(self, key: str, path) -> None:
        pass

    def finish(self, record, exit_code: int = 0) -> None:
        pass


@pytest.fixture(scope="module")
def on_and_off(tmp_path_factory):
    """One smoke run with diagnostics (its W&B mirror a fake), one without; each keeps its
    checkpoint of epoch 1."""
    on, off = tmp_path_factory.mktemp("on"), tmp_path_factory.mktemp("off")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "WandbMirror", FakeMirror)
        with_diagnostics = loop.run(compose(*SMOKE, "diagnostics=true", "logger=wandb",
                                            "progress=false", f"out_dir={on}",
                                            f"data_dir={on / 'data'}"))
    return (with_diagnostics, run_cell(off, *SMOKE)), off


def test_with_nero_the_record_shows_zero_mean_unit_norm_neurons_and_a_figure(on_and_off):
    (record, _), _ = on_and_off
    folder = Path(record.path).parent
    diag = json.loads((folder / "record.json").read_text())["diagnostics"]
    assert diag["epochs"] == [1, 2]
    layers = diag["layers"]
    assert len(layers) == 10  # 5 Linear layers: weight and bias each
    for name, s in layers.items():
        assert set(s) == {"neurons", *STATS}
        for stat in STATS:
            assert len(s[stat]) == 2
            assert all(isinstance(v, float) and math.isfinite(v) for v in s[stat]), (name, stat)
        assert all(a > 0 for a in s["angle_mean"]), name
        if name.endswith("weight"):  # Nero's constraints, within float32 rounding of d entries
            d = 784 if name == "model.layers.0.weight" else 64
            assert max(abs(s["norm_min"][e] - 1) for e in (0, 1)) <= d * EPS, name
            assert max(abs(s["norm_max"][e] - 1) for e in (0, 1)) <= d * EPS, name
            assert max(abs(s["mean_min"][e]) for e in (0, 1)) <= d * EPS, name
            assert max(abs(s["mean_max"][e]) for e in (0, 1)) <= d * EPS, name
    # Epoch 1's norms and means, by hand from the weights the checkpoint of epoch 1 holds.
    payload = checkpoints.load(folder / loop.CHECKPOINT, record.fingerprint)
    assert payload["diagnostics"]["start"] is None  # nothing mid-epoch to keep
    for key, w in payload["modules"]["model"].items():
        end = w.double().numpy()
        got = {stat: layers[f"model.{key}"][stat][0] for stat in STATS}
        assert_close(got, expected(end, end), end, end, stats=STATS[:8])  # no angle: no start
    assert (folder / FIGURE).read_bytes().startswith(PNG)
    # W&B got each epoch's values at the epoch's last step, under diag/<layer>/<stat>.
    diag_logs = [(m, step) for m, step in FakeMirror.logged if any(k.startswith("diag/") for k in m)]
    assert [step for _, step in diag_logs] == [e["step"] for e in record.history]
    for epoch, (metrics, _) in enumerate(diag_logs):
        assert metrics == {f"diag/{name}/{stat}": s[stat][epoch]
                           for name, s in layers.items() for stat in STATS}


def test_without_diagnostics_nothing_is_computed_kept_or_drawn(on_and_off):
    (on, off), _ = on_and_off
    folder = Path(off.path).parent
    assert off.diagnostics is None and off.to_json()["diagnostics"] is None
    assert set(on.to_json()) == set(off.to_json())
    assert not (folder / FIGURE).exists()
    assert "diagnostics" not in checkpoints.load(folder / loop.CHECKPOINT, off.fingerprint)
    # The same run either way: the same folder under its out_dir, fingerprint and training.
    assert on.fingerprint == off.fingerprint and on.identity == off.identity
    assert strip_times(on.history) == strip_times(off.history)
    assert (on.final, on.best, on.steps) == (off.final, off.best, off.steps)


def test_an_ok_record_without_diagnostics_is_skipped_and_says_how_to_get_them(on_and_off,
                                                                             capsys):
    (_, off), out = on_and_off
    again = run_cell(out, *SMOKE, "diagnostics=true")
    assert again.skipped and again.diagnostics is None
    printed = capsys.readouterr().out
    assert re.search(r"skipping .*: its record already says ok but has no diagnostics "
                     r"\(force=true reruns it with them\)", printed), printed


def test_resumed_from_a_checkpoint_without_diagnostics_they_start_at_the_next_epoch(
        on_and_off, tmp_path):
    (on, off), out = on_and_off
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    folder = copy / Path(off.path).parent.relative_to(out)
    (folder / "record.json").unlink()  # left: the checkpoint of epoch 1, written without them
    resumed = run_cell(copy, *SMOKE, "diagnostics=true")
    assert resumed.notes == ["diagnostics from epoch 2 on: the checkpoint resumed was "
                                "written without them"]
    diag = resumed.diagnostics
    assert diag["epochs"] == [2]
    for name, s in diag["layers"].items():  # epoch 2 as the uninterrupted run saw it
        assert {k: v[0] for k, v in s.items() if k != "neurons"} == {
            k: v[1] for k, v in on.diagnostics["layers"][name].items() if k != "neurons"}


def test_diagnostics_is_not_part_of_the_identity():
    base = ("task=mnist_mlp", "optimizer=nero", "scale=smoke", "logger=none")
    on = validation.validate(compose(*base, "diagnostics=true"))
    off = validation.validate(compose(*base, "diagnostics=false"))
    assert on.run.diagnostics is True and off.run.diagnostics is False
    assert on.identity == off.identity
    assert on.identity.fingerprint == off.identity.fingerprint
    assert on.identity.directory("out") == off.identity.directory("out")


@pytest.mark.slow
def test_a_run_killed_mid_epoch_and_resumed_gives_the_same_diagnostics(tmp_path):
    # Checkpoints every 7 steps and none at epoch ends (120 steps each): every one is mid-epoch.
    args = ["task=mnist_mlp", "optimizer=nero", "scale=smoke", "logger=none", "task.epochs=3",
            "task.n_train=6000", "checkpoint.every_steps=7", "checkpoint.every_epochs=null",
            "diagnostics=true"]
    a, b, stderr = killed_and_resumed(tmp_path, args)
    assert_resumed_as_uninterrupted(a, b, stderr)
    item = int(re.search(r"resuming .* from epoch \d+, item (\d+)", stderr).group(1))
    assert item > 0  # mid-epoch: the epoch-start weights came from the checkpoint
    assert a.diagnostics["epochs"] == [1, 2, 3]
    assert a.diagnostics == b.diagnostics
