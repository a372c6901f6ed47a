"""Progress display and the W&B mirror of a run (the JSON record is always the source of truth)."""

from __future__ import annotations

import json
import netrc
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .identity import Identity
from .records import Record


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Progress:
    """A live bar on a terminal; one line per epoch (and per ``every_s`` seconds) in a log file."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self.interactive = enabled and sys.stderr.isatty()
        self.total = total
        self.done = initial
        self.desc = desc
        self.bar = None
        self._last_line = time.monotonic()
        if self.interactive:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True,
                            leave=False)

    def update(self, n: int, values: Mapping[str, Any] | None) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            if values:
                self.bar.set_postfix({k: _fmt(v) for k, v in values.items()}, refresh=False)

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbMirror:
    """Mirrors a run to W&B: online with credentials, offline without, never blocking for long."""

    def __init__(self, cfg: Mapping[str, Any], ident: Identity, config: dict[str, Any], run_dir: Path,
                 say: Any, run_id: str | None = None) -> None:
        """``run_id``: the W&B run of an interrupted process, which a resumed one continues."""
        self.run = None
        self.run_id = run_id
        try:
            import wandb
        except ImportError:
            say("W&B: the wandb package is missing; logging to the JSON record only")
            return
        mode = os.environ.get("WANDB_MODE")
        if mode is None:
            mode = cfg["mode"] or ("online" if wandb_credentials() else "offline")
            if mode == "offline":
                say(f"W&B: no credentials found, logging offline to {run_dir}/wandb "
                    "(upload later with `wandb sync`)")
        variant = f"/{ident.variant_name}" if ident.variant_name else ""
        try:
            self.run = wandb.init(
                project=cfg["project"] or "nero-repro",
                entity=cfg["entity"],
                id=run_id,
                resume="allow" if run_id else None,
                group=f"{ident.sweep}/{ident.scale}/{ident.task}{variant}",
                job_type=ident.task,
                name=f"{ident.task}-{ident.optimizer}{variant.replace('/', '-')}-lr{ident.lr:g}"
                     f"-s{ident.seed}",
                tags=[ident.optimizer, f"lr={ident.lr:g}", ident.scale, ident.sweep,
                      *([ident.variant_name] if ident.variant_name else [])],
                config={"identity": ident.as_dict(), "variant": ident.variant_name,
                        "fingerprint": ident.fingerprint, **config},
                dir=str(run_dir),
                mode=mode,
                reinit="finish_previous",
                settings=wandb.Settings(init_timeout=int(cfg["init_timeout"]),
                                        console="off", silent=True),
            )
            self.run_id = self.run.id
        except Exception as err:
            say(f"W&B: could not start ({type(err).__name__}: {err}); JSON record only")
            self.run = None

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        if self.run is not None:
            self.run.log(dict(metrics), step=step)

    def log_image(self, key: str, path: Path) -> None:
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Image(str(path))}, commit=False)

    def finish(self, record: Record | None, exit_code: int = 0) -> None:
        if self.run is None:
            return
        if record is not None:
            self.run.summary.update({
                "status": record.status,
                "final": record.final,
                "best": record.best,
                "nero_record": json.dumps(record.to_json()),
            })
        self.run.finish(exit_code=exit_code)
        self.run = None
