"""The machinery every run goes through: ``cli`` (the Hydra entry point), ``loop`` (the one
training loop), ``identity`` (what a run is, and where it lives), ``records``, ``checkpoints``,
``schedules``, ``optimizers`` (the factory), ``reporting`` (progress lines and the W&B mirror)
and ``launch`` (what the Hydra app, the runner and the grid sweeper share)."""
