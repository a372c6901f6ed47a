"""Plain, independent transcriptions of the authors' optimisers (docs/experiments.md, Optimisers).

Written from the specification, one parameter at a time, without any of the library's code, so
that agreement between the two is evidence rather than a tautology. Not fast, not guarded:
these reproduce the original quirks (NaN masking, no epsilon, lazy state) on purpose.
"""

from __future__ import annotations

import math

import torch


def _nnorm(t):
    if t.dim() > 1:
        return t.reshape(t.shape[0], -1).norm(dim=1).reshape((t.shape[0],) + (1,) * (t.dim() - 1))
    return t.abs()


def _nmean(t):
    return t.reshape(t.shape[0], -1).mean(dim=1).reshape((t.shape[0],) + (1,) * (t.dim() - 1))


def _project(p, c1=True, c2=True):
    if c1:
        p -= _nmean(p)
    if c2:
        p /= _nnorm(p)


class RefNeroAbl:
    """``Nero_abl(lr, beta, c1, c2)``; with c1 = c2 = True it is the paper's ``Nero``."""

    def __init__(self, params, lr=0.01, beta=0.999, c1=True, c2=True):
        self.params = list(params)
        self.lr, self.beta, self.c1, self.c2 = lr, beta, c1, c2
        self.state = {}
        with torch.no_grad():
            for p in self.params:
                if p.dim() > 1:
                    _project(p, c1, c2)
                scale = _nnorm(p).mean()
                self.state[p] = {
                    "step": 0,
                    "v": torch.zeros_like(_nnorm(p)),
                    "scale": 0.01 if scale == 0.0 else scale,
                }

    @torch.no_grad()
    def step(self):
        for p in self.params:
            if p.grad is None:
                continue
            s = self.state[p]
            s["step"] += 1
            bc = 1 - self.beta ** s["step"]
            s["v"] = self.beta * s["v"] + (1 - self.beta) * _nnorm(p.grad) ** 2
            g_hat = p.grad / (s["v"] / bc).sqrt()
            g_hat[g_hat != g_hat] = 0
            p -= self.lr * s["scale"] * g_hat
            if p.dim() > 1:
                _project(p, self.c1, self.c2)


class RefMadam:
    """``Madam(lr)``, and with ``constraints`` the ``MadamCS`` class."""

    def __init__(self, params, lr=0.01, p_scale=3.0, g_bound=10.0, constraints=False):
        self.params = list(params)
        self.lr, self.p_scale, self.g_bound, self.constraints = lr, p_scale, g_bound, constraints
        self.state = {}

    @torch.no_grad()
    def step(self):
        for p in self.params:
            if p.grad is None:
                continue
            s = self.state.setdefault(p, {})
            if not s:
                s["max"] = self.p_scale * (p * p).mean().sqrt().item()
                s["step"] = 0
                s["v"] = torch.zeros_like(p)
            s["step"] += 1
            bc = 1 - 0.999 ** s["step"]
            s["v"] = 0.999 * s["v"] + 0.001 * p.grad**2
            g_hat = p.grad / (s["v"] / bc).sqrt()
            g_hat[g_hat != g_hat] = 0
            g_hat.clamp_(-self.g_bound, self.g_bound)
            p *= torch.exp(-self.lr * g_hat * torch.sign(p))
            p.clamp_(-s["max"], s["max"])
            if self.constraints and p.dim() > 1:
                _project(p)


class RefLamb:
    """cybertronai ``Lamb``, and with ``constraints`` the ``LambCS`` class."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, constraints=False):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.constraints = lr, betas, eps, constraints
        self.state = {}

    @torch.no_grad()
    def step(self):
        b1, b2 = self.betas
        for p in self.params:
            if p.grad is None:
                continue
            s = self.state.setdefault(p, {})
            if not s:
                s["step"] = 0
                s["m"] = torch.zeros_like(p)
                s["v"] = torch.zeros_like(p)
            s["step"] += 1
            s["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
            s["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            u = s["m"] / (s["v"].sqrt() + self.eps)
            w_norm = p.norm().clamp(0, 10)
            u_norm = u.norm()
            trust = 1.0 if w_norm == 0 or u_norm == 0 else (w_norm / u_norm).item()
            p -= self.lr * trust * u
            if self.constraints and p.dim() > 1:
                _project(p)


def sigma_b(t: torch.Tensor) -> float:
    """The paper's per-tensor scale rule for a 1-D tensor: mean |init|, 0.01 if that is 0."""
    m = t.abs().mean().item()
    return 0.01 if m == 0 else m


def close(a: float, b: float, rel: float = 1e-3) -> bool:
    return math.isclose(a, b, rel_tol=rel)
