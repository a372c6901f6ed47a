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

from .identity import check_lr
from .routed import Routed, check_rule, route, tensors_of

# Keys of an optimizer config that the runner uses itself (not passed to the constructor):
# the class, the base lr (schedules scale it), global-norm clipping (wins over the task's when
# set; 0 turns clipping off) and per-role overrides, e.g. {D: {betas: [0.9, 0.999]}} for the GAN.
RUNNER_KEYS = {"_target_", "lr", "grad_clip", "modules"}
# Keys of a route of a Routed optimiser that are not its class's own: its rule, its lr as a
# multiple of the config's (an lr sweep moves every route together), keys added to each of its
# param groups (e.g. NorMuon's use_muon), and whether it may get no tensor of a model.
ROUTE_KEYS = {"_target_", "params", "lr_scale", "group_options", "optional"}


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


# Packages whose optimisers take ``**kwargs`` and drop what they do not know: a misspelt option
# would do nothing, so their options are checked against the named arguments alone.
SWALLOW_KWARGS = frozenset({"pytorch_optimizer"})


def accepted(cls: type[torch.optim.Optimizer]) -> set[str] | None:
    """The keyword arguments the class's constructor takes besides params and lr; None when it
    takes any (``**kwargs`` handed on to code we cannot see, e.g. a user's composite)."""
    named = _named_options(cls)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in
                    inspect.signature(cls.__init__).parameters.values())
    if takes_any and cls.__module__.split(".")[0] not in SWALLOW_KWARGS:
        return None
    return set(named) - {"params", "lr", "defaults"}


def _named_options(cls: type) -> dict[str, tuple[type, inspect.Parameter]]:
    """Each named constructor argument, with the class whose ``__init__`` declares it (up the
    classes a ``**kwargs`` constructor may hand them to)."""
    out: dict[str, tuple[type, inspect.Parameter]] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())[1:]  # without self
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                out.setdefault(p.name, (klass, p))
        if not any(p.kind is p.VAR_KEYWORD for p in params) or klass is torch.optim.Optimizer:
            break
    return out


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
    own = (modules.get(role) or {})
    return _checked(cls, merged, lambda key: f"optimizer.modules.{role}.{key}" if key in own
                    else f"optimizer.{key}", "the runner's grad_clip and modules")


def _checked(cls: type[torch.optim.Optimizer], options: Mapping[str, Any], where: Any,
             others: str) -> dict[str, Any]:
    """``options`` as constructor arguments of ``cls``: every key one the class takes, every
    value of the type its signature gives (``where(key)`` names the key in messages)."""
    allowed = accepted(cls)
    unknown = [] if allowed is None else sorted(set(options) - allowed)
    if unknown:
        raise UserError(
            f"optimizer {cls.__name__} has no option {', '.join(unknown)}; it accepts "
            f"{', '.join(sorted((allowed or set()) | {'lr'}))} (and {others})")
    for key, value in options.items():
        check_type(cls, key, value, where(key))
    return {k: (tuple(v) if _is_list(v) else v) for k, v in options.items() if v is not None}


# -- option types, from the class's signature --------------------------------------------------
_UNKNOWN = object()  # a type this module cannot check a config value against


def option_types(cls: type[torch.optim.Optimizer]) -> dict[str, Any]:
    """Each constructor argument's type: its annotation where one resolves, else the type of its
    default (a bool default takes bools, a number numbers, ...); _UNKNOWN where neither says."""
    return _option_types(cls)


@cache
def _option_types(cls: type) -> dict[str, Any]:
    hints: dict[type, dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for name, (klass, p) in _named_options(cls).items():
        if klass not in hints:
            try:
                hints[klass] = typing.get_type_hints(klass.__init__)
            except Exception:
                hints[klass] = {}
        if name in hints[klass]:
            out[name] = hints[klass][name]
        elif p.default is not inspect.Parameter.empty and p.default is not None:
            out[name] = _type_of(p.default)
        else:
            out[name] = _UNKNOWN
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
    if optimizer_class(cfg) is Routed:
        for name, spec in routes_of(cfg).items():
            rule = spec.get("params")
            ndim = (rule.get("ndim") if isinstance(rule, Mapping) else None)
            ndim = ndim[0] if isinstance(ndim, Sequence) and ndim else ndim
            shape = (2, 3, 1, 1)[:ndim] if isinstance(ndim, int) and ndim <= 4 else (2, 3)
            _build_route(name, spec, [{"params": [torch.zeros(shape, requires_grad=True)]}],
                         float(cfg["lr"]))
        return
    for role in ["model", *modules.keys()]:
        build_optimizer([torch.zeros(2, 3, requires_grad=True)], cfg, role)


def build_optimizer(params: Iterable[Any], cfg: Mapping[str, Any], role: str = "model",
                    module: torch.nn.Module | None = None) -> torch.optim.Optimizer:
    """The optimiser of ``role`` over ``params``; ``module`` (the role's module) names the
    tensors for a routed optimiser's rules and record."""
    lr = check_lr(cfg["lr"])
    if optimizer_class(cfg) is Routed:
        return _build_routed(params, cfg, role, module, lr)
    return _construct(optimizer_class(cfg), params, lr, kwargs_for(cfg, role))


def _construct(cls: type[torch.optim.Optimizer], params: Iterable[Any], lr: float,
               kwargs: Mapping[str, Any]) -> torch.optim.Optimizer:
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



# -- routed optimisers -------------------------------------------------------------------------
def routes_of(cfg: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A Routed config's routes, their shape checked (each route's options are checked when it
    is built)."""
    routes = cfg.get("routes")
    if not isinstance(routes, Mapping) or not routes or not all(
            isinstance(v, Mapping) for v in routes.values()):
        raise UserError("optimizer.routes must map route names to optimiser configs, e.g. "
                        "{hidden: {_target_: torch.optim.Muon, params: {ndim: 2}}, rest: "
                        f"{{_target_: torch.optim.AdamW}}}}, got {routes!r}")
    extra = sorted(set(cfg) - RUNNER_KEYS - {"routes"})
    if extra:
        raise UserError(f"optimizer {', '.join(extra)}: a routed optimiser's options belong to "
                        f"its routes (optimizer.routes.<name>.{extra[0]})")
    if cfg.get("modules"):
        raise UserError("optimizer.modules: a routed optimiser chooses per role with a route "
                        "rule (params: {role: [D]}), not per-role overrides")
    return {str(k): v for k, v in routes.items()}


def _build_route(name: str, spec: Mapping[str, Any], groups: list[Any],
                 lr: float) -> torch.optim.Optimizer:
    where = f"optimizer.routes.{name}"
    if not spec.get("_target_"):
        raise UserError(f"{where} names no class: set {where}._target_ (e.g. torch.optim.AdamW)")
    cls = optimizer_class(spec)
    if cls is Routed:
        raise UserError(f"{where}._target_ is Routed itself; a route is one optimiser")
    if spec.get("params") is not None:
        check_rule(spec["params"], f"{where}.params")
    scale = spec.get("lr_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not (
            math.isfinite(scale) and scale > 0):
        raise UserError(f"{where}.lr_scale must be a finite number > 0, got {scale!r}")
    extra = spec.get("group_options") or {}
    if not isinstance(extra, Mapping) or "params" in extra:
        raise UserError(f"{where}.group_options must map param-group keys to values (not "
                        f"params), e.g. {{use_muon: true}}, got {extra!r}")
    kwargs = _checked(cls, {k: v for k, v in spec.items() if k not in ROUTE_KEYS},
                      lambda key: f"{where}.{key}", "the route's params, lr_scale, "
                      "group_options and optional")
    groups = [{**g, **extra} for g in groups]
    return _construct(cls, groups, lr * float(scale), kwargs)


def _build_routed(params: Iterable[Any], cfg: Mapping[str, Any], role: str,
                  module: torch.nn.Module | None, lr: float) -> Routed:
    routes = routes_of(cfg)
    for name, spec in routes.items():
        if spec.get("params") is not None:
            check_rule(spec["params"], f"optimizer.routes.{name}.params")
    items: list[dict[str, Any]] = []  # param-group dicts as given; plain tensors in one group
    loose: list[Any] = []
    for g in params:
        if isinstance(g, Mapping):
            items.append({**g, "params": list(g["params"])})
        else:
            loose.append(g)
    if loose:
        items.insert(0, {"params": loose})
    optional = set()
    for name, spec in routes.items():
        flag = spec.get("optional", False)
        if not isinstance(flag, bool):
            raise UserError(f"optimizer.routes.{name}.optional must be true or false, got {flag!r}")
        if flag:
            optional.add(name)
    split = route(tensors_of(items, module, role), {n: s.get("params") for n, s in routes.items()},
                  optional=optional)
    parts = {}
    for name, spec in routes.items():
        if not split[name]:
            continue  # an optional route this role has no tensor for
        chosen = {id(t.param) for t in split[name]}
        groups = [{**g, "params": [p for p in g["params"] if id(p) in chosen]} for g in items]
        parts[name] = _build_route(name, spec, [g for g in groups if g["params"]], lr)
    return Routed(parts, {name: [t.name for t in got] for name, got in split.items()})


def describe(cfg: Mapping[str, Any], optimizers: Mapping[str, torch.optim.Optimizer] | None = None
             ) -> dict[str, Any]:
    """The optimiser's class, and the package (with its version) it came from, for the record;
    for a routed one also each route's, with the tensors it got per role (from ``optimizers``,
    the built optimiser of each role)."""
    out: dict[str, Any] = _provenance(optimizer_class(cfg))
    if optimizer_class(cfg) is Routed:
        out["routes"] = {
            name: {**_provenance(optimizer_class(spec)),
                   "tensors": {role: opt.tensors.get(name, []) for role, opt in
                               (optimizers or {}).items() if isinstance(opt, Routed)}}
            for name, spec in routes_of(cfg).items()}
    return out


def _provenance(cls: type) -> dict[str, str | None]:
    top = cls.__module__.split(".")[0]
    dists = _distributions().get(top, [])
    package = dists[0] if dists else top
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(importlib.import_module(top), "__version__", None)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "package": package,
            "version": version}
