"""The reproduction suite, in layers that only point down (tests/test_layers.py checks it):

- ``tasks.errors``, ``tasks.files``, ``tasks.distributed``: what every layer above may use;
- ``tasks.experiments``: the paper's experiments (one module each, declared in its ``TASKS``),
  with their ``models`` and ``data``, written against the contract in ``tasks.experiments.base``;
- ``tasks.runner``: what every run goes through (the command line, the training loop,
  identities, records, checkpoints, schedules, the optimiser factory, progress and W&B);
- ``tasks.analysis``: from finished runs' records to the paper's tables and figures; beside it,
  never imported by it, the grid sweeper (``hydra_plugins``); ``scripts/`` on top.
"""
