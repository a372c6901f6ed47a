"""Each concept is declared once, and what stays in YAML agrees with the declaration: a task in
the table of tasks (tasks/experiments/__init__.py), an artefact in the registry
(tasks/analysis/registry.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tasks.analysis import registry
from tasks.experiments import SCHEMAS, TASKS, tasks_reading
from tasks.experiments.data.prepare import ITEMS
from tasks.runner import sweeps
from tasks.runner.cli import compose
from tasks.runner.validation import task_config

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_every_task_config_agrees_with_the_table_of_tasks():
    assert sorted(p.stem for p in (CONF / "task").glob("*.yaml")) == sorted(TASKS)
    scales = {p.stem for p in (CONF / "scale").glob("*.yaml")}
    for name in TASKS:
        config = yaml.safe_load((CONF / "task" / f"{name}.yaml").read_text())
        assert config["name"] == name
        assert f"/schema/task/{name}@_here_" in config["defaults"]  # the declared schema
        assert (CONF / "task_scale" / f"{name}_smoke.yaml").is_file()
    for path in (CONF / "task_scale").glob("*.yaml"):  # <task>_<scale>.yaml, both declared
        task, _, scale = path.stem.rpartition("_")
        assert task in TASKS and scale in scales, path.name


def test_a_tasks_data_items_are_declared_by_its_schema():
    for name, schema in SCHEMAS.items():
        assert set(schema.real_data) <= set(ITEMS), name
        for scale in ("paper", "smoke"):
            assert set(task_config(compose(f"task={name}", f"scale={scale}")).needs()) \
                <= set(schema.real_data), (name, scale)
    assert tasks_reading("cifar10") == ["cifar10_vgg11", "cifar10_resnet18", "cifar10_cgan"]
    assert ITEMS["mnist"].tasks == "mnist_cwn, mnist_mlp"  # the data check's message


def test_every_artefacts_sweeps_are_run_by_exactly_one_experiment():
    made = registry.experiments()  # refuses two experiment configs with one sweep name
    assert set(made) == set(registry.USED_SWEEPS)  # and no experiment no artefact reads
    for name, artefact in registry.ARTEFACTS.items():
        assert artefact.files and artefact.sweeps, name
        for sweep, task in artefact.sweeps:
            assert sweep in made and (task is None or task in TASKS), (name, sweep)
    assert registry.sweeps_for(["fig8"], ["pong_ppo", "cifar10_cgan"]) == [
        ("table1", "pong_ppo"), ("fig8_lamb_beta1", None)]
    assert registry.makers()["fig3_cwn"] == ("fig3_cwn", "fig3_left")


def test_every_shipped_lr_grid_is_ascending():
    # The sweeper's stage 2 breaks a tie by the smaller lr (tasks/runner/protocol.py), which is
    # the grid's first in every grid the suite ships.
    grids = [compose(f"+experiment={p.stem}").hydra.sweeper.grid.get("optimizer.lr")
             for p in (CONF / "experiment").glob("*.yaml")] + list(sweeps.DEMO_GRIDS.values())
    for grid in filter(None, grids):
        lrs = [float(v) for v in str(grid).split(",")]
        assert lrs == sorted(lrs), grid
