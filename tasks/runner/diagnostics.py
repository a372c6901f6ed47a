"""Per-layer training diagnostics (``diagnostics=true``): what Nero constrains and what its lr sets.

For every parameter tensor of every module role, at the end of every epoch:

- ``norm_*``: the per-neuron L2 norm (Nero holds it at 1), summarised over the tensor's neurons
  as mean, std, min and max;
- ``mean_*``: the per-neuron mean of the entries (Nero holds it at 0), the same summary;
- ``angle_mean`` / ``angle_max``: the angle in **degrees** each neuron turned through over the
  epoch, between its weights at the epoch's start and at its end (what Nero's lr sets).

A neuron is Nero's (:func:`nero.neuron_norm`, :func:`nero.neuron_mean`): the slice along dim 0
of a tensor with two or more dims. A 1-D (or 0-D) tensor, a bias or a gain, which Nero never
projects, is reported as one vector (``neurons`` is 1, its std 0).

The angle is ``arccos`` of the cosine between the two unit vectors ``u`` and ``v``, computed as
``2 atan2(|u - v|, |u + v|)``: the same angle, with no cosine to clamp, and accurate where
``arccos`` of a float32 cosine near 1 is not (it cannot resolve less than ~0.03 degrees, and
Nero turns a neuron by about lr radians a step). A neuron that is zero at either end has no
angle: it is left out of the summary, which is None where no neuron of the tensor has one.

The cost is on the epoch boundary only: a copy of the weights at the start of each epoch (on the
device, in the checkpoint while the epoch is under way, so a resumed run gives the same numbers),
and at its end one pass over them on the device and one host sync. Nothing runs per step, and
with ``diagnostics=false`` nothing at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor, nn

from nero import neuron_mean, neuron_norm
from tasks.files import write_atomically

from .records import finite_or_none

ANGLE_UNIT = "degrees"
STATS = ("norm_mean", "norm_std", "norm_min", "norm_max", "mean_mean", "mean_std", "mean_min",
         "mean_max", "angle_mean", "angle_max")


def neurons(p: Tensor) -> Tensor:
    """``p`` as Nero's neurons: itself with >= 2 dims (dim 0 indexes them), else one row."""
    return p if p.dim() > 1 else p.reshape(1, -1)


@torch.no_grad()
def summary(start: Tensor, end: Tensor) -> Tensor:
    """The :data:`STATS` of one tensor at an epoch's ``end``, turned from ``start``: a float32
    vector on the tensor's device (NaN where a value does not exist)."""
    rows = neurons(end.detach()).float()
    before = neurons(start.detach()).float()
    norm = neuron_norm(rows).flatten()
    mean = neuron_mean(rows).flatten()
    u = rows.reshape(len(rows), -1) / norm[:, None]
    before_norm = neuron_norm(before).flatten()
    v = before.reshape(len(before), -1) / before_norm[:, None]
    angle = torch.rad2deg(2 * torch.atan2(torch.linalg.vector_norm(u - v, dim=1),
                                          torch.linalg.vector_norm(u + v, dim=1)))
    has_angle = (norm > 0) & (before_norm > 0)
    angle = torch.where(has_angle, angle, torch.nan)
    return torch.stack([
        norm.mean(), norm.std(correction=0), norm.min(), norm.max(),
        mean.mean(), mean.std(correction=0), mean.min(), mean.max(),
        angle.nanmean(), torch.where(has_angle, angle, -torch.inf).max()])


class Diagnostics:
    """The diagnostics of one run: the epoch-start weights, and per layer a series per stat."""

    def __init__(self, modules: Mapping[str, nn.Module]) -> None:
        self.params = {f"{role}.{name}": p for role, module in modules.items()
                       for name, p in module.named_parameters() if p.numel() > 0}
        self.start: dict[str, Tensor] | None = None  # the weights when the epoch began
        self.epochs: list[int] = []  # the epochs (1-based) the series have values for
        self.series: dict[str, dict[str, list[float | None]]] = {
            name: {stat: [] for stat in STATS} for name in self.params}

    def begin_epoch(self) -> None:
        self.start = {name: p.detach().clone() for name, p in self.params.items()}

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Summarise epoch ``epoch`` (1-based) from its start (one host sync); returns its values
        as W&B keys ``diag/<layer>/<stat>``. Nothing where the epoch's start is unknown (a run
        resumed from a checkpoint written without diagnostics)."""
        if self.start is None:
            return {}
        values = torch.stack([summary(self.start[name], p) for name, p in self.params.items()])
        self.start = None
        self.epochs.append(epoch)
        logged = {}
        for name, row in zip(self.params, values.tolist()):
            for stat, value in zip(STATS, row):
                value = finite_or_none(value)
                self.series[name][stat].append(value)
                if value is not None:
                    logged[f"diag/{name}/{stat}"] = value
        return logged

    def state_dict(self) -> dict[str, Any]:
        return {"start": self.start, "epochs": self.epochs, "series": self.series}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        start = state["start"]
        self.start = (None if start is None else
                      {name: start[name].to(p.device) for name, p in self.params.items()})
        self.epochs = list(state["epochs"])
        self.series = {name: {stat: list(state["series"][name][stat]) for stat in STATS}
                       for name in self.params}

    def as_record(self) -> dict[str, Any]:
        """What the record's ``diagnostics`` holds: every layer's series over ``epochs``."""
        return {"angle_unit": ANGLE_UNIT, "epochs": self.epochs,
                "layers": {name: {"neurons": len(neurons(p)), **self.series[name]}
                           for name, p in self.params.items()}}

    def write_figure(self, path: Path) -> None:
        """One figure of the run, written atomically: per layer against the epoch, the neuron
        norm (mean, and mean +- std as a band), the largest |neuron mean| and the mean angle."""
        if self.epochs:
            write_atomically(path, lambda f: figure(self.as_record(), f))


def figure(diagnostics: Mapping[str, Any], out: BinaryIO) -> None:
    """Draw a record's ``diagnostics`` as a PNG into ``out``."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display
    from matplotlib.ticker import MaxNLocator

    epochs, layers = diagnostics["epochs"], diagnostics["layers"]
    fig = Figure(figsize=(15, 4.5), layout="constrained")
    ax_norm, ax_mean, ax_angle = fig.subplots(1, 3)
    nan = math.nan
    for name, s in layers.items():
        mean = [nan if v is None else v for v in s["norm_mean"]]
        std = [nan if v is None else v for v in s["norm_std"]]
        (line,) = ax_norm.plot(epochs, mean, marker=".", label=name)
        ax_norm.fill_between(epochs, [m - d for m, d in zip(mean, std)],
                             [m + d for m, d in zip(mean, std)], color=line.get_color(), alpha=0.2)
        ax_mean.plot(epochs, [nan if lo is None or hi is None else max(abs(lo), abs(hi))
                              for lo, hi in zip(s["mean_min"], s["mean_max"])],
                     marker=".", color=line.get_color())
        ax_angle.plot(epochs, [nan if v is None else v for v in s["angle_mean"]], marker=".",
                      color=line.get_color())
    ax_norm.set(title="neuron norm (mean, band: +- std)", xlabel="epoch")
    ax_mean.set(title="largest |neuron mean|", xlabel="epoch")
    ax_mean.set_yscale("symlog", linthresh=1e-7)
    ax_angle.set(title=f"mean angle turned per epoch ({diagnostics['angle_unit']})",
                 xlabel="epoch")
    for ax in (ax_norm, ax_mean, ax_angle):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(layers) <= 12:
        fig.legend(loc="outside right upper", fontsize="small")
    fig.savefig(out, format="png", dpi=100)
