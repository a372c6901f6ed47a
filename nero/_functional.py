"""Per-tensor maths shared by Nero, Madam and LAMB.

A *neuron* of a tensor with two or more dimensions is its slice along dim 0: a row of a Linear
weight, an output filter of a Conv2d weight, a token vector of an Embedding. Every element of a
1-D (or 0-D) tensor is a unit of its own. These functions work in float32 for low-precision
tensors and write the result back in the tensor's own dtype.

Reference: Liu, Bernstein, Meister & Yue, "Learning by Turning: Neural Architecture Aware
Optimisation", ICML 2021 (arXiv:2102.07227).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "neuron_norm",
    "neuron_mean",
    "project_",
    "nero_update_",
    "nero_flat_update_",
    "nero_rows_update_",
    "madam_update_",
    "lamb_update_",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def state_dtype(t: Tensor) -> torch.dtype:
    """Optimiser state is float32 for low-precision tensors and the tensor's own dtype otherwise."""
    return torch.float32 if t.dtype in _LOW_PRECISION else t.dtype


def _work(t: Tensor) -> Tensor:
    """A float32 copy for low-precision tensors, the tensor itself otherwise."""
    return t.float() if t.dtype in _LOW_PRECISION else t


def _write_back(dst: Tensor, src: Tensor) -> None:
    if src is not dst:
        dst.copy_(src)


def _neuron_dims(t: Tensor) -> tuple[int, ...]:
    return tuple(range(1, t.dim()))


def neuron_norm(t: Tensor) -> Tensor:
    """Per-neuron L2 norm with shape (n0, 1, ..., 1); |t| elementwise for 1-D tensors."""
    if t.dim() <= 1:
        return t.abs()
    return torch.linalg.vector_norm(t, dim=_neuron_dims(t), keepdim=True)


def neuron_mean(t: Tensor) -> Tensor:
    """Per-neuron mean with shape (n0, 1, ..., 1); only defined for tensors with >= 2 dims."""
    if t.dim() <= 1:
        raise ValueError("neuron_mean needs a tensor with at least 2 dimensions")
    return t.mean(dim=_neuron_dims(t), keepdim=True)


def fan_in(t: Tensor) -> int:
    """Number of entries of one neuron (1 for 0-D and 1-D tensors)."""
    return t[0].numel() if t.dim() > 1 and t.shape[0] > 0 else 1


def units(t: Tensor) -> int:
    """Number of units of a non-empty tensor: its neurons (dim 0), or its entries for 0-D and 1-D."""
    return t.shape[0] if t.dim() > 1 else max(t.numel(), 1)


def rows_view(t: Tensor) -> Tensor | None:
    """A (units, fan-in) view sharing ``t``'s memory, or None where the layout has no such view.

    Row sums and norms do not depend on the order of a row's entries, so a channels_last conv
    weight (dim 0 outermost, each filter one dense block) is viewed in its memory order.
    """
    if t.dim() <= 1:
        return t.view(-1, 1) if t.is_contiguous() else None
    n = t.shape[0]
    d = t.numel() // n
    if t.is_contiguous():
        return t.view(n, d)
    if t.stride(0) == d and _dense_within_rows(t):
        return t.as_strided((n, d), (d, 1))
    return None


def _dense_within_rows(t: Tensor) -> bool:
    """True where the entries of each neuron fill one block of memory, in some order."""
    expected = 1
    for stride, size in sorted((t.stride(i), t.shape[i]) for i in range(1, t.dim()) if t.shape[i] > 1):
        if stride != expected:
            return False
        expected *= size
    return expected == t[0].numel()


@torch.no_grad()
def project_(p: Tensor, mean: bool = True, norm: bool = True) -> Tensor:
    """Project every neuron of ``p`` in place: centre it (``mean``), then scale it to unit norm.

    1-D tensors are left alone. Two guards keep degenerate neurons finite, where the authors' code
    produced NaN: with both constraints, a neuron with a single entry (fan-in 1) is not centred,
    since a zero-mean vector of length one is zero and cannot have unit norm (with the mean
    constraint alone it is centred to zero, as the authors' code does); a neuron whose (centred)
    norm is zero, e.g. an all-equal row, is left at zero instead of being divided by zero. Such a
    zero neuron becomes a proper unit vector at the first update that gives it a gradient.
    """
    if p.dim() <= 1 or p.numel() == 0:
        return p
    w = _work(p)
    if mean and (fan_in(p) > 1 or not norm):
        w = w - neuron_mean(w)
    if norm:
        n = neuron_norm(w)
        w = torch.where(n > 0, w / n, w)
    if w is not p:
        p.copy_(w)
    return p


def _grad_sq(g: Tensor) -> Tensor:
    """Squared gradient norm per unit, flattened to shape (n_units,)."""
    if g.dim() <= 1:
        return (g * g).reshape(-1)
    return neuron_norm(g).square().reshape(-1)


def _per_unit(x: Tensor, like: Tensor) -> Tensor:
    """Reshape a (n_units,) vector so that it broadcasts over the neurons of ``like``."""
    if like.dim() <= 1:
        return x.reshape(like.shape)
    return x.reshape((like.shape[0],) + (1,) * (like.dim() - 1))


@torch.no_grad()
def nero_update_(
    p: Tensor,
    g: Tensor,
    v: Tensor,
    *,
    step: int,
    lr: float,
    beta: float,
    scale: float,
    mean: bool,
    norm: bool,
) -> Tensor:
    """One Nero step on one tensor (the plain reference path).

    ``v`` (one entry per unit) is updated in place; ``step`` is the 1-based count of this
    tensor's updates. Returns the per-unit squared gradient norm so that the caller can detect
    non-finite gradients without another pass.

    Units whose gradient norm is not finite are skipped (no update, running average unchanged),
    where the authors' code would turn their running average into NaN and freeze them for good.
    A unit whose running average is exactly zero gets no update (the authors' 0/0 -> 0 rule).
    """
    gw = _work(g)
    gsq = _grad_sq(gw)
    finite = torch.isfinite(gsq)
    v.copy_(torch.where(finite, v * beta + gsq * (1.0 - beta), v))
    denom = (v / (1.0 - beta**step)).sqrt()
    # The per-unit factor -lr * scale / sqrt(v / bc), 0 where the unit is skipped.
    coef = torch.where(finite & (denom > 0), (-lr * scale) / denom, 0.0)
    if not bool(finite.all()):  # 0 * NaN is NaN: blank the skipped units' gradients first
        gw = torch.where(_per_unit(finite, gw), gw, 0.0)
    w = _work(p)
    w.addcmul_(gw, _per_unit(coef.to(w.dtype), gw))
    if p.dim() > 1 and (mean or norm):
        project_(w, mean=mean, norm=norm)  # in place on w (p itself, or its float32 copy)
    _write_back(p, w)
    return gsq


@torch.no_grad()
def nero_flat_update_(
    params: list[Tensor],
    grads: list[Tensor],
    vs: list[Tensor],
    lr_scales: Tensor,
    beta: float,
    bias_corrections: Tensor | float,
) -> Tensor:
    """The elementwise Nero step for many 1-D tensors at once, through one flat buffer.

    Each tensor's entries are concatenated (a few hundred thousand numbers at most in the
    paper's models), updated in a handful of kernels, and copied back: a constant number of
    launches instead of several per tensor. ``lr_scales`` holds lr * scale per entry.
    """
    sizes = [t.numel() for t in params]
    g = torch.cat([t.reshape(-1) for t in grads]).to(vs[0].dtype)
    v = torch.cat(vs)
    gsq = g * g
    finite = torch.isfinite(gsq)
    v = torch.where(finite, v * beta + gsq * (1.0 - beta), v)
    denom = (v / bias_corrections).sqrt()
    step = torch.where(finite & (denom > 0), g / denom, 0.0) * lr_scales
    new = torch.cat([t.reshape(-1) for t in params]).to(v.dtype) - step
    torch._foreach_copy_(vs, list(v.split(sizes)))
    torch._foreach_copy_(params, [x.view_as(t) for x, t in zip(new.split(sizes), params)])
    return gsq


def nero_rows_update_(
    p: Tensor,
    g: Tensor,
    v: Tensor,
    lr_scale: float,
    beta: float,
    bias_correction: float,
    center: bool,
    normalize: bool,
) -> Tensor:
    """The fused form of :func:`nero_update_` on a (n, d) row view; written for torch.compile.

    It reads ``p`` and ``g`` twice and writes ``p`` once: the per-row statistics sum(g^2),
    <p, g>, sum(p), sum(g) and sum(p^2) give the centred, normalised result of ``p - c*g`` in
    closed form (``a*p + b*g + e`` per row), so no intermediate row is stored. ``v`` is (n, 1).
    Returns the per-row squared gradient norm, shape (n, 1).
    """
    pf = p.float()
    gf = g.float()
    d = p.shape[1]
    gg = (gf * gf).sum(1, keepdim=True)
    finite = torch.isfinite(gg)
    v_new = torch.where(finite, v * beta + gg * (1.0 - beta), v)
    denom = (v_new / bias_correction).sqrt()
    c = torch.where(finite & (denom > 0), lr_scale / denom, 0.0)
    a = torch.ones_like(c)
    b = -c
    e = torch.zeros_like(c)
    if center or normalize:
        pg = torch.where(finite, (pf * gf).sum(1, keepdim=True), 0.0)
        sg = torch.where(finite, gf.sum(1, keepdim=True), 0.0)
        gg0 = torch.where(finite, gg, 0.0)
        pp = (pf * pf).sum(1, keepdim=True)
        sp = pf.sum(1, keepdim=True)
        sq = pp - 2.0 * c * pg + c * c * gg0
        if center:  # the caller leaves fan-in-1 rows uncentred under the norm constraint
            mean = (sp - c * sg) / d
            e = -mean
            sq = sq - d * mean * mean
        if normalize:
            nrm = sq.clamp_min(0.0).sqrt()
            inv = torch.where(nrm > 0, 1.0 / nrm, 1.0)
            a = inv
            b = b * inv
            e = e * inv
    step = torch.where(finite, b * gf, 0.0)
    p.copy_((a * pf + step + e).to(p.dtype))
    v.copy_(v_new)
    return gg


@torch.no_grad()
def madam_update_(
    p: Tensor,
    g: Tensor,
    v: Tensor,
    *,
    step: int,
    lr: float,
    beta: float,
    g_bound: float,
    max_abs: float,
    constraints: bool,
) -> Tensor:
    """One Madam step (multiplicative, per synapse) on one tensor; ``v`` is per element.

    Non-finite gradient entries are skipped (no update, running average unchanged). Returns a
    boolean tensor of the entries that were finite.
    """
    gw = _work(g)
    finite = torch.isfinite(gw)
    g0 = torch.where(finite, gw, 0.0)
    v.copy_(torch.where(finite, v * beta + g0 * g0 * (1.0 - beta), v))
    bias_correction = 1.0 - beta**step
    denom = (v / bias_correction).sqrt()
    g_hat = torch.where(finite & (denom > 0), g0 / denom, 0.0).clamp_(-g_bound, g_bound)
    w = _work(p)
    w.mul_(torch.exp(-lr * g_hat * torch.sign(w)))
    w.clamp_(-max_abs, max_abs)
    if constraints and p.dim() > 1:
        project_(w)
    _write_back(p, w)
    return finite


@torch.no_grad()
def lamb_update_(
    p: Tensor,
    g: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    max_weight_norm: float,
    bias_correction: bool,
    constraints: bool,
) -> None:
    """One LAMB step (per-layer trust ratio) on one tensor, cybertronai semantics by default."""
    gw = _work(g)
    exp_avg.mul_(beta1).add_(gw, alpha=1.0 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(gw, gw, value=1.0 - beta2)
    m, s = exp_avg, exp_avg_sq
    if bias_correction:
        m = m / (1.0 - beta1**step)
        s = s / (1.0 - beta2**step)
    w = _work(p)
    update = m / (s.sqrt() + eps)
    if weight_decay != 0:
        update = update + weight_decay * w
    weight_norm = torch.linalg.vector_norm(w).clamp(0.0, max_weight_norm)
    update_norm = torch.linalg.vector_norm(update)
    trust = torch.where((weight_norm > 0) & (update_norm > 0), weight_norm / update_norm, 1.0)
    w.add_(update.mul_(trust), alpha=-lr)
    if constraints and p.dim() > 1:
        project_(w)
    _write_back(p, w)
