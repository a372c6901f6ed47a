"""The paper's experiments, one module each, and the registry that maps a task name to its class.
Modules are imported on demand, so a task's heavy dependencies (gymnasium, spaCy, scipy) are only
needed by the runs that use it."""

from __future__ import annotations

import importlib

from tasks.errors import UserError

from .base import Task

TASKS = {
    "mnist_cwn": "tasks.experiments.mnist:MnistCWN",
    "mnist_mlp": "tasks.experiments.mnist:MnistMLP",
    "cifar10_vgg11": "tasks.experiments.cifar:Cifar10Classifier",
    "cifar10_resnet18": "tasks.experiments.cifar:Cifar10Classifier",
    "cifar10_cgan": "tasks.experiments.cgan:Cifar10CGAN",
    "wikitext2_transformer": "tasks.experiments.wikitext2:Wikitext2LM",
    "wikitext2_gpt2": "tasks.experiments.wikitext2:Wikitext2GPT2",  # beyond the paper
    "multi30k_transformer": "tasks.experiments.multi30k:Multi30kTranslation",
    "pong_ppo": "tasks.experiments.pong_ppo:PongPPO",
    "imagenet_resnet50": "tasks.experiments.imagenet:ImageNetResNet50",
}


def get_task(name: str) -> type[Task]:
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}: choose one of {', '.join(sorted(TASKS))}")
    module, cls = TASKS[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] != "tasks":
            raise UserError(
                f"task {name!r} needs the package {err.name!r}; install the suite with "
                "`make install` (or pip install -e '.[all]')"
            ) from None
        raise
