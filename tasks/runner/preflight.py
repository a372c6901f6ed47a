"""Checks made once, before a run or a sweep starts: every cell's config, and the data and
weights its task reads from ``data_dir``.

A sweep is refused as a whole, with one line per problem (a bad value in a cell, a missing data
set), before a single job is queued: twenty queued GPU jobs are the wrong way to learn that
CIFAR-10 is not on the cluster. With ``download=true`` (a laptop) missing data is not a problem:
the runs fetch it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig

from tasks.errors import UserError
from tasks.experiments.data.prepare import ITEMS

from . import validation
from .folders import check_run_folder


def problems(configs: Iterable[DictConfig], labels: Iterable[str] = ()) -> list[str]:
    """One line per bad cell config (prefixed by the cell's label, e.g. its sweep overrides) and
    per missing data item (each item named once)."""
    lines: list[str] = []
    checked: set[tuple[Path, str]] = set()
    labels = iter(labels)
    for cfg in configs:
        label = next(labels, "")
        try:
            spec = validation.validate(cfg)
            needs = spec.task.needs()
            check_run_folder(spec.identity.directory(spec.run.out_dir))
        except UserError as err:
            lines.append(f"{label}: {err}" if label else str(err))
            continue
        if spec.run.download:
            continue
        data_dir = Path(spec.run.data_dir)
        for name in needs:
            if (data_dir, name) in checked:
                continue
            checked.add((data_dir, name))
            check = ITEMS[name].check(data_dir)
            if not check.ok:
                lines.append(check.line())
    return list(dict.fromkeys(lines))


def require(configs: Iterable[DictConfig], labels: Iterable[str] = ()) -> None:
    """Raise one :class:`UserError` whose lines are every problem of :func:`problems`."""
    found = problems(configs, labels)
    if found:
        raise UserError("\n".join(found))
