"""LAMB as the Nero paper ran it: the cybertronai/pytorch-lamb variant."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from . import _native
from ._base import NeuronOptimizer, check_beta, check_lr, check_positive
from ._functional import lamb_update_, project_, state_dtype
from ._native import I64, U8

__all__ = ["LAMB", "lamb"]


class LAMB(NeuronOptimizer):
    r"""LAMB (You et al., 2020) with the choices of the implementation the paper used.

    Per tensor :math:`W` with gradient :math:`g`:

    .. math::
        m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
        u &= \frac{m}{\sqrt{v} + \epsilon} + \lambda W, \qquad
        r = \frac{\min(\|W\|_2, 10)}{\|u\|_2} \;(\text{1 if either norm is 0}) \\
        W &\leftarrow W - \eta\, r\, u

    The named choices: **no bias correction** (``bias_correction=False``; it is commented out in
    the original), ``eps`` 1e-6 added outside the square root, the weight norm **clamped at 10**
    (``max_weight_norm``), the trust ratio always applied (also without weight decay) and set to 1
    for zero norms, no internal gradient clipping. With ``constraints=True`` (the ``LambCS`` of
    Fig. 2) every tensor with >= 2 dims is centred and normalised per neuron after each update,
    starting after the first (no projection at construction).

    The default betas follow the authors' two classes: (0.9, 0.999) for ``Lamb`` and (0.0, 0.999)
    for ``LambCS`` (``constraints=True``). The paper's experiments mostly pass (0.0, 0.999), which
    the suite's configs set explicitly (see ``conf/optimizer/lamb.yaml``).
    Non-finite gradients follow the original: they reach the weights, and the training loss
    diverges visibly.

    Args:
        params: iterable of parameters or dicts defining parameter groups.
        lr: step size (original default 1e-3).
        betas: coefficients of the running averages; default (0.9, 0.999), the original ``Lamb``'s,
            or (0.0, 0.999) with ``constraints``, the original ``LambCS``'s.
        eps: added to the denominator (original default 1e-6).
        weight_decay: decoupled into the update direction (original default 0; never used).
        constraints: project neurons after each step (``LambCS``).
        max_weight_norm: clamp of the weight norm in the trust ratio (original: 10).
        bias_correction: Adam-style bias correction of m and v (original: off).
        foreach: use multi-tensor kernels for what the C++ kernel does not take (default: when
            all those tensors of a group share a device and are float32).
        fused: float32 CPU tensors through the C++ kernel of :mod:`nero._native` (two passes
            over memory; the default where it builds); False leaves them to ``foreach``.
            :func:`lamb` picks the path per tensor.
    """

    _name = "LAMB"

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] | None = None,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        constraints: bool = False,
        *,
        max_weight_norm: float = 10.0,
        bias_correction: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        if betas is None:
            betas = (0.0, 0.999) if constraints else (0.9, 0.999)
        defaults = dict(
            lr=check_lr(lr),
            betas=(check_beta(betas[0], "beta1"), check_beta(betas[1], "beta2")),
            eps=check_positive(eps, "eps"),
            weight_decay=float(weight_decay),
            constraints=bool(constraints),
            max_weight_norm=check_positive(max_weight_norm, "max_weight_norm"),
            bias_correction=bool(bias_correction),
        )
        if weight_decay < 0:
            raise ValueError(f"invalid weight_decay {weight_decay!r}: it must be >= 0")
        self._foreach = foreach
        self._fused = fused
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_lr(group["lr"])
        check_beta(group["betas"][0], "beta1")
        check_beta(group["betas"][1], "beta2")

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_foreach", None)
        self.__dict__.setdefault("_fused", None)

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> None:
        zeros = torch.zeros_like(p, dtype=state_dtype(p))
        self.state[p].update(step=0, exp_avg=zeros, exp_avg_sq=zeros.clone())

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step; ``closure`` re-evaluates the model and returns the loss."""
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            params = self._stepped_params(group, self._init_state)
            states = [self.state[p] for p in params]
            beta1, beta2 = group["betas"]
            lamb(
                params,
                [p.grad for p in params],
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [s["step"] for s in states],
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                max_weight_norm=group["max_weight_norm"],
                bias_correction=group["bias_correction"],
                constraints=group["constraints"],
                foreach=self._foreach,
                fused=self._fused,
            )
        return loss


class _Hyper(NamedTuple):
    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    max_weight_norm: float
    bias_correction: bool
    constraints: bool


# One tensor's part of a step: (param, grad, exp_avg, exp_avg_sq, step).
_Item = tuple[Tensor, Tensor, Tensor, Tensor, int]


@torch.no_grad()
def lamb(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    max_weight_norm: float,
    bias_correction: bool,
    constraints: bool,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> None:
    """LAMB's step on a list of tensors, the functional form of :class:`LAMB`; it picks the
    path for each tensor.

    ``exp_avgs`` and ``exp_avg_sqs`` are updated in place; ``steps`` are each tensor's 1-based
    update counts. Unless ``fused`` is False, float32 CPU tensors take the C++ kernel of
    :mod:`nero._native`; the rest take the multi-tensor path (``foreach``; None: where they
    share a device and are float32) or the plain path :func:`nero._functional.lamb_update_`.
    """
    hyper = _Hyper(
        lr, beta1, beta2, eps, weight_decay, max_weight_norm, bias_correction, constraints
    )
    todo: list[_Item] = list(zip(params, grads, exp_avgs, exp_avg_sqs, steps))
    if fused is not False:
        taken, todo, lib = _native.take(todo, n_state=2)
        if taken:
            _native_lamb(lib, taken, hyper)
    if not todo:
        return
    if foreach if foreach is not None else _foreach_fits([it[0] for it in todo]):
        _multi_tensor_lamb(todo, hyper)
    else:
        for item in todo:
            _single_tensor_lamb(item, hyper)


def _foreach_fits(params: list[Tensor]) -> bool:
    # Low-precision parameters keep fp32 state, which the multi-tensor kernels cannot mix.
    first = params[0]
    return all(p.device == first.device and p.dtype == torch.float32 for p in params)


def _single_tensor_lamb(item: _Item, hyper: _Hyper) -> None:
    p, g, exp_avg, exp_avg_sq, step = item
    lamb_update_(
        p, g, exp_avg, exp_avg_sq, step=step, lr=hyper.lr, beta1=hyper.beta1, beta2=hyper.beta2,
        eps=hyper.eps, weight_decay=hyper.weight_decay, max_weight_norm=hyper.max_weight_norm,
        bias_correction=hyper.bias_correction, constraints=hyper.constraints,
    )


def _native_lamb(lib: Any, items: list[_Item], hyper: _Hyper) -> None:
    """Every float32 CPU tensor in one call of the C++ kernel (one per step count where the
    bias correction is on: the kernel takes one correction per call)."""
    steps = {it[4] for it in items}
    if hyper.bias_correction and len(steps) > 1:
        for step in sorted(steps):
            _native_lamb(lib, [it for it in items if it[4] == step], hyper)
        return
    step = steps.pop()
    beta1, beta2 = hyper.beta1, hyper.beta2
    c1, c2 = (1.0 - beta1**step, 1.0 - beta2**step) if hyper.bias_correction else (1.0, 1.0)
    grads = [_native.grad_like(p, g) for p, g, *_ in items]  # alive until the kernel returns
    rows = [
        (*_native.layout(p), p.data_ptr(), g.data_ptr(), m.data_ptr(), v.data_ptr(),
         int(hyper.constraints and p.dim() > 1))
        for (p, _, m, v, _), g in zip(items, grads)
    ]
    scratch = torch.empty(2 * len(items) * torch.get_num_threads(), dtype=torch.float64)
    _native.run(
        lib, "lamb_step_f32", rows, (I64, I64, I64, I64, I64, I64, U8),
        -hyper.lr, beta1, 1.0 - beta1, beta2, 1.0 - beta2, c1, c2, hyper.eps,
        hyper.weight_decay, hyper.max_weight_norm, scratch.data_ptr(),
    )


def _multi_tensor_lamb(items: list[_Item], hyper: _Hyper) -> None:
    params, grads, ms, vs, steps = (list(column) for column in zip(*items))
    beta1, beta2 = hyper.beta1, hyper.beta2
    torch._foreach_mul_(ms, beta1)
    torch._foreach_add_(ms, grads, alpha=1.0 - beta1)
    torch._foreach_mul_(vs, beta2)
    torch._foreach_addcmul_(vs, grads, grads, value=1.0 - beta2)
    if hyper.bias_correction:
        m_hat = torch._foreach_div(ms, [1.0 - beta1**s for s in steps])
        v_hat = torch._foreach_div(vs, [1.0 - beta2**s for s in steps])
    else:
        m_hat, v_hat = ms, vs
    updates = torch._foreach_sqrt(v_hat)
    torch._foreach_add_(updates, hyper.eps)
    updates = torch._foreach_div(m_hat, updates)
    if hyper.weight_decay != 0:
        torch._foreach_add_(updates, params, alpha=hyper.weight_decay)
    weight_norms = torch.stack(torch._foreach_norm(params)).clamp_(0.0, hyper.max_weight_norm)
    update_norms = torch.stack(torch._foreach_norm(updates))
    trust = torch.where(
        (weight_norms > 0) & (update_norms > 0), weight_norms / update_norms, 1.0
    )
    torch._foreach_mul_(updates, list(trust.unbind()))
    torch._foreach_add_(params, updates, alpha=-hyper.lr)
    if hyper.constraints:
        for p in params:
            if p.dim() > 1:
                project_(p)
