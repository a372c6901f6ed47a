"""The paper's experiments, one module each, and what derives from the table that declares every
task (``TASKS``, tasks/experiments/configs.py): the task classes (imported on demand, so a task's
heavy dependencies such as gymnasium, spaCy or scipy are only needed by the runs that use it), the
schemas Hydra composes from (:func:`register_schemas`) and the tasks that read each data item.
``conf/task/<name>.yaml`` and ``conf/task_scale/<name>_smoke.yaml`` hold the values;
tests/test_declarations.py refuses a YAML file that disagrees with the table.
"""

from __future__ import annotations

import importlib

from tasks.errors import UserError

from .base import Task, TaskConfig
from .configs import TASKS

SCHEMAS: dict[str, type[TaskConfig]] = {name: entry.schema for name, entry in TASKS.items()}


def register_schemas() -> None:
    """Every task's schema in Hydra's config store, as ``schema/task/<name>`` (each
    conf/task/<name>.yaml starts from it); called before anything composes a config."""
    from hydra.core.config_store import ConfigStore

    for name, schema in SCHEMAS.items():
        ConfigStore.instance().store(group="schema/task", name=name, node=schema)


def tasks_reading(item: str) -> list[str]:
    """The tasks that may read a data item of tasks/experiments/data/prepare.py."""
    return [name for name, entry in TASKS.items() if item in entry.schema.real_data]


def get_task(name: str) -> type[Task]:
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}: choose one of {', '.join(sorted(TASKS))}")
    module, cls = TASKS[name].target.split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] != "tasks":
            raise UserError(
                f"task {name!r} needs the package {err.name!r}; install the suite with "
                "`make install` (or pip install -e '.[all]')"
            ) from None
        raise
