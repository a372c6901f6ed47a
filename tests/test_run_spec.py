"""validate() returns the run as checked, typed values: what the runner and the task read."""

from __future__ import annotations

import dataclasses

import pytest

from tasks.experiments import TASKS, get_task
from tasks.runner.validation import Precision, RunConfig, validate
from tests.helpers import compose


@pytest.mark.parametrize("task", sorted(TASKS))
def test_each_task_gets_its_own_config_type_with_typed_values(task):
    spec = validate(compose(f"task={task}", "seed=3", "precision=bf16", "checkpoint.every_steps=7"))
    cls = get_task(task)
    assert type(spec.task) is cls.Config  # the type the task's constructor takes
    assert spec.task.name == task and isinstance(spec.task.epochs, int)
    assert isinstance(spec.run, RunConfig) and spec.run.precision is Precision.bf16
    assert spec.run.seed == 3 == spec.identity.seed and spec.run.checkpoint.every_steps == 7


def test_the_checked_spec_is_read_only():
    spec = validate(compose("task=mnist_mlp", "scale=smoke"))
    for obj, key in ((spec, "task"), (spec.run, "seed"), (spec.run.checkpoint, "keep"),
                     (spec.task, "epochs"), (spec.task.schedule, "gamma")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, key, getattr(obj, key))


def test_a_run_default_lives_in_the_schema_and_a_scale_can_change_it():
    # conf/config.yaml no longer repeats the run's defaults after its defaults list, so the
    # smoke scale's log_every is what a smoke run uses (it was shadowed by the root's 50).
    assert validate(compose("task=mnist_mlp")).run.log_every == RunConfig.log_every == 50
    assert validate(compose("task=mnist_mlp", "scale=smoke")).run.log_every == 10
