"""Result records: one JSON file per run, the suite's source of truth.

A record lives in its run's folder, ``<out_dir>/<sweep>/<scale>/<task>/<optimizer>[/<variant>]/
lr=<lr>/seed=<seed>/record.json``, a function of the run's identity (tasks/runner/identity.py),
so a sweep launched twice finds the runs it already has. It stores the run's whole resolved
config, from which the fingerprint that decides whether it may be reused is recomputed.
Records are written atomically (temporary file, fsync, rename): a reader never sees half a record.
This module alone writes and reads them: a :class:`Record` in memory, its ``to_json()`` on disk.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.errors import UserError
from tasks.files import read_regular, write_atomically

from . import identity
from .identity import Identity

SCHEMA = 2  # 2: the identity once, under "identity"; 1 also had its keys at the top level
RECORD = "record.json"
STATUSES = ("ok", "diverged", "failed")


class Unreadable(Exception):
    """A record file that exists but is not a record (damaged, hand-edited, another format)."""


@dataclass
class Record:
    """One run's record: who it is (``identity``), how it ended, what it measured, and where and
    with what it ran. :meth:`to_json` is what ``record.json`` holds; :meth:`from_json` reads it
    back, checking every value's type. ``path``, ``skipped`` and ``defect`` are never written."""

    identity: Identity
    status: str  # one of STATUSES
    reason: str | None = None  # why a run is not ok
    config: dict[str, Any] | None = None  # the whole resolved config (fingerprints come from it)
    metric: str | None = None
    goal: str | None = None  # "min" or "max"
    final: float | None = None
    best: float | None = None
    best_epoch: int | None = None
    epochs_done: int | None = None
    steps: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per epoch
    series: dict[str, list[float]] = field(default_factory=dict)  # per-step values
    extra: dict[str, Any] = field(default_factory=dict)  # what the task adds at the end
    notes: list[str] = field(default_factory=list)
    optimizer_family: str | None = None
    optimizer_class: dict[str, Any] | None = None
    device: str | None = None
    hardware: str | None = None
    backend: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    git: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    wall_time_s: float | None = None
    diagnostics: dict[str, Any] | None = None
    # Never written: where it was read from, whether the runner reused it, why the analysis may
    # not use it (a config that is not a mapping: the runner still refuses to train over it).
    path: str | None = field(default=None, compare=False)
    skipped: bool = field(default=False, compare=False)
    defect: str | None = field(default=None, compare=False)

    sweep = property(lambda self: self.identity.sweep)
    scale = property(lambda self: self.identity.scale)
    task = property(lambda self: self.identity.task)
    optimizer = property(lambda self: self.identity.optimizer)
    lr = property(lambda self: self.identity.lr)
    seed = property(lambda self: self.identity.seed)
    variant = property(lambda self: self.identity.variant)
    variant_name = property(lambda self: self.identity.variant_name)
    fingerprint = property(lambda self: self.identity.fingerprint)

    @functools.cached_property
    def cell_fingerprint(self) -> str:
        """Its configuration's fingerprint with lr and seed set aside ("" without a config)."""
        return identity.cell_fingerprint(self.config) if self.config is not None else ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA, "identity": dataclasses.asdict(self.identity)}
        for f in dataclasses.fields(self):
            if f.name not in ("identity", *_TRANSIENT):
                out[f.name] = getattr(self, f.name)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Record:
        """The record ``data`` (a parsed record.json, of schema 1 or 2) holds; ValueError saying
        which value is wrong when it is not one."""
        schema = data.get("schema") if isinstance(data, dict) else None
        if type(schema) is not int or schema not in (1, SCHEMA):
            raise ValueError(f"no schema 1 or {SCHEMA}: not a record of this suite")
        data = _from_schema_1(data) if schema == 1 else dict(data)
        ident = data.get("identity")
        if not isinstance(ident, dict):
            raise ValueError("it holds no identity")
        try:
            names = {k: identity.check_name(ident.get(k), k)
                     for k in ("sweep", "scale", "task", "optimizer")}
            run = Identity(**names, lr=identity.check_lr(ident.get("lr")),
                           seed=identity.check_seed(ident.get("seed")),
                           **{k: _typed(k, ident.get(k, kind()), (kind,), nullable=False)
                              for k, kind in (("variant", dict), ("variant_name", str),
                                              ("fingerprint", str))})
        except UserError as err:
            raise ValueError(str(err)) from None
        if data.get("status") not in STATUSES:
            raise ValueError(f"its status {data.get('status')!r} is none of {', '.join(STATUSES)}")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in data and f.name not in ("identity", "status", "config", *_TRANSIENT):
                values[f.name] = _typed(f.name, data[f.name], _KINDS[f.name],
                                        nullable=f.name not in _NEVER_NULL)
        config, defect = data.get("config"), None
        if config is not None and not isinstance(config, dict):
            config, defect = None, f"its config is a {type(config).__name__}, not a mapping"
        return cls(identity=run, status=data["status"], config=config, defect=defect, **values)


_TRANSIENT = ("path", "skipped", "defect")
# The JSON types each field may hold (None: an optional field left empty).
_KINDS: dict[str, tuple[type, ...]] = {
    "reason": (str,), "metric": (str,), "goal": (str,), "final": (float, int),
    "best": (float, int), "best_epoch": (int,), "epochs_done": (int,), "steps": (int,),
    "history": (list,), "series": (dict,), "extra": (dict,), "notes": (list,),
    "optimizer_family": (str,), "optimizer_class": (dict,), "device": (str,), "hardware": (str,),
    "backend": (dict,), "versions": (dict,), "git": (dict,), "started_at": (str,),
    "finished_at": (str,), "wall_time_s": (float, int), "diagnostics": (dict,),
}
_NEVER_NULL = ("history", "series", "extra", "notes")


def _typed(name: str, value: Any, kinds: tuple[type, ...], nullable: bool = True) -> Any:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"its {name} is a {type(value).__name__}, not a {kinds[0].__name__}")
    return float(value) if float in kinds else value


def _from_schema_1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 (every record under results/) kept the identity's keys both under "identity" and
    at the top level, variant_name and fingerprint at the top, and before variants existed none;
    the top-level keys are the ones its readers used, so they are the identity here."""
    out = {k: v for k, v in data.items() if k not in (*IDENTITY_KEYS, "identity",
                                                      "optimizer_name")}  # = identity.optimizer
    nested = data.get("identity") if isinstance(data.get("identity"), dict) else {}
    ident = {k: data[k] if k in data else nested[k] for k in IDENTITY_KEYS
             if k in data or k in nested}
    if "variant" not in ident:
        ident["variant"] = _derived_variant(ident, data.get("config"))
    out["identity"] = ident
    return out


IDENTITY_KEYS = tuple(f.name for f in dataclasses.fields(Identity))


def _derived_variant(ident: Mapping[str, Any], config: Any) -> Any:
    """A record from before variants: its stored config against the current defaults of its task,
    optimiser and scale (no stored config: the default variant)."""
    if not isinstance(config, dict):
        return {}
    from .validation import register_schemas

    register_schemas()
    try:
        defaults = identity.defaults_for(str(ident.get("task")), str(ident.get("optimizer")),
                                         str(ident.get("scale")))
    except Exception:  # an optimiser config that no longer exists: never the default variant
        return {"config": identity.cell_fingerprint(config)}
    return identity.variant_of(identity.computing(config), defaults)


def write(path: Path, record: Record) -> None:
    if record.status not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, got {record.status!r}")
    text = json.dumps(record.to_json(), indent=1, allow_nan=False, default=_jsonable) + "\n"
    try:
        write_atomically(path, lambda f: f.write(text.encode()))
    except OSError as err:
        from .checkpoints import disk_error

        raise disk_error(path, err) from None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read(path: Path) -> Record | None:
    """The record at ``path``; None if there is none; :class:`Unreadable` if it is not a record."""
    if not os.path.lexists(path):
        return None
    try:
        data = json.loads(read_regular(path).decode("utf-8"))
    except UserError as err:  # a link, a FIFO, a device: never followed or opened
        raise Unreadable(str(err)) from None
    except (OSError, ValueError, RecursionError) as err:  # random bytes, broken JSON
        why = "nested too deeply" if isinstance(err, RecursionError) else (
            getattr(err, "strerror", None) or type(err).__name__)
        raise Unreadable(f"{path} is not a readable record ({why})") from None
    try:
        record = Record.from_json(data)
    except ValueError as err:
        raise Unreadable(f"{path} is not a usable record ({err})") from None
    record.path = str(path)
    return record


def find(root: str | Path, problems: list[str] | None = None) -> Iterator[Record]:
    """Every record below ``root`` (each with its ``path``). Unreadable ones are skipped; each
    adds one line to ``problems`` when a list is given."""
    for path in sorted(Path(root).rglob(RECORD)):
        try:
            record = read(path)
        except Unreadable as err:
            if problems is not None:
                problems.append(str(err))
            continue
        if record is not None:
            yield record


def finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if x == x and x not in (float("inf"), float("-inf")) else None


# -- provenance ---------------------------------------------------------------------------------
def git_state(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def versions() -> dict[str, str | None]:
    import torch

    import nero

    out: dict[str, str | None] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "nero": nero.__version__,
    }
    for name in ("torchvision", "hydra", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def hardware(device: Any) -> str:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({os.cpu_count()} cores)"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
