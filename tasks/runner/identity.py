"""What a run is, and where it lives: one configuration, one record, one checkpoint, one W&B run.

A run computes a function of its whole configuration, except for a few keys that only say how or
where it runs (``NOT_COMPUTING``: device, data and output folders, logging, progress, threads,
checkpoint cadence, ...). Two notions follow from that:

- the **fingerprint**, a hash of every computing value (numbers canonicalised, so ``sigma=100``
  and ``sigma=100.0`` are one run). A record or checkpoint is only ever reused by a run with the
  same fingerprint;
- the **identity**: sweep / scale / task / optimizer / variant / lr / seed. The *variant* lists
  every computing value that differs from the defaults of the run's task, optimizer and scale
  (those three config groups composed on their own), e.g. ``{"task.sigma": 100.0}``. It keeps
  run directories readable and unique: ``<out>/fig3_cwn/paper/mnist_cwn/adam/sigma=100/lr=0.01/
  seed=0``, with a short hash appended only where the names would get long. The paper's default
  settings have an empty variant and no variant folder.

The defaults are composed with the same config search path as the run (a user's own config
folders included), from the group choices Hydra records for it (``hydra.runtime.choices``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tasks.errors import UserError

from .launch import CONF_DIR

# Top-level keys, and keys under task, that do not change what a run computes.
NOT_COMPUTING = frozenset({
    "logger", "device", "data_dir", "download", "out_dir", "checkpoint", "progress", "threads", "force",
    "hydra", "run_dir", "log_every", "check_every", "sweep", "wait", "cluster", "diagnostics",
    "task.num_workers", "task.fid.inception_path",
    "task.checkpoint_every_epochs",
})
# Computing keys that the identity names in its own folders, never in the variant.
IN_PATH = frozenset({"scale.name", "task.name", "optimizer.lr", "seed"})
# Longest variant folder name before its tail is replaced by a hash.
MAX_VARIANT_NAME = 60
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


# -- canonical computing values ------------------------------------------------------------------
def _canonical(value: Any) -> Any:
    """Numbers as floats (``1`` and ``1.0`` are one value), tuples as lists, containers recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    return str(value)


def plain(cfg: Any) -> dict[str, Any]:
    """A config as plain, resolved containers, without Hydra's own node."""
    if isinstance(cfg, DictConfig):
        keep = [k for k in cfg if k != "hydra"]  # Hydra's node may not resolve outside a job
        return OmegaConf.to_container(OmegaConf.masked_copy(cfg, keep), resolve=True,
                                      enum_to_str=True)
    return {k: v for k, v in dict(cfg).items() if k != "hydra"}


def computing(config: Mapping[str, Any]) -> dict[str, Any]:
    """Every computing leaf of a config, as ``{"task.sigma": 100.0, ...}`` (dict leaves flattened,
    null values left out)."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if prefix in NOT_COMPUTING:
            return
        if isinstance(node, Mapping) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif node is not None:  # an option set to null is an option not set
            out[prefix] = _canonical(node)

    walk(plain(config), "")
    return out


def _hash(leaves: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(leaves, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint(config: Mapping[str, Any]) -> str:
    """Hash of everything a run computes from: equal fingerprints, interchangeable results."""
    return _hash(computing(config))


def cell_fingerprint(config: Mapping[str, Any]) -> str:
    """The fingerprint without lr and seed: runs with equal values are one table cell's runs."""
    leaves = computing(config)
    leaves.pop("optimizer.lr", None)
    leaves.pop("seed", None)
    return _hash(leaves)


def differences(a: Mapping[str, Any], b: Mapping[str, Any], limit: int = 3) -> str:
    """The computing keys where two configs differ, for messages: ``task.depth 100 vs 5``."""
    la, lb = computing(a), computing(b)
    keys = sorted(k for k in set(la) | set(lb) if la.get(k, "<absent>") != lb.get(k, "<absent>"))
    parts = [f"{k} {_shown(la.get(k, '<absent>'))} vs {_shown(lb.get(k, '<absent>'))}"
             for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"{len(keys) - limit} more")
    return ", ".join(parts) or "no computing key"


def _shown(value: Any) -> str:
    """A value for a message: strings quoted where they would read as another type ('false')."""
    if isinstance(value, str) and value != "<absent>" and _text(yaml_value(value)) == value:
        return repr(value)
    return _text(value)


def yaml_value(text: str) -> Any:
    """What YAML (and so a Hydra override) reads ``text`` as: 'false' -> False, '1e-3' -> str."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


# -- validation of the values a path is made of --------------------------------------------------
def check_lr(lr: Any) -> float:
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
        shown = list(lr) if isinstance(lr, Iterable) and not isinstance(lr, str) else lr
        raise UserError(f"optimizer.lr must be a finite number > 0, got {shown!r}")
    return float(lr)


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise UserError(f"seed must be a whole number from 0 to 2**32 - 1, got {seed!r}")
    return seed


def check_name(value: Any, key: str) -> str:
    """A single, plain folder name: sweeps and ids can never leave the output folder."""
    text = str(value)
    if not _SAFE_NAME.match(text) or ".." in text:
        raise UserError(f"{key} must be a plain name (letters, digits, '_', '.', '+', '-'; no '/' "
                        f"or '..'), got {text!r}")
    return text


# -- the defaults a variant is measured against ----------------------------------------------------
def choices_of(cfg: DictConfig) -> dict[str, str]:
    """The config-group choices Hydra recorded for this config (task, optimizer, scale, ...)."""
    return _choices_and_sources(cfg)[0]


def _choices_and_sources(cfg: DictConfig) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """The run's config-group choices and the config search path that composed it."""
    if "hydra" in cfg:
        hydra_cfg = cfg.hydra
    else:
        from hydra.core.hydra_config import HydraConfig

        try:
            hydra_cfg = HydraConfig.get()
        except ValueError:
            raise UserError("this config was not composed by Hydra; build it with "
                            "tasks.runner.cli.compose(...) or run scripts/train.py") from None
    choices = {k: str(v) for k, v in hydra_cfg.runtime.choices.items() if v is not None}
    sources = tuple((str(s.provider), f"{s.schema}://{s.path}")
                    for s in hydra_cfg.runtime.config_sources)
    return choices, sources


@lru_cache(maxsize=64)
def _defaults(task: str, optimizer: str, scale: str,
              sources: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins
    from hydra.types import RunMode

    if "run_schema.yaml" not in ConfigStore.instance().repo:  # a programming error, not the user's
        raise RuntimeError("the config schemas are not registered: call "
                           "tasks.runner.validation.register_schemas() before composing")
    Plugins.instance()  # registers the config sources (pkg://, file://); outside a Hydra app
    search_path = ConfigSearchPathImpl()  # nothing else has, e.g. in scripts/aggregate.py
    for provider, path in sources:
        search_path.append(provider, path)
    loader = ConfigLoaderImpl(config_search_path=search_path)
    cfg = loader.load_configuration(
        "config", overrides=[f"task={task}", f"optimizer={optimizer}", f"scale={scale}"],
        run_mode=RunMode.RUN)
    return computing(cfg)


def defaults_for(task: str, optimizer: str, scale: str,
                 sources: tuple[tuple[str, str], ...] | None = None) -> dict[str, Any]:
    """Computing leaves of a task x optimizer x scale with nothing else overridden."""
    if sources is None:
        sources = (("hydra", "pkg://hydra.conf"), ("main", f"file://{CONF_DIR}"),
                   ("schema", "structured://"))
    return _defaults(task, optimizer, scale, sources)


def variant_of(leaves: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Computing values that differ from the defaults (a key the run lacks counts as None)."""
    keys = (set(leaves) | set(defaults)) - IN_PATH
    return {k: leaves.get(k) for k in sorted(keys, key=_variant_order)
            if leaves.get(k) != defaults.get(k)}


def _variant_order(key: str) -> tuple[int, str]:
    return ({"task": 0, "optimizer": 1}.get(key.split(".")[0], 2), key)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "_".join(_text(v) for v in value) or "[]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", str(value))


def short_keys(keys: list[str], all_keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest tail that no other key of the config ends with."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if not any(k != key and (k == tail or k.endswith("." + tail)) for k in all_keys):
                break
        out[key] = tail
    return out


def variant_name(variant: Mapping[str, Any], all_keys: list[str] | None = None) -> str:
    """``sigma=100`` or ``depth=100,beta=0.9``; long names keep a prefix and a hash of the rest."""
    if not variant:
        return ""
    names = short_keys(list(variant), sorted(set(all_keys or []) | set(variant)))
    pairs = [f"{names[k]}={_text(v)}" for k, v in variant.items()]
    full = ",".join(pairs)
    if len(full) <= MAX_VARIANT_NAME:
        return full
    digest = _hash(dict(variant))[:8]
    kept: list[str] = []
    for pair in pairs:
        if len(",".join([*kept, pair])) > MAX_VARIANT_NAME - 20:
            break
        kept.append(pair)
    return ",".join([*kept, f"+{len(pairs) - len(kept)}more-{digest}"])


# -- the identity ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    sweep: str
    scale: str
    task: str
    optimizer: str
    lr: float
    seed: int
    variant: dict[str, Any] = field(default_factory=dict)
    variant_name: str = ""
    fingerprint: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"sweep": self.sweep, "scale": self.scale, "task": self.task,
                "optimizer": self.optimizer, "variant": dict(self.variant), "lr": self.lr,
                "seed": self.seed}

    def subdir(self) -> Path:
        """The run's folder below ``<out_dir>/<sweep>``."""
        path = Path(self.scale) / self.task / self.optimizer
        if self.variant_name:
            path /= self.variant_name
        return path / f"lr={self.lr:g}" / f"seed={self.seed}"

    def directory(self, out_dir: str | Path) -> Path:
        return Path(out_dir) / self.sweep / self.subdir()

    def label(self) -> str:
        """One line naming the run, for progress lines and W&B."""
        variant = f" {self.variant_name}" if self.variant_name else ""
        return f"{self.task} {self.optimizer}{variant} lr={self.lr:g} seed={self.seed}"


def of(cfg: DictConfig) -> Identity:
    """The identity of a composed config; bad values of its keys are one-line errors."""
    choices, sources = _choices_and_sources(cfg)
    leaves = computing(cfg)
    defaults = _defaults(choices["task"], choices["optimizer"], choices["scale"], sources)
    variant = variant_of(leaves, defaults)
    return Identity(
        sweep=check_name(cfg.sweep, "sweep"),
        scale=check_name(cfg.scale.name, "scale.name"),
        task=check_name(cfg.task.name, "task.name"),
        optimizer=check_name(choices["optimizer"], "the optimizer config's name"),
        lr=check_lr(cfg.optimizer.lr),
        seed=check_seed(cfg.seed),
        variant=variant,
        variant_name=variant_name(variant, list(leaves)),
        fingerprint=_hash(leaves),
    )
