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
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
        shown = list(lr) if isinstance(lr, Iterable) and not isinstance(lr, str) else lr
        raise UserError(f"optimizer.lr must be a finite number > 0, got {shown!r}")
    return float(lr)


def check_options(cfg: Mapping[str, Any]) -> None:
    """Refuse, in one line, an optimiser config that could not build its optimisers: unknown
    options, bad lr or clipping, and values the class itself rejects (tried on a dummy tensor)."""
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
    cls = _ARGS[cfg["name"]][0]
    try:
        return cls(params, lr=lr, **kwargs)
    except (TypeError, ValueError) as err:  # the class's own checks, e.g. beta outside [0, 1)
        raise UserError(f"optimizer {cfg['name']!r}: {str(err).splitlines()[0]} (options: "
                        f"{', '.join(f'{k}={v!r}' for k, v in kwargs.items())})") from None
