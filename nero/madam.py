"""Madam: multiplicative, per-synapse relative updates (Bernstein et al., 2020), as Nero's paper ran it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from . import _native
from ._base import NeuronOptimizer, check_beta, check_lr, check_positive, dense_grad
from ._functional import madam_update_, state_dtype
from ._native import F32, I64, U8

__all__ = ["Madam"]


class Madam(NeuronOptimizer):
    r"""Madam with the semantics of the Nero paper's ``Madam`` and ``MadamCS`` classes.

    Per element, at step :math:`t`:

    .. math::
        v &\leftarrow \beta v + (1-\beta) g^2, \qquad
        \hat g = \operatorname{clip}\Big(\frac{g}{\sqrt{v/(1-\beta^t)}}, \pm g_{bound}\Big) \\
        p &\leftarrow \operatorname{clip}\big(p \cdot e^{-\eta\,\hat g\,\operatorname{sign}(p)},
                                          \pm p_{max}\big)

    with :math:`p_{max}` = ``p_scale`` times the RMS of the tensor at its first step (state is
    created then, as in the original). Signs never change, so a parameter initialised to exactly
    zero stays zero. With ``constraints=True`` (the ``MadamCS`` of Fig. 2) every tensor with >= 2
    dims is centred and normalised per neuron *after* each update, starting after the first
    update (no projection at construction, unlike Nero); the clamp still uses the bound measured
    on the unprojected weights. The original's unused constant-sum variant (``sum_flag``) is not
    provided. Non-finite gradient entries are skipped with a warning.

    Args:
        params: iterable of parameters or dicts defining parameter groups.
        lr: step size (original default 0.01).
        p_scale: clamp bound as a multiple of the initial RMS (original default 3.0).
        g_bound: clip of the normalised gradient (original default 10.0).
        beta: averaging constant, hard-coded to 0.999 in the original.
        constraints: project neurons after each step (``MadamCS``; original default False).
        fused: float32 CPU tensors through the C++ kernel of :mod:`nero._native` (one pass
            over memory; the default where it builds); False keeps the plain per-tensor path.
            Other tensors always take the plain path.
    """

    _name = "Madam"

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        p_scale: float = 3.0,
        g_bound: float = 10.0,
        beta: float = 0.999,
        constraints: bool = False,
        *,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=check_lr(lr),
            p_scale=check_positive(p_scale, "p_scale"),
            g_bound=check_positive(g_bound, "g_bound"),
            beta=check_beta(beta),
            constraints=bool(constraints),
        )
        self._fused = fused
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_fused", None)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_lr(group["lr"])
        check_beta(group["beta"])
        check_positive(group["p_scale"], "p_scale")
        check_positive(group["g_bound"], "g_bound")

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step; ``closure`` re-evaluates the model and returns the loss."""
        loss = self._closure_loss(closure)
        skipped: list[Tensor] = []
        bad = 0  # non-finite entries counted by the CPU kernel
        last_step = 0
        for group in self.param_groups:
            params = []
            for p in group["params"]:
                if p.grad is None or p.numel() == 0:
                    continue
                dense_grad(p, "Madam")
                state = self.state[p]
                if not state:
                    # Lazily, at the parameter's first step, as in the original.
                    rms = float(p.to(state_dtype(p)).square().mean().sqrt())
                    state["step"] = 0
                    state["max"] = group["p_scale"] * rms
                    state["v"] = torch.zeros_like(p, dtype=state_dtype(p))
                state["step"] += 1
                last_step = max(last_step, state["step"])
                params.append(p)
            if self._fused is not False:
                params, found = self._native_first(group, params, "v")
                bad += found
            skipped += [(~self._plain_update(group, p)).sum() for p in params]
        self._report_nonfinite(torch.stack(skipped).sum() + bad if skipped else bad, last_step)
        return loss

    def _plain_update(self, group: dict[str, Any], p: Tensor) -> Tensor:
        state = self.state[p]
        return madam_update_(
            p,
            p.grad,
            state["v"],
            step=state["step"],
            lr=group["lr"],
            beta=group["beta"],
            g_bound=group["g_bound"],
            max_abs=state["max"],
            constraints=group["constraints"],
        )

    def _native_update(self, lib: Any, group: dict[str, Any], params: list[Tensor]) -> int:
        """Every float32 CPU tensor of the group in one call of the C++ kernel (see _native)."""
        beta = group["beta"]
        grads = [_native.grad_like(p) for p in params]  # alive until the kernel returns
        rows = []
        for p, g in zip(params, grads):
            state = self.state[p]
            rows.append((
                *_native.layout(p), p.data_ptr(), g.data_ptr(), state["v"].data_ptr(),
                1.0 - beta ** state["step"], state["max"], int(group["constraints"] and p.dim() > 1),
            ))
        dtypes = (I64, I64, I64, I64, I64, F32, F32, U8)
        return int(_native.run(
            lib, "madam_step_f32", rows, dtypes, -group["lr"], beta, 1.0 - beta, group["g_bound"]
        ))
