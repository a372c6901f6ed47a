"""Nero: the neuronal rotator (Liu, Bernstein, Meister & Yue, ICML 2021)."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from . import _native
from ._base import NeuronOptimizer, check_beta, check_lr, check_positive
from ._functional import (
    fan_in,
    nero_flat_update_,
    nero_rows_update_,
    nero_update_,
    neuron_norm,
    project_,
    rows_view,
    state_dtype,
    units,
)
from ._native import F32, I64, U8

__all__ = ["Nero", "nero", "CompiledCache"]

# Where the per-tensor scale of a tensor whose initial mean |p| (or mean row norm) is exactly
# zero comes from: the authors' code uses 0.01, the paper's "default sigma_b for zero biases".
ZERO_INIT_SCALE = 0.01


class Nero(NeuronOptimizer):
    r"""Nero, exactly as the paper's experiments ran it, as a drop-in ``torch.optim`` optimiser.

    For every neuron :math:`w` (a slice along dim 0 of a tensor with >= 2 dims) with gradient
    :math:`g`, at step :math:`t`:

    .. math::
        \bar g^2 &\leftarrow \beta\,\bar g^2 + (1-\beta)\,\|g\|_2^2 \\
        w &\leftarrow w - \eta\,s\,\frac{g}{\sqrt{\bar g^2 / (1-\beta^t)}} \\
        w &\leftarrow w - \operatorname{mean}(w) \quad\text{(mean constraint)}\\
        w &\leftarrow w / \|w\|_2 \quad\text{(norm constraint)}

    Every element of a 1-D tensor (biases, norm-layer gains) is a unit of its own, updated the same
    way without the projection. The per-tensor scale :math:`s` is measured once, at construction:

    * 1 for tensors with >= 2 dims under the norm constraint (rows have unit norm);
    * the mean initial row norm for tensors with >= 2 dims without it (frozen, as ``Nero_abl`` in
      the authors' code; Algorithm 1 would use each neuron's current norm);
    * the mean initial :math:`|p|` of each 1-D tensor (the paper's :math:`\sigma_b`), or
      ``bias_scale`` where given;
    * 0.01 wherever that mean is exactly zero (e.g. zero-initialised biases).

    **Construction mutates the parameters**: with the constraints on, every tensor with >= 2 dims
    is projected to zero-mean, unit-norm neurons, replacing the scale and mean of its
    initialisation, as in the paper's experiments. So build Nero after initialising the model,
    or after loading pretrained weights to fine-tune. To resume a run exactly, build the model
    and Nero first, then load both state dicts, the model's first: built after loading, Nero
    would project the loaded weights once more, which moves them by float32 rounding (up to
    ~4e-7), and loaded after Nero's, the weights would take the plain path once.

    Deviations from the authors' code, none of which changes a result of theirs: a neuron whose
    gradient norm is non-finite is skipped for that step with a warning (their code would freeze it
    for good); fan-in-1 and all-equal neurons are kept finite (see :func:`nero.project_`); a unit
    whose running average underflowed to zero gets no update instead of an infinite one; the
    scale is a float computed without autograd; ``beta`` lives in the param groups, so it is
    saved in ``state_dict()`` and may differ between groups.

    Args:
        params: iterable of parameters or dicts defining parameter groups. A group may set
            ``constraints`` (both switches), ``mean_constraint``, ``norm_constraint``, ``lr``,
            ``beta`` and ``bias_scale``.
        lr: step size eta, the relative size of each neuron's update (paper default 0.01).
        beta: averaging constant of the squared gradient norms (paper default 0.999).
        constraints: project neurons to zero mean and unit norm (paper default True).
        mean_constraint: the "balanced excitation and inhibition" switch of Fig. 1; defaults to
            ``constraints``.
        norm_constraint: the "fixed norm" switch of Fig. 1; defaults to ``constraints``.
        bias_scale: a fixed scale for every 1-D tensor instead of its mean initial |p|
            ("Nero tuned" of Section 5.6 uses 1.0). None keeps the paper's rule.
        fused: take the fast path: float32 CPU tensors through a C++ kernel that reads each
            neuron once and writes it once (built with the system compiler on first use, see
            :mod:`nero._native`), CUDA tensors through one compiled graph per group
            (torch.compile with Triton). None (default) uses it wherever it is available;
            False keeps the plain per-tensor reference path. Both agree to float32 rounding.
            :func:`nero` picks the path per tensor.
    """

    _name = "Nero"

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        beta: float = 0.999,
        constraints: bool = True,
        *,
        mean_constraint: bool | None = None,
        norm_constraint: bool | None = None,
        bias_scale: float | None = None,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=check_lr(lr),
            beta=check_beta(beta),
            mean_constraint=bool(constraints if mean_constraint is None else mean_constraint),
            norm_constraint=bool(constraints if norm_constraint is None else norm_constraint),
            bias_scale=check_positive(bias_scale, "bias_scale", allow_none=True),
        )
        self._fused = fused
        self._cache = CompiledCache()  # runtime only, never in state_dict()
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        group = dict(param_group)
        if "constraints" in group:
            both = bool(group.pop("constraints"))
            group.setdefault("mean_constraint", both)
            group.setdefault("norm_constraint", both)
        super().add_param_group(group)
        group = self.param_groups[-1]
        check_lr(group["lr"])
        check_beta(group["beta"])
        check_positive(group["bias_scale"], "bias_scale", allow_none=True)
        for p in group["params"]:
            self._init_param(p, group)

    @torch.no_grad()
    def _init_param(self, p: Tensor, group: dict[str, Any]) -> None:
        if p.dim() > 1:
            project_(p, mean=group["mean_constraint"], norm=group["norm_constraint"])
        state = self.state[p]
        state["step"] = 0
        state["v"] = torch.zeros(units(p), dtype=state_dtype(p), device=p.device)
        state["scale"] = _initial_scale(p, group)
        self._cache.wrote(p)

    def state_dict(self) -> dict[str, Any]:
        """As ``Optimizer.state_dict``, plus a fingerprint of each weight the compiled graph
        knows as Nero's own (``own_weights``), so that a resumed run gives it the same path at
        its next step as the uninterrupted run: loading the model's weights marks them as
        changed elsewhere, which would send them through the plain path once and round them
        differently (by an ulp) from then on."""
        saved = super().state_dict()
        params = [p for group in self.param_groups for p in group["params"]]
        own = {i: _fingerprint(p) for i, p in enumerate(params)
               if p.dim() > 1 and _compiles(p) and self._cache.unchanged(p)}
        if own:
            saved["own_weights"] = own
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ``Optimizer.load_state_dict``; load the model's weights first: a weight that then
        equals the one the state dict's run left is known as Nero's own again."""
        super().load_state_dict(state_dict)
        params = [p for group in self.param_groups for p in group["params"]]
        for i, fingerprint in (state_dict.get("own_weights") or {}).items():
            p = params[int(i)]
            if _compiles(p) and _fingerprint(p) == tuple(fingerprint):
                self._cache.wrote(p)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_fused", self.__dict__.pop("_fused_request", None))
        self.__dict__.setdefault("_cache", CompiledCache())
        for key in ("_fused_broken", "_versions", "_flat_scales"):  # pickled by older releases
            self.__dict__.pop(key, None)
        for group in self.param_groups:
            group.setdefault("bias_scale", None)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step; ``closure`` re-evaluates the model and returns the loss."""
        loss = self._closure_loss(closure)
        bad: Tensor | int = 0  # units whose gradient was not finite, skipped
        last_step = 0
        for group in self.param_groups:
            params = self._stepped_params(group, self._init_param)
            states = [self.state[p] for p in params]
            last_step = max([last_step] + [s["step"] for s in states])
            bad = bad + nero(
                params,
                [p.grad for p in params],
                [s["v"] for s in states],
                [s["step"] for s in states],
                [s["scale"] for s in states],
                lr=group["lr"],
                beta=group["beta"],
                mean_constraint=group["mean_constraint"],
                norm_constraint=group["norm_constraint"],
                fused=self._fused,
                cache=self._cache,
            )
        self._report_nonfinite(bad, last_step)
        return loss


@dataclass
class CompiledCache:
    """What the compiled path of :func:`nero` keeps between steps (never part of a state dict).

    ``versions`` holds each weight's version counter as Nero last left it, so that a weight
    changed elsewhere since (a loaded checkpoint, a manual edit) is recognised: it takes the
    plain path once, whose two-pass projection is exact for any input, before the closed-form
    compiled update (exact for the nearly balanced rows it then sees) takes over again.
    """

    versions: dict[Tensor, int] = field(default_factory=dict)
    flat_scales: dict[tuple, Tensor] = field(default_factory=dict)  # per set of 1-D tensors
    broken: bool = False  # compilation failed once: stay on the plain path

    def wrote(self, p: Tensor) -> None:
        self.versions[p] = p._version

    def unchanged(self, p: Tensor) -> bool:
        return self.versions.get(p) == p._version


class _Hyper(NamedTuple):
    lr: float
    beta: float
    mean: bool
    norm: bool


# One tensor's part of a step: (param, grad, v, step, scale).
_Item = tuple[Tensor, Tensor, Tensor, int, float]


@torch.no_grad()
def nero(
    params: list[Tensor],
    grads: list[Tensor],
    vs: list[Tensor],
    steps: list[int],
    scales: list[float],
    *,
    lr: float,
    beta: float,
    mean_constraint: bool,
    norm_constraint: bool,
    fused: bool | None = None,
    cache: CompiledCache | None = None,
) -> Tensor | int:
    """Nero's step on a list of tensors, the functional form of :class:`Nero` (as torch's
    ``adam`` is of ``Adam``); it picks the path for each tensor.

    ``vs`` are the running averages (one float32 entry per unit, updated in place), ``steps``
    each tensor's 1-based update count, ``scales`` each tensor's fixed scale. With ``fused``
    (None: wherever available) float32 CPU tensors take the C++ kernel of :mod:`nero._native`
    and accelerator tensors the compiled graph; everything else, and everything with
    ``fused=False``, takes the plain path :func:`nero._functional.nero_update_`. Pass the same
    ``cache`` at every step: without it, weights cannot be known to be Nero's own and skip the
    compiled graph. Returns the number of units skipped for a non-finite gradient (a tensor on
    the parameters' device, or an int).
    """
    if not params:
        return 0
    hyper = _Hyper(lr, beta, mean_constraint, norm_constraint)
    todo: list[_Item] = list(zip(params, grads, vs, steps, scales))
    bad: Tensor | int = 0
    sq_norms: list[Tensor] = []
    if fused if fused is not None else _fast_path_available(params[0].device):
        taken, todo, lib = _native.take(todo, n_state=1)
        if taken:
            bad = _native_nero(lib, taken, hyper)
        todo, sq_norms = _compiled_nero(todo, hyper, cache if cache is not None else CompiledCache())
    sq_norms += [_single_tensor_nero(item, hyper) for item in todo]
    if sq_norms:
        bad = (~torch.isfinite(torch.cat([s.reshape(-1) for s in sq_norms]))).sum() + bad
    return bad


def _compiles(p: Tensor) -> bool:
    """Whether ``p`` is one the compiled graph takes (when it is Nero's own)."""
    return p.device.type != "cpu" or _COMPILE_ON_CPU


@torch.no_grad()
def _fingerprint(p: Tensor) -> tuple[float, float, float]:
    """Float64 sums of p, p^2 and p weighted by position: equal for equal tensors on one
    device; a weight edited elsewhere changes them (a collision would cost exactness only)."""
    x = p.detach().double().reshape(-1)
    ramp = torch.arange(1, x.numel() + 1, device=x.device, dtype=torch.float64)
    return tuple(torch.stack([x.sum(), x.square().sum(), (x * ramp).sum()]).tolist())


def _fast_path_available(device: torch.device) -> bool:
    return device.type == "cpu" or (
        device.type == "cuda" and importlib.util.find_spec("triton") is not None
    )


def _single_tensor_nero(item: _Item, hyper: _Hyper) -> Tensor:
    p, g, v, step, scale = item
    return nero_update_(
        p, g, v, step=step, lr=hyper.lr, beta=hyper.beta, scale=scale, mean=hyper.mean,
        norm=hyper.norm,
    )


def _native_nero(lib: Any, items: list[_Item], hyper: _Hyper) -> int:
    """Every float32 CPU tensor in one call of the C++ kernel; returns its non-finite count."""
    grads = [_native.grad_like(p, g) for p, g, *_ in items]  # alive until the kernel returns
    rows = []
    for (p, _, v, step, scale), g in zip(items, grads):
        weight = p.dim() > 1
        centre, normalise = weight and hyper.mean, weight and hyper.norm
        rows.append((
            *_native.layout(p), p.data_ptr(), g.data_ptr(), v.data_ptr(),
            -hyper.lr * scale, 1.0 - hyper.beta**step, int(centre) | 2 * int(normalise),
        ))
    dtypes = (I64, I64, I64, I64, I64, F32, F32, U8)
    return int(_native.run(lib, "nero_step_f32", rows, dtypes, hyper.beta, 1.0 - hyper.beta))


def _compiled_nero(
    items: list[_Item], hyper: _Hyper, cache: CompiledCache
) -> tuple[list[_Item], list[Tensor]]:
    """Accelerator tensors through the compiled graph: weights in one graph call, 1-D tensors
    through one flat buffer, the rest (changed elsewhere, no row view) the plain path.

    Returns the items left for the caller (CPU tensors) and the squared gradient norms.
    """
    mine = [it for it in items if it[0].device.type != "cpu" or _COMPILE_ON_CPU]
    if not mine or cache.broken:
        return items, []
    weights, flat, plain = [], [], []
    for it in mine:
        p = it[0]
        if p.dim() > 1 and cache.unchanged(p) and rows_view(p) is not None:
            weights.append(it)
        elif p.dim() <= 1 and p.is_contiguous():
            flat.append(it)
        else:
            plain.append(it)
    if len({(it[0].dtype, it[0].device) for it in flat}) > 1:
        plain, flat = plain + flat, []
    out: list[Tensor] = []
    try:
        if weights:
            out += _compiled_weights(weights, hyper)
        if flat:
            out.append(_flat_vectors(flat, hyper, cache))
    except Exception as err:
        warnings.warn(
            f"Nero: the fused kernel could not be compiled ({type(err).__name__}: "
            f"{str(err)[:200]}); falling back to the plain per-tensor path.",
            RuntimeWarning,
            stacklevel=4,
        )
        cache.broken = True
        out, plain = [], mine
    out += [_single_tensor_nero(it, hyper) for it in plain]
    for it in mine:
        cache.wrote(it[0])
    done = {id(it[0]) for it in mine}
    return [it for it in items if id(it[0]) not in done], out


def _compiled_weights(items: list[_Item], hyper: _Hyper) -> list[Tensor]:
    rows_p, rows_g, rows_v, lr_scales, corrections, centers, normalizes = ([] for _ in range(7))
    for p, g, v, step, scale in items:
        if g.stride() != p.stride():
            g = torch.empty_like(p).copy_(g)
        rows_p.append(rows_view(p))
        rows_g.append(rows_view(g))
        rows_v.append(v.view(-1, 1))
        lr_scales.append(hyper.lr * scale)
        corrections.append(1.0 - hyper.beta**step)
        centers.append(hyper.mean and (fan_in(p) > 1 or not hyper.norm))
        normalizes.append(hyper.norm)
    return _compiled_kernel()(
        rows_p, rows_g, rows_v, lr_scales, hyper.beta, corrections, tuple(centers),
        tuple(normalizes),
    )


def _flat_vectors(items: list[_Item], hyper: _Hyper, cache: CompiledCache) -> Tensor:
    params = [it[0] for it in items]
    device, dtype = params[0].device, items[0][2].dtype
    key = tuple((id(p), p.numel(), scale) for p, *_, scale in items)
    scales = cache.flat_scales.get(key)
    if scales is None:
        if len(cache.flat_scales) > 64:  # param groups were rebuilt many times: start afresh
            cache.flat_scales.clear()
        scales = torch.cat([torch.full((p.numel(),), s, dtype=dtype) for p, *_, s in items])
        scales = cache.flat_scales[key] = scales.to(device)
    steps = {step for *_, step, _ in items}
    if len(steps) == 1:
        corrections: Tensor | float = 1.0 - hyper.beta ** steps.pop()
    else:
        corrections = torch.cat([
            torch.full((p.numel(),), 1.0 - hyper.beta**step, dtype=dtype)
            for p, _, _, step, _ in items
        ]).to(device)
    return nero_flat_update_(
        params, [it[1] for it in items], [it[2] for it in items], scales * hyper.lr, hyper.beta,
        corrections,
    )


@torch.no_grad()
def _initial_scale(p: Tensor, group: dict[str, Any]) -> float:
    if p.dim() > 1:
        if group["norm_constraint"]:
            return 1.0
        value = float(neuron_norm(p.to(state_dtype(p))).mean())
    else:
        if group["bias_scale"] is not None:
            return float(group["bias_scale"])
        value = float(p.to(state_dtype(p)).abs().mean())
    return value if value != 0.0 else ZERO_INIT_SCALE


def _group_kernel(
    rows_p: list[Tensor],
    rows_g: list[Tensor],
    rows_v: list[Tensor],
    lr_scales: list[float],
    beta: float,
    corrections: list[float],
    centers: tuple[bool, ...],
    normalizes: tuple[bool, ...],
) -> list[Tensor]:
    return [
        nero_rows_update_(p, g, v, s, beta, c, ce, no)
        for p, g, v, s, c, ce, no in zip(
            rows_p, rows_g, rows_v, lr_scales, corrections, centers, normalizes
        )
    ]


# Compiling a big model's update graph for the CPU takes minutes, so CPU tensors the C++ kernel
# cannot take use the plain path; the tests switch this on to exercise the compiled graph.
_COMPILE_ON_CPU = False

_KERNEL: Callable[..., list[Tensor]] | None = None


def _compiled_kernel() -> Callable[..., list[Tensor]]:
    # One graph per parameter group (compiled once, shapes dynamic): a single call per step
    # instead of one per tensor, which is what makes it fast for models with many tensors.
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = torch.compile(_group_kernel, dynamic=True)
    return _KERNEL
