"""Building optimisers from the ``optimizer`` config group: the one factory of the suite.

An optimiser config names any importable ``torch.optim.Optimizer`` subclass with ``_target_``
(Hydra's convention) and gives its constructor's keyword arguments; ``lr`` and the runner's own
keys below are read here. A file holding ``_target_``, ``lr`` and the class's arguments is a
complete optimiser: ``conf/optimizer/<name>.yaml`` in this repository, in a folder of the user's
on Hydra's search path (``hydra.searchpath=[file:///my/configs]``), or put together on the
command line. Arguments are checked against the class's signature, so a misspelt one fails in one
line that names the accepted ones, instead of turning into a silently different baseline.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import math
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import torch

from tasks.errors import UserError

# Keys of an optimizer config that the runner uses itself (not passed to the constructor):
# the class, the base lr (schedules scale it), global-norm clipping (wins over the task's when
# set; 0 turns clipping off) and per-role overrides, e.g. {D: {betas: [0.9, 0.999]}} for the GAN.
RUNNER_KEYS = {"_target_", "lr", "grad_clip", "modules"}


def optimizer_class(cfg: Mapping[str, Any]) -> type[torch.optim.Optimizer]:
    target = cfg.get("_target_")
    if not target:
        raise UserError("the optimizer config names no class: set optimizer._target_ (e.g. "
                        "torch.optim.AdamW, or mypackage.MyOptimizer)")
    return _import(str(target))


@cache
def _import(target: str) -> type[torch.optim.Optimizer]:
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name) if module else None
    except (ImportError, AttributeError) as err:
        raise UserError(f"optimizer._target_ {target!r} cannot be imported ({err}); install its "
                        "package or correct the name") from None
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise UserError(f"optimizer._target_ {target!r} is not a torch.optim.Optimizer class")
    return cls


def accepted(cls: type[torch.optim.Optimizer]) -> set[str] | None:
    """The keyword arguments the class's constructor takes besides params and lr; None when it
    takes any (``**kwargs``)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # without self
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"params", "lr"}


def kwargs_for(cfg: Mapping[str, Any], role: str) -> dict[str, Any]:
    """Constructor arguments for the optimiser of ``role``, per-module overrides applied."""
    cls = optimizer_class(cfg)
    merged = {k: v for k, v in cfg.items() if k not in RUNNER_KEYS}
    merged.update((cfg.get("modules") or {}).get(role, {}) or {})
    allowed = accepted(cls)
    unknown = sorted(set(merged) - allowed) if allowed is not None else []
    if unknown:
        raise UserError(
            f"optimizer {cls.__name__} has no option {', '.join(unknown)}; it accepts "
            f"{', '.join(sorted(allowed | {'lr'}))} (and the runner's grad_clip and modules)")
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in merged.items() if v is not None}


def check_lr(lr: Any) -> float:
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
        shown = list(lr) if isinstance(lr, Iterable) and not isinstance(lr, str) else lr
        raise UserError(f"optimizer.lr must be a finite number > 0, got {shown!r}")
    return float(lr)


def check_options(cfg: Mapping[str, Any]) -> None:
    """Refuse, in one line, an optimiser config that could not build its optimisers: no class,
    unknown options, bad lr or clipping, and values the class itself rejects (tried on a dummy
    tensor)."""
    check_lr(cfg.get("lr"))
    clip = cfg.get("grad_clip")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float)
                             or not clip >= 0):
        raise UserError(f"optimizer.grad_clip must be a number >= 0 or null, got {clip!r}")
    for role in ["model", *((cfg.get("modules") or {}).keys())]:
        build_optimizer([torch.zeros(2, 3, requires_grad=True)], cfg, role)


def build_optimizer(params: Iterable[Any], cfg: Mapping[str, Any],
                    role: str = "model") -> torch.optim.Optimizer:
    lr = check_lr(cfg["lr"])
    kwargs = kwargs_for(cfg, role)
    cls = optimizer_class(cfg)
    try:
        return cls(params, lr=lr, **kwargs)
    except (TypeError, ValueError) as err:  # the class's own checks, e.g. beta outside [0, 1)
        raise UserError(f"optimizer {cls.__name__}: {str(err).splitlines()[0]} (options: "
                        f"{', '.join(f'{k}={v!r}' for k, v in kwargs.items())})") from None


def describe(cfg: Mapping[str, Any]) -> dict[str, str | None]:
    """The optimiser's class, and the package (with its version) it came from, for the record."""
    cls = optimizer_class(cfg)
    top = cls.__module__.split(".")[0]
    dists = importlib.metadata.packages_distributions().get(top, [])
    package = dists[0] if dists else top
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(importlib.import_module(top), "__version__", None)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "package": package,
            "version": version}
