"""Building optimisers from the ``optimizer`` config group: the one factory of the suite.

An optimiser config names any importable ``torch.optim.Optimizer`` subclass with ``_target_``
(Hydra's convention) and gives its constructor's keyword arguments; ``lr`` and the runner's own
keys below are read here. A file holding ``_target_``, ``lr`` and the class's arguments is a
complete optimiser: ``conf/optimizer/<name>.yaml`` in this repository, in a folder of the user's
on Hydra's search path (``hydra.searchpath=[file:///my/configs]``), or put together on the
command line. Arguments are checked against the class's signature, so a misspelt one fails in one
line that names the accepted ones, instead of turning into a silently different baseline, and
each value against the type the signature gives its argument (its annotation, else its default's
type): ``mean_constraint=off`` is a string, not a bool, and would be read as ``True``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
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
    modules = cfg.get("modules") or {}
    if not isinstance(modules, Mapping) or not all(isinstance(v, Mapping | None) for v in
                                                   modules.values()):
        raise UserError(f"optimizer.modules must map roles to options, e.g. {{D: {{betas: "
                        f"[0.0, 0.9]}}}}, got {modules!r}")
    merged = {k: v for k, v in cfg.items() if k not in RUNNER_KEYS}
    merged.update(modules.get(role, {}) or {})
    allowed = accepted(cls)
    unknown = sorted(set(merged) - allowed) if allowed is not None else []
    if unknown:
        raise UserError(
            f"optimizer {cls.__name__} has no option {', '.join(unknown)}; it accepts "
            f"{', '.join(sorted(allowed | {'lr'}))} (and the runner's grad_clip and modules)")
    own = (modules.get(role) or {})
    for key, value in merged.items():
        where = f"optimizer.modules.{role}.{key}" if key in own else f"optimizer.{key}"
        check_type(cls, key, value, where)
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in merged.items() if v is not None}


# -- option types, from the class's signature --------------------------------------------------
_UNKNOWN = object()  # a type this module cannot check a config value against


def option_types(cls: type[torch.optim.Optimizer]) -> dict[str, Any]:
    """Each constructor argument's type: its annotation where one resolves, else the type of its
    default (a bool default takes bools, a number numbers, ...); _UNKNOWN where neither says."""
    return _option_types(cls)


@cache
def _option_types(cls: type) -> dict[str, Any]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:
        hints = {}
    out: dict[str, Any] = {}
    for p in params:
        if p.name in hints:
            out[p.name] = hints[p.name]
        elif p.default is not inspect.Parameter.empty and p.default is not None:
            out[p.name] = _type_of(p.default)
        else:
            out[p.name] = _UNKNOWN
    return out


def _type_of(default: Any) -> Any:
    if isinstance(default, bool):
        return bool
    if isinstance(default, int | float):
        return float  # a number: an int default does not forbid 0.9
    if isinstance(default, str):
        return str
    if isinstance(default, tuple | list) and default:
        return tuple[tuple(_type_of(d) for d in default)]  # type: ignore[misc]
    return _UNKNOWN


def _fits(value: Any, tp: Any) -> bool:
    """Whether a config value (None, bool, number, str, list, dict) is of type ``tp``; a type
    that cannot be checked accepts every value."""
    if tp is _UNKNOWN or tp is Any or isinstance(tp, typing.TypeVar):
        return True
    if tp is None or tp is type(None):
        return value is None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin is tuple:
        if not _is_list(value):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return not args or (len(value) == len(args) and all(map(_fits, value, args)))
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return isinstance(value, Mapping)
    if isinstance(origin, type) and issubclass(origin, Iterable):
        return _is_list(value) and (not args or all(_fits(v, args[0]) for v in value))
    if origin is not None:
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and math.isfinite(value))
    if tp is str:
        return isinstance(value, str)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # a typing construct this check does not know


def _is_list(value: Any) -> bool:
    """A list of a config: a list or tuple, or OmegaConf's ListConfig (a Sequence)."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _describe(tp: Any) -> str:
    if tp is bool:
        return "true or false"
    if tp is float:
        return "a finite number"
    if tp is int:
        return "a whole number"
    if tp is str:
        return "a string"
    if tp is type(None):
        return "null"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(dict.fromkeys(_describe(a) for a in args))
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} ({', '.join(_describe(a) for a in args)})"
    if origin is not None:
        return f"a {origin.__name__}" if hasattr(origin, "__name__") else str(tp)
    return getattr(tp, "__name__", str(tp))


def check_type(cls: type, key: str, value: Any, where: str) -> None:
    """Refuse a value of another type than the class's signature gives ``key`` (null keeps the
    class's default, so it always fits)."""
    tp = option_types(cls).get(key, _UNKNOWN)
    if value is None or _fits(value, tp):
        return
    quoted = " (quoted, so a string)" if isinstance(value, str) and value.lower() in (
        "true", "false") else ""
    raise UserError(f"optimizer {cls.__name__}: {where} must be {_describe(tp)}, got "
                    f"{value!r}{quoted}")


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
                             or not math.isfinite(clip) or not clip >= 0):
        raise UserError(f"optimizer.grad_clip must be a finite number >= 0 or null, got {clip!r}")
    modules = cfg.get("modules") or {}
    if not isinstance(modules, Mapping):
        raise UserError(f"optimizer.modules must map roles to options, e.g. {{D: {{betas: "
                        f"[0.0, 0.9]}}}}, got {modules!r}")
    for role in ["model", *modules.keys()]:
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


@cache
def _distributions() -> Mapping[str, list[str]]:
    """Top-level module -> distributions, read once per process: it reads every installed
    package's file list, seconds that each run would otherwise add to its overhead."""
    return importlib.metadata.packages_distributions()


def describe(cfg: Mapping[str, Any]) -> dict[str, str | None]:
    """The optimiser's class, and the package (with its version) it came from, for the record."""
    cls = optimizer_class(cfg)
    top = cls.__module__.split(".")[0]
    dists = _distributions().get(top, [])
    package = dists[0] if dists else top
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(importlib.import_module(top), "__version__", None)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "package": package,
            "version": version}
