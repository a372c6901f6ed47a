"""One optimiser made of several: each trainable tensor goes, by rule, to exactly one of them.

Muon updates only 2-D hidden weights, and its authors send embeddings, heads, biases and gains to
AdamW; SOAP or NorMuon are meant to be combined the same way. A config with
``_target_: tasks.runner.routed.Routed`` names its parts under ``routes``, each with its own
``_target_``, options and rule (``params``)::

    _target_: tasks.runner.routed.Routed
    lr: 0.02                       # the base lr; each route's is lr * its lr_scale
    routes:
      hidden:
        _target_: torch.optim.Muon
        params: {ndim: 2, not: [{module: [Embedding]}, {last: true}]}
        momentum: 0.95
      rest:                          # no rule: every tensor no other route takes
        _target_: torch.optim.AdamW
        lr_scale: 0.015

A rule holds for a tensor when every key it gives holds (a list means any of its values):
``ndim`` (the tensor's number of dimensions), ``module`` (the class name of the module that owns
it, e.g. ``Embedding``, ``LayerNorm``), ``name`` (shell patterns on its qualified name, e.g.
``decoder.*``), ``role`` (the runner's role: ``model``, or ``G`` and ``D`` for the GAN), ``last``
(the tensors of the last module, in registration order, that owns any: the output layer of a
sequential model) and ``not`` (a rule, or a list of rules none of which may hold). Every tensor
must be taken by exactly one route, and every route must take one unless it says
``optional: true`` (a route for convolution kernels, on an MLP): anything else is an error that
names the tensors or the route, never a silent default. An optional route that gets no tensor
of a role is left out of that role's optimiser.

:class:`Routed` is a plain ``torch.optim.Optimizer``: its ``param_groups`` are the inner
optimisers' own group dicts, so the runner's lr schedule (or a torch ``LRScheduler``) sets the lr
every part steps with, and its ``state_dict`` holds every part's, so a checkpoint resumes all of
them exactly.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from tasks.errors import UserError

RULE_KEYS = ("ndim", "module", "name", "role", "last", "not")


class Routed(torch.optim.Optimizer):
    """Steps, zeroes, saves and loads several optimisers as one.

    ``parts`` maps route names to built optimisers; ``tensors`` (optional) maps each route name
    to the names of the tensors it got, for the run's record.
    """

    def __init__(self, parts: Mapping[str, torch.optim.Optimizer],
                 tensors: Mapping[str, list[str]] | None = None) -> None:
        if not parts:
            raise ValueError("Routed needs at least one optimiser")
        self.parts = dict(parts)
        self.tensors = {name: list(names) for name, names in (tensors or {}).items()}
        params = [p for opt in self.parts.values() for g in opt.param_groups for p in g["params"]]
        super().__init__(params, {})  # torch's own checks: no tensor twice, hooks set up
        self.param_groups = [g for opt in self.parts.values() for g in opt.param_groups]
        self.state = _States(self.parts)  # type: ignore[assignment]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self.parts.values():
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.parts.values():
            opt.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if hasattr(self, "parts") and self.param_groups:  # after construction
            raise TypeError("a Routed optimiser's groups are its parts'; add to a part instead")
        super().add_param_group(param_group)

    def state_dict(self) -> dict[str, Any]:
        return {"routes": {name: opt.state_dict() for name, opt in self.parts.items()}}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        saved = state_dict.get("routes")
        if not isinstance(saved, Mapping) or set(saved) != set(self.parts):
            raise ValueError(f"the saved state has routes {sorted(saved or [])}, this optimiser "
                             f"{sorted(self.parts)}")
        for name, opt in self.parts.items():
            opt.load_state_dict(saved[name])
        # torch's load_state_dict gives each part new group dicts: ours must be those, or an lr
        # set through them (the runner's schedule, an LRScheduler) would no longer reach a part.
        self.param_groups[:] = [g for opt in self.parts.values() for g in opt.param_groups]

    # Schedule-free parts evaluate at other weights than they train at (tasks/runner/loop.py
    # switches any optimiser with train() and eval()).
    def train(self) -> None:
        self._each("train")

    def eval(self) -> None:
        self._each("eval")

    def _each(self, method: str) -> None:
        for opt in self.parts.values():
            switch = getattr(opt, method, None)
            if callable(switch):
                switch()

    def __repr__(self) -> str:
        return f"Routed({', '.join(f'{n}: {type(o).__name__}' for n, o in self.parts.items())})"


class _States(Mapping):
    """The parts' per-tensor states read as one (``opt.state[p]``), without creating entries."""

    def __init__(self, parts: Mapping[str, torch.optim.Optimizer]) -> None:
        self._parts = list(parts.values())

    def __getitem__(self, p: Any) -> Any:
        for opt in self._parts:
            if p in opt.state:
                return opt.state[p]
        raise KeyError(p)

    def __iter__(self) -> Iterator[Any]:
        for opt in self._parts:
            yield from opt.state

    def __len__(self) -> int:
        return sum(len(opt.state) for opt in self._parts)


# -- routing -----------------------------------------------------------------------------------
class Tensor:
    """What a rule can ask about a trainable tensor."""

    def __init__(self, param: torch.Tensor, name: str, module: str, role: str, last: bool) -> None:
        self.param, self.name, self.module, self.role, self.last = param, name, module, role, last


def tensors_of(params: Iterable[Any], module: nn.Module | None, role: str) -> list[Tensor]:
    """The trainable tensors of ``params`` (tensors or param-group dicts), named after
    ``module`` where it is given (else ``param0``, ``param1``, ... in order)."""
    flat: list[torch.Tensor] = []
    for item in params:
        flat += list(item["params"]) if isinstance(item, Mapping) else [item]
    names: dict[int, str] = {}
    owners: dict[int, str] = {}
    last: set[int] = set()
    if module is not None:
        names = {id(p): n for n, p in module.named_parameters()}
        owned = [(m, _own(m)) for m in module.modules()
                 if not isinstance(m, parametrize.ParametrizationList)]
        owned = [(m, ps) for m, ps in owned if ps]
        for m, ps in owned:
            for p in ps:
                owners.setdefault(id(p), _kind(m))
        if owned:
            last = {id(p) for p in owned[-1][1]}
    out = []
    for i, p in enumerate(flat):
        if not p.requires_grad:
            continue
        out.append(Tensor(p, names.get(id(p), f"param{i}"), owners.get(id(p), ""), role,
                          id(p) in last))
    return out


def _own(m: nn.Module) -> list[torch.Tensor]:
    """The tensors ``m`` itself holds: its own, and the originals of its parametrised weights
    (spectral norm keeps them in ``m.parametrizations``)."""
    own = list(m.parameters(recurse=False))
    if parametrize.is_parametrized(m):
        own += [p for plist in m.parametrizations.values() for p in plist.parameters()]
    return own


def _kind(m: nn.Module) -> str:
    """The module's class name; a parametrised module's torch-made class is named for its own."""
    cls = type(m)
    return (cls.__bases__[0] if parametrize.is_parametrized(m) else cls).__name__


def check_rule(rule: Any, where: str) -> None:
    """Refuse a rule with an unknown key or a value of the wrong type, in one line."""
    if not isinstance(rule, Mapping) or not rule:
        raise UserError(f"{where} must be a rule such as {{ndim: 2}} (keys {', '.join(RULE_KEYS)}"
                        f"), got {rule!r}")
    unknown = sorted(set(rule) - set(RULE_KEYS))
    if unknown:
        raise UserError(f"{where} has no key {', '.join(unknown)}; a rule's keys are "
                        f"{', '.join(RULE_KEYS)}")
    for key, value in rule.items():
        here = f"{where}.{key}"
        if key == "not":
            for i, sub in enumerate(_listed(value)):
                check_rule(sub, f"{here}[{i}]" if _is_list(value) else here)
        elif key == "ndim":
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                       for v in _listed(value)):
                raise UserError(f"{here} must be a whole number >= 0 or a list of them, got "
                                f"{value!r}")
        elif key == "last":
            if not isinstance(value, bool):
                raise UserError(f"{here} must be true or false, got {value!r}")
        elif not all(isinstance(v, str) and v for v in _listed(value)):
            raise UserError(f"{here} must be a name or a list of names, got {value!r}")


def matches(rule: Mapping[str, Any], t: Tensor) -> bool:
    for key, value in rule.items():
        if key == "not":
            if any(matches(sub, t) for sub in _listed(value)):
                return False
        elif key == "ndim":
            if t.param.ndim not in _listed(value):
                return False
        elif key == "last":
            if t.last != value:
                return False
        elif key == "name":
            if not any(fnmatch.fnmatchcase(t.name, pattern) for pattern in _listed(value)):
                return False
        elif key == "module":
            if t.module not in _listed(value):
                return False
        elif key == "role" and t.role not in _listed(value):
            return False
    return True


def route(tensors: list[Tensor], rules: Mapping[str, Mapping[str, Any] | None],
          where: str = "optimizer.routes",
          optional: Iterable[str] = ()) -> dict[str, list[Tensor]]:
    """Each route's tensors: those its rule selects, and for the one route without a rule the
    rest. A tensor two rules select, a tensor none takes, and a route that gets no tensor (unless
    it is ``optional``: e.g. convolution kernels, which an MLP has none of) are errors (one line,
    naming them)."""
    optional = set(optional)
    ruled = {name: rule for name, rule in rules.items() if rule is not None}
    rest = [name for name, rule in rules.items() if rule is None]
    if len(rest) > 1:
        raise UserError(f"{where}: {' and '.join(rest)} both have no params rule; only one route "
                        "may take the tensors no other route takes")
    out: dict[str, list[Tensor]] = {name: [] for name in rules}
    for t in tensors:
        taken = [name for name, rule in ruled.items() if matches(rule, t)]
        if len(taken) > 1:
            raise UserError(f"{where}: tensor {t.name} of {t.role} matches the rules of both "
                            f"{taken[0]} and {taken[1]}; make the rules exclusive (a not: key)")
        if not taken and not rest:
            raise UserError(f"{where}: tensor {t.name} of {t.role} ({t.module or 'no module'}, "
                            f"{t.param.ndim}-D) matches no route's rule; add a route without "
                            "params for the rest")
        out[(taken or rest)[0]].append(t)
    for name, got in out.items():
        if not got and name not in optional:
            rule = ruled.get(name)
            what = f"its rule {dict(rule)!r}" if rule is not None else "it takes the rest"
            raise UserError(f"{where}.{name} gets no tensor of {tensors[0].role if tensors else 'the model'}"
                            f" ({what}); correct the rule or remove the route")
    return out


def _listed(value: Any) -> list[Any]:
    return list(value) if _is_list(value) else [value]


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)
