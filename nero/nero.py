"""Nero: the neuronal rotator (Liu, Bernstein, Meister & Yue, ICML 2021)."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from . import _native
from ._base import NeuronOptimizer, check_beta, check_lr, check_positive, dense_grad
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

__all__ = ["Nero"]

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
    and Nero first, then load both state dicts: built after loading, Nero would project the
    loaded weights once more, which moves them by float32 rounding (up to ~4e-7).

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
        self._fused_request = fused
        self._fused_broken = False
        self._versions: dict[Tensor, int] = {}  # runtime only: see _fused_group
        self._flat_scales: dict[int, tuple[tuple[int, ...], Tensor]] = {}
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
        self._versions[p] = p._version

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_fused_request", None)
        self.__dict__.setdefault("_fused_broken", False)
        self.__dict__.setdefault("_versions", {})
        self.__dict__.setdefault("_flat_scales", {})
        for group in self.param_groups:
            group.setdefault("bias_scale", None)

    def _use_fused(self, params: list[Tensor]) -> bool:
        if not params:
            return False
        if self._fused_request is not None:
            return self._fused_request
        device = params[0].device.type
        return device == "cpu" or (device == "cuda" and importlib.util.find_spec("triton") is not None)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step; ``closure`` re-evaluates the model and returns the loss."""
        loss = self._closure_loss(closure)
        sq_norms: list[Tensor] = []  # per-unit squared gradient norms, checked for non-finite
        bad = 0  # non-finite units counted by the CPU kernel
        last_step = 0
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None and p.numel() > 0]
            for p in params:
                dense_grad(p, "Nero")
                state = self.state[p]
                if not state:
                    self._init_param(p, group)
                state["step"] += 1
                last_step = max(last_step, state["step"])
            if self._use_fused(params):
                params, found = self._fast_update(group, params, sq_norms)
                bad += found
            sq_norms += [self._plain_update(group, p) for p in params]
        if sq_norms:
            flat = torch.cat([s.reshape(-1) for s in sq_norms])
            bad = (~torch.isfinite(flat)).sum() + bad
        self._report_nonfinite(bad, last_step)
        return loss

    def _fast_update(
        self, group: dict[str, Any], params: list[Tensor], sq_norms: list[Tensor]
    ) -> tuple[list[Tensor], int]:
        """Update what a fast kernel can take; return the rest and a count of non-finite units.

        Float32 CPU tensors go through the C++ kernel (:mod:`nero._native`), accelerator tensors
        through one compiled graph per group; the rest (low-precision CPU tensors, layouts
        without row views, or everything where no kernel could be built) stays for the plain
        path. The compiled graph appends its squared gradient norms to ``sq_norms``.
        """
        params, bad = self._native_first(group, params, "v")
        compiled = [p for p in params if p.device.type != "cpu" or _COMPILE_ON_CPU]
        if compiled and not self._fused_broken:
            sq_norms += self._fused_group(group, compiled)
            done = {id(p) for p in compiled}
            params = [p for p in params if id(p) not in done]
        return params, bad

    def _native_update(self, lib: Any, group: dict[str, Any], params: list[Tensor]) -> int:
        """Every float32 CPU tensor of the group in one call of the C++ kernel (see _native)."""
        beta, lr = group["beta"], group["lr"]
        grads = [_native.grad_like(p) for p in params]  # alive until the kernel returns
        rows = []
        for p, g in zip(params, grads):
            state = self.state[p]
            weight = p.dim() > 1
            centre, normalise = weight and group["mean_constraint"], weight and group["norm_constraint"]
            rows.append((
                *_native.layout(p), p.data_ptr(), g.data_ptr(), state["v"].data_ptr(),
                -lr * state["scale"], 1.0 - beta ** state["step"], int(centre) | 2 * int(normalise),
            ))
        dtypes = (I64, I64, I64, I64, I64, F32, F32, U8)
        return int(_native.run(lib, "nero_step_f32", rows, dtypes, beta, 1.0 - beta))

    def _plain_update(self, group: dict[str, Any], p: Tensor) -> Tensor:
        state = self.state[p]
        return nero_update_(
            p,
            p.grad,
            state["v"],
            step=state["step"],
            lr=group["lr"],
            beta=group["beta"],
            scale=state["scale"],
            mean=group["mean_constraint"],
            norm=group["norm_constraint"],
        )

    def _fused_group(self, group: dict[str, Any], params: list[Tensor]) -> list[Tensor]:
        """Weights through one compiled graph, 1-D tensors through one flat buffer.

        A weight whose version counter moved since this optimiser last wrote it was changed by
        someone else (a loaded checkpoint, a manual edit): it takes the plain path once, whose
        two-pass projection is exact for any input, before the closed-form fused update (exact
        for the nearly balanced rows it then sees) takes over again.
        """
        weights, flat, plain = [], [], []
        for p in params:
            if p.dim() > 1 and self._versions.get(p) == p._version and rows_view(p) is not None:
                weights.append(p)
            elif p.dim() <= 1 and p.is_contiguous():
                flat.append(p)
            else:
                plain.append(p)
        if len({(p.dtype, p.device) for p in flat}) > 1:
            plain += flat
            flat = []
        out: list[Tensor] = []
        try:
            if weights:
                out += self._compiled_weights(group, weights)
            if flat:
                out.append(self._flat_vectors(group, flat))
        except Exception as err:
            warnings.warn(
                f"Nero: the fused kernel could not be compiled ({type(err).__name__}: "
                f"{str(err)[:200]}); falling back to the plain per-tensor path.",
                RuntimeWarning,
                stacklevel=3,
            )
            self._fused_broken = True
            out, plain = [], params
        out += [self._plain_update(group, p) for p in plain]
        for p in params:
            self._versions[p] = p._version
        return out

    def _compiled_weights(self, group: dict[str, Any], weights: list[Tensor]) -> list[Tensor]:
        beta = group["beta"]
        rows_p, rows_g, rows_v, lr_scales, corrections, centers, normalizes = ([] for _ in range(7))
        for p in weights:
            g = p.grad
            if g.stride() != p.stride():
                g = torch.empty_like(p).copy_(g)
            state = self.state[p]
            rows_p.append(rows_view(p))
            rows_g.append(rows_view(g))
            rows_v.append(state["v"].view(-1, 1))
            lr_scales.append(group["lr"] * state["scale"])
            corrections.append(1.0 - beta ** state["step"])
            centers.append(group["mean_constraint"]
                           and (fan_in(p) > 1 or not group["norm_constraint"]))
            normalizes.append(group["norm_constraint"])
        return _compiled_kernel()(
            rows_p, rows_g, rows_v, lr_scales, beta, corrections, tuple(centers), tuple(normalizes)
        )

    def _flat_vectors(self, group: dict[str, Any], flat: list[Tensor]) -> Tensor:
        states = [self.state[p] for p in flat]
        key = tuple(id(p) for p in flat)
        cached = self._flat_scales.get(id(group))
        if cached is None or cached[0] != key:
            scales = torch.cat([
                torch.full((p.numel(),), s["scale"], dtype=s["v"].dtype) for p, s in zip(flat, states)
            ]).to(flat[0].device)
            cached = (key, scales)
            self._flat_scales[id(group)] = cached
        steps = {s["step"] for s in states}
        beta = group["beta"]
        if len(steps) == 1:
            corrections: Tensor | float = 1.0 - beta ** steps.pop()
        else:
            corrections = torch.cat([
                torch.full((p.numel(),), 1.0 - beta ** s["step"], dtype=s["v"].dtype)
                for p, s in zip(flat, states)
            ]).to(flat[0].device)
        return nero_flat_update_(
            flat, [p.grad for p in flat], [s["v"] for s in states], cached[1] * group["lr"],
            beta, corrections,
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
