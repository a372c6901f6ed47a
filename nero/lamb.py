"""LAMB as the Nero paper ran it: the cybertronai/pytorch-lamb variant."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from . import _native
from ._base import NeuronOptimizer, check_beta, check_lr, check_positive, dense_grad
from ._functional import lamb_update_, project_, state_dtype
from ._native import I64, U8

__all__ = ["LAMB"]


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

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step; ``closure`` re-evaluates the model and returns the loss."""
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            params = []
            for p in group["params"]:
                if p.grad is None or p.numel() == 0:
                    continue
                dense_grad(p, "LAMB")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, dtype=state_dtype(p))
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=state_dtype(p))
                state["step"] += 1
                params.append(p)
            if self._fused is not False:
                params, _ = self._native_first(group, params, "exp_avg", "exp_avg_sq")
            if not params:
                continue
            if self._use_foreach(params):
                self._foreach_group(group, params)
            else:
                for p in params:
                    self._plain_update(group, p)
        return loss

    def _use_foreach(self, params: list[Tensor]) -> bool:
        if self._foreach is not None:
            return self._foreach
        # Low-precision parameters keep fp32 state, which the multi-tensor kernels cannot mix.
        first = params[0]
        return all(p.device == first.device and p.dtype == torch.float32 for p in params)

    def _plain_update(self, group: dict[str, Any], p: Tensor) -> None:
        state = self.state[p]
        beta1, beta2 = group["betas"]
        lamb_update_(
            p,
            p.grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            step=state["step"],
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            max_weight_norm=group["max_weight_norm"],
            bias_correction=group["bias_correction"],
            constraints=group["constraints"],
        )

    def _native_update(self, lib: Any, group: dict[str, Any], params: list[Tensor]) -> None:
        """Every float32 CPU tensor of the group in one call of the C++ kernel (see _native)."""
        beta1, beta2 = group["betas"]
        steps = {self.state[p]["step"] for p in params}
        if group["bias_correction"] and len(steps) > 1:  # one correction per call: split by step
            for step in sorted(steps):
                self._native_update(lib, group, [p for p in params if self.state[p]["step"] == step])
            return
        step = steps.pop()
        c1, c2 = (1.0 - beta1**step, 1.0 - beta2**step) if group["bias_correction"] else (1.0, 1.0)
        grads = [_native.grad_like(p) for p in params]  # alive until the kernel returns
        rows = [
            (*_native.layout(p), p.data_ptr(), g.data_ptr(), self.state[p]["exp_avg"].data_ptr(),
             self.state[p]["exp_avg_sq"].data_ptr(), int(group["constraints"] and p.dim() > 1))
            for p, g in zip(params, grads)
        ]
        scratch = torch.empty(2 * len(params) * torch.get_num_threads(), dtype=torch.float64)
        _native.run(
            lib, "lamb_step_f32", rows, (I64, I64, I64, I64, I64, I64, U8),
            -group["lr"], beta1, 1.0 - beta1, beta2, 1.0 - beta2, c1, c2, group["eps"],
            group["weight_decay"], group["max_weight_norm"], scratch.data_ptr(),
        )

    def _foreach_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        beta1, beta2 = group["betas"]
        grads = [p.grad for p in params]
        ms = [self.state[p]["exp_avg"] for p in params]
        vs = [self.state[p]["exp_avg_sq"] for p in params]
        torch._foreach_mul_(ms, beta1)
        torch._foreach_add_(ms, grads, alpha=1.0 - beta1)
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, grads, grads, value=1.0 - beta2)
        if group["bias_correction"]:
            steps = [self.state[p]["step"] for p in params]
            m_hat = torch._foreach_div(ms, [1.0 - beta1**s for s in steps])
            v_hat = torch._foreach_div(vs, [1.0 - beta2**s for s in steps])
        else:
            m_hat, v_hat = ms, vs
        updates = torch._foreach_sqrt(v_hat)
        torch._foreach_add_(updates, group["eps"])
        updates = torch._foreach_div(m_hat, updates)
        if group["weight_decay"] != 0:
            torch._foreach_add_(updates, params, alpha=group["weight_decay"])
        weight_norms = torch.stack(torch._foreach_norm(params)).clamp_(0.0, group["max_weight_norm"])
        update_norms = torch.stack(torch._foreach_norm(updates))
        trust = torch.where(
            (weight_norms > 0) & (update_norms > 0), weight_norms / update_norms, 1.0
        )
        torch._foreach_mul_(updates, list(trust.unbind()))
        torch._foreach_add_(params, updates, alpha=-group["lr"])
        if group["constraints"]:
            for p in params:
                if p.dim() > 1:
                    project_(p)
