"""What the Hydra app (``cli``), the runner and the grid sweeper (hydra_plugins) share: where the
configs are, and how a sweep's jobs learn that their launch is stopping. It imports nothing of
the suite, so each of them can import it without importing the others."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF_DIR = str(REPO / "conf")

# In the sweep folder while a launch is stopping: its cells that see it stop. Each launch has its
# own (``.stop-<launch id>``): another sweep, or another launch of this one, writing into the
# same folder is not stopped with it.
STOP = ".stop"
SWEEP_PID = "NERO_SWEEP_PID"  # the sweeping process, for its local workers
LAUNCH_ID = "NERO_LAUNCH_ID"  # this launch, for its jobs (local workers and SLURM jobs inherit it)


def stop_file(sweep_dir: Path, launch_id: str) -> Path:
    """The stop file of one launch of a sweep."""
    return sweep_dir / f"{STOP}-{launch_id}"
