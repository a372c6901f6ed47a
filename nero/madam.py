"""Madam: multiplicative, per-synapse relative updates (Bernstein et al., 2020), as Nero's paper ran it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from . import _native
from ._base import NeuronOptimizer, check_beta, check_lr, check_positive
from ._functional import madam_update_, state_dtype
from ._native import F32, I64, U8

__all__ = ["Madam", "madam"]


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
            Other tensors always take the plain path. :func:`madam` picks the path per tensor.
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

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> None:
        # Lazily, at the parameter's first step, as in the original.
        rms = float(p.to(state_dtype(p)).square().mean().sqrt())
        self.state[p].update(
            step=0, max=group["p_scale"] * rms, v=torch.zeros_like(p, dtype=state_dtype(p))
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step; ``closure`` re-evaluates the model and returns the loss."""
        loss = self._closure_loss(closure)
        bad: Tensor | int = 0  # non-finite gradient entries, skipped
        last_step = 0
        for group in self.param_groups:
            params = self._stepped_params(group, self._init_state)
            states = [self.state[p] for p in params]
            last_step = max([last_step] + [s["step"] for s in states])
            bad = bad + madam(
                params,
                [p.grad for p in params],
                [s["v"] for s in states],
                [s["step"] for s in states],
                [s["max"] for s in states],
                lr=group["lr"],
                beta=group["beta"],
                g_bound=group["g_bound"],
                constraints=group["constraints"],
                fused=self._fused,
            )
        self._report_nonfinite(bad, last_step)
        return loss


class _Hyper(NamedTuple):
    lr: float
    beta: float
    g_bound: float
    constraints: bool


# One tensor's part of a step: (param, grad, v, step, max_abs).
_Item = tuple[Tensor, Tensor, Tensor, int, float]


@torch.no_grad()
def madam(
    params: list[Tensor],
    grads: list[Tensor],
    vs: list[Tensor],
    steps: list[int],
    max_abs: list[float],
    *,
    lr: float,
    beta: float,
    g_bound: float,
    constraints: bool,
    fused: bool | None = None,
) -> Tensor | int:
    """Madam's step on a list of tensors, the functional form of :class:`Madam`; it picks the
    path for each tensor.

    ``vs`` are the per-element running averages (updated in place), ``steps`` each tensor's
    1-based update count, ``max_abs`` each tensor's clamp bound. Unless ``fused`` is False,
    float32 CPU tensors take the C++ kernel of :mod:`nero._native`; the rest take the plain
    path :func:`nero._functional.madam_update_`. Returns the number of gradient entries
    skipped as non-finite (a tensor, or an int).
    """
    hyper = _Hyper(lr, beta, g_bound, constraints)
    todo: list[_Item] = list(zip(params, grads, vs, steps, max_abs))
    bad: Tensor | int = 0
    if fused is not False:
        taken, todo, lib = _native.take(todo, n_state=1)
        if taken:
            bad = _native_madam(lib, taken, hyper)
    skipped = [(~_single_tensor_madam(item, hyper)).sum() for item in todo]
    return torch.stack(skipped).sum() + bad if skipped else bad


def _single_tensor_madam(item: _Item, hyper: _Hyper) -> Tensor:
    p, g, v, step, max_abs = item
    return madam_update_(
        p, g, v, step=step, lr=hyper.lr, beta=hyper.beta, g_bound=hyper.g_bound,
        max_abs=max_abs, constraints=hyper.constraints,
    )


def _native_madam(lib: Any, items: list[_Item], hyper: _Hyper) -> int:
    """Every float32 CPU tensor in one call of the C++ kernel; returns its non-finite count."""
    grads = [_native.grad_like(p, g) for p, g, *_ in items]  # alive until the kernel returns
    rows = [
        (*_native.layout(p), p.data_ptr(), g.data_ptr(), v.data_ptr(),
         1.0 - hyper.beta**step, max_abs, int(hyper.constraints and p.dim() > 1))
        for (p, _, v, step, max_abs), g in zip(items, grads)
    ]
    dtypes = (I64, I64, I64, I64, I64, F32, F32, U8)
    return int(_native.run(
        lib, "madam_step_f32", rows, dtypes, -hyper.lr, hyper.beta, 1.0 - hyper.beta,
        hyper.g_bound,
    ))
