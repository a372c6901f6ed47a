"""Building optimisers from the ``optimizer`` config group: the one factory of the suite.

nero, madam and lamb come from the ``nero`` library; sgd and adam from ``torch.optim``. The
config's ``name`` picks the class; every other key is either a constructor argument of that
class or one of the runner's own keys below. Unknown keys fail loudly, so a typo cannot turn
into a silently different baseline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from nero import LAMB, Madam, Nero
from tasks.errors import UserError

# Keys of the optimizer config that the runner uses itself (not passed to the constructor).
RUNNER_KEYS = {"name", "id", "lr", "grad_clip", "modules"}

_ARGS: dict[str, tuple[type[torch.optim.Optimizer], set[str]]] = {
    "nero": (Nero, {"beta", "mean_constraint", "norm_constraint", "bias_scale", "fused"}),
    "madam": (Madam, {"p_scale", "g_bound", "beta", "constraints", "fused"}),
    "lamb": (LAMB, {"betas", "eps", "weight_decay", "constraints", "max_weight_norm",
                    "bias_correction", "foreach", "fused"}),
    "sgd": (torch.optim.SGD, {"momentum", "weight_decay", "nesterov", "dampening", "foreach"}),
    "adam": (torch.optim.Adam, {"betas", "eps", "weight_decay", "amsgrad", "foreach", "fused"}),
}


def names() -> list[str]:
    return sorted(_ARGS)


def kwargs_for(cfg: Mapping[str, Any], role: str) -> dict[str, Any]:
    """Constructor arguments for the optimiser of ``role``, per-module overrides applied."""
    name = cfg["name"]
    if name not in _ARGS:
        raise UserError(f"unknown optimizer {name!r}: choose one of {', '.join(names())}")
    allowed = _ARGS[name][1]
    merged = {k: v for k, v in cfg.items() if k not in RUNNER_KEYS}
    merged.update((cfg.get("modules") or {}).get(role, {}) or {})
    unknown = sorted(set(merged) - allowed)
    if unknown:
        raise UserError(
            f"optimizer {name!r} has no option {', '.join(unknown)}; it accepts "
            f"{', '.join(sorted(allowed | {'lr', 'grad_clip'}))}"
        )
    out = {k: (tuple(v) if isinstance(v, list) else v) for k, v in merged.items() if v is not None}
    return out


def check_lr(lr: Any) -> float:
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise UserError(f"optimizer.lr must be a number, got {lr!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"optimizer.lr must be a finite number > 0, got {lr!r}")
    return value


def build_optimizer(params: Iterable[Any], cfg: Mapping[str, Any],
                    role: str = "model") -> torch.optim.Optimizer:
    lr = check_lr(cfg["lr"])
    kwargs = kwargs_for(cfg, role)
    cls = _ARGS[cfg["name"]][0]
    try:
        return cls(params, lr=lr, **kwargs)
    except ValueError as err:  # the optimisers' own validation, e.g. beta outside [0, 1)
        raise UserError(f"optimizer {cfg['name']!r}: {err}") from None
