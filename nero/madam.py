"""Madam: multiplicative, per-synapse relative updates (Bernstein et al., 2020), as Nero's paper ran it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from ._base import NeuronOptimizer, check_beta, check_lr, check_positive, dense_grad
from ._functional import madam_update_, state_dtype

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
    ) -> None:
        defaults = dict(
            lr=check_lr(lr),
            p_scale=check_positive(p_scale, "p_scale"),
            g_bound=check_positive(g_bound, "g_bound"),
            beta=check_beta(beta),
            constraints=bool(constraints),
        )
        super().__init__(params, defaults)

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
        last_step = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or p.numel() == 0:
                    continue
                g = dense_grad(p, "Madam")
                state = self.state[p]
                if not state:
                    # Lazily, at the parameter's first step, as in the original.
                    rms = float(p.to(state_dtype(p)).square().mean().sqrt())
                    state["step"] = 0
                    state["max"] = group["p_scale"] * rms
                    state["v"] = torch.zeros_like(p, dtype=state_dtype(p))
                state["step"] += 1
                last_step = max(last_step, state["step"])
                finite = madam_update_(
                    p,
                    g,
                    state["v"],
                    step=state["step"],
                    lr=group["lr"],
                    beta=group["beta"],
                    g_bound=group["g_bound"],
                    max_abs=state["max"],
                    constraints=group["constraints"],
                )
                skipped.append((~finite).sum())
        if skipped:
            self._report_nonfinite(torch.stack(skipped).sum(), last_step)
        return loss
