"""The reproduction suite, in three layers that only point down:

- ``tasks.experiments``: the paper's experiments (one module each), with their ``models`` and
  ``data``, written against the contract in ``tasks.experiments.base``;
- ``tasks.runner``: what every run goes through (the command line, the training loop,
  identities, records, checkpoints, schedules, the optimiser factory, progress and W&B);
- ``tasks.analysis``: from finished runs' records to the paper's tables and figures.
"""
