"""Every artefact declared once: its generator, the files a complete one holds, and the sweeps
whose records it is drawn from. The aggregator (``cli``), ``scripts/reproduce.py`` (which sweeps
to run for an artefact), ``scripts/check_artefacts.py`` (which files the demo must have written)
and the claims' "to run" lines all read this table.

A sweep here is the ``sweep`` name its records carry; the experiment config that runs it is the
``conf/experiment/*.yaml`` whose ``sweep:`` key says that name (exactly one does). An experiment
that fixes no task (``table1``) runs once per task: the task given beside the sweep, else each
of Table 1's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from tasks.runner.launch import CONF_DIR

from . import artefacts, claims, transfer
from .artefacts import Optimizers, Outcome
from .published import TABLE1_TASKS
from .selection import Records

Sweep = tuple[str, "str | None"]  # (records' sweep, its task; None: every task it runs)


@dataclass(frozen=True)
class Artefact:
    make: Callable[[Records, Path, Optimizers], Outcome]
    files: tuple[str, ...]  # what its folder holds when complete (the demo checks each)
    sweeps: tuple[Sweep, ...]


def _figure(make: Callable[[Records, Path, Optimizers], Outcome], name: str, *sweeps: Sweep,
            comparison: bool = True) -> Artefact:
    return Artefact(make, (f"{name}.png", f"{name}.pdf") + (("comparison.md",) if comparison else ()),
                    sweeps)


def _claims(rec: Records, out: Path, optimizers: Optimizers) -> Outcome:
    return claims.artefact(rec, out, optimizers, makers())


T1: Sweep = ("table1", None)
ARTEFACTS: dict[str, Artefact] = {
    "table1": Artefact(artefacts.table1, ("table1.md", "table1.csv", "table1.tex", "comparison.md"),
                       (T1,)),
    "appendix_a": Artefact(artefacts.appendix_a, ("appendix_a.md", "appendix_a.csv", "comparison.md"),
                           (("fig1", None), ("fig2", None))),
    "fig1": _figure(artefacts.fig1, "fig1", ("fig1", None)),
    "fig2": _figure(artefacts.fig2, "fig2", ("fig2", None)),
    "fig3_left": _figure(artefacts.fig3_left, "fig3_left", ("fig3_cwn", None)),
    "fig3_right": _figure(artefacts.fig3_right, "fig3_right", ("fig3_deep_mlp", None)),
    "fig4": _figure(artefacts.fig4, "fig4", ("table1", "cifar10_cgan")),
    "fig5": _figure(artefacts.fig5, "fig5", ("table1", "cifar10_vgg11"),
                    ("table1", "cifar10_resnet18")),
    "fig6": _figure(artefacts.fig6, "fig6", ("table1", "wikitext2_transformer")),
    "fig7": _figure(artefacts.fig7, "fig7", ("table1", "multi30k_transformer")),
    "fig8": _figure(artefacts.fig8, "fig8", ("table1", "pong_ppo"), ("fig8", None)),
    "fig9": _figure(artefacts.fig9, "fig9", ("fig9", None)),
    "lr_sensitivity": _figure(artefacts.lr_sensitivity, "lr_sensitivity", T1, comparison=False),
    "profile": _figure(artefacts.profile, "profile", T1, comparison=False),
    "lr_transfer": Artefact(transfer.artefact, ("lr_transfer.png", "lr_transfer.pdf",
                                                "lr_transfer.md"), ((transfer.SWEEP, None),)),
    "claims": Artefact(_claims, ("claims.md", "claims.csv"),
                       tuple((s, None) for s in dict.fromkeys(s for c in claims.CLAIMS
                                                              for s in c.sweeps))),
}
# The sweeps some artefact is drawn from: records of any other are reported as unused.
USED_SWEEPS = frozenset(s for a in ARTEFACTS.values() for s, _ in a.sweeps)


@cache
def experiments() -> dict[str, tuple[str, bool]]:
    """Records' sweep -> (the experiment config that runs it, whether that config fixes its task)."""
    out: dict[str, tuple[str, bool]] = {}
    for path in sorted((Path(CONF_DIR) / "experiment").glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        sweep = config["sweep"]
        if sweep in out:
            raise ValueError(f"conf/experiment/{out[sweep][0]}.yaml and {path.name} both say "
                             f"sweep: {sweep}; give each experiment its own")
        fixed = any(isinstance(d, dict) and "override /task" in d for d in config.get("defaults", []))
        out[sweep] = (path.stem, fixed)
    return out


def sweeps_for(names: Iterable[str], tasks: Iterable[str]) -> list[tuple[str, str | None]]:
    """The (experiment, task) sweeps that make the named artefacts' records; an experiment that
    fixes its own task gets None. ``tasks`` limits the sweeps of experiments that take a task."""
    wanted, made = list(tasks), experiments()
    out = []
    for name in names:
        for sweep, task in ARTEFACTS[name].sweeps:
            experiment, fixed = made[sweep]
            if fixed:
                out.append((experiment, None))
            else:
                out += [(experiment, t) for t in ([task] if task else TABLE1_TASKS) if t in wanted]
    return list(dict.fromkeys(out))


def makers() -> dict[str, tuple[str, str]]:
    """Records' sweep -> (its experiment config, the artefact ``reproduce.py --artefacts`` runs
    it for): the artefact of the sweep's own name, else the first drawn from it."""
    out = {}
    for sweep, (experiment, _) in experiments().items():
        users = [n for n, a in ARTEFACTS.items() if any(s == sweep for s, _ in a.sweeps)]
        if users:
            out[sweep] = (experiment, sweep if sweep in users else users[0])
    return out
