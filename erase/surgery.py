"""Gradient surgery: take the part of an erasure gradient that fights a preservation gradient out.

DoCo's *concept-preserving gradient* (``shared/docs/algorithms.md`` §6) runs two backward passes
per step: the retain loss first (its gradient ``g_r`` is clipped and stored), then the erasure
loss (``g_u``, clipped). Each trained tensor's ``g_u`` is then corrected against its own ``g_r``
and the optimiser steps with the corrected ``g_u`` *alone* (``g_r`` itself is not added).

Two rules, per tensor (:func:`conflict_projection`)::

    cos = <g_u/|g_u|, g_r/|g_r|>
    "doco":   if cos < 0:  g_u <- g_u - lam * cos * g_r/|g_r|          (official adjust_gradient)
    "pcgrad": if cos < 0:  g_u <- g_u - <g_u, g_r>/|g_r|^2 * g_r       (Yu et al. 2020, exact)

The DoCo rule subtracts the *unit* direction scaled by cos, so the conflict is removed exactly
only when ``|g_u| = 1`` (which the clipping to 1 produces whenever the norm was at least 1);
PCGrad always leaves ``<g_u', g_r> = 0``. ``lam`` applies to the DoCo rule only. A tensor whose
``g_u`` or ``g_r`` is zero is left alone (the official code's ``1e-8`` gives the same result).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import torch

Mode = Literal["doco", "pcgrad", "off"]
MODES: tuple[str, ...] = ("doco", "pcgrad", "off")


def conflict_projection(g_u: torch.Tensor, g_r: torch.Tensor, mode: Mode = "doco", lam: float = 1.0) -> torch.Tensor:
    """``g_u`` with its conflict with ``g_r`` removed by ``mode`` (a new tensor; see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"unknown gradient-surgery mode {mode!r}; use one of {', '.join(MODES)}")
    u, r = g_u.double().flatten(), g_r.double().flatten()
    norm_u, norm_r = u.norm(), r.norm()
    if mode == "off" or norm_u == 0 or norm_r == 0:
        return g_u.clone()
    cos = torch.dot(u / norm_u, r / norm_r)
    if cos >= 0:
        return g_u.clone()
    if mode == "doco":
        corrected = u - lam * cos * (r / norm_r)
    else:
        corrected = u - (torch.dot(u, r) / norm_r**2) * r
    return corrected.reshape(g_u.shape).to(g_u.dtype)


def clip_global_norm_(grads: list[torch.Tensor], max_norm: float | None) -> float:
    """Scale ``grads`` in place so their joint L2 norm is at most ``max_norm``; return the norm before.

    The same rule as ``torch.nn.utils.clip_grad_norm_``, on tensors that are not ``.grad`` fields
    (the stored retain gradient).
    """
    if not grads:
        return 0.0
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.double()) for g in grads])).item()
    if max_norm is not None and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g.mul_(scale)
    return total


class ConceptPreservingGradient:
    """The two-backward step: store the clipped retain gradient, then correct the erasure one.

    Use it from a method: in ``loss``, call :meth:`store_retain` with the retain loss (it runs
    its own backward through ``torch.autograd.grad``, so ``.grad`` stays free) and return the
    erasure loss; the shared loop backpropagates that; in ``adjust_gradients`` call
    :meth:`correct`, which clips ``.grad`` and projects each tensor. The optimiser then steps
    with the corrected erasure gradient alone, as the official code does.
    """

    def __init__(self, params: Mapping[str, torch.nn.Parameter], mode: Mode = "doco", lam: float = 1.0,
                 max_grad_norm: float | None = 1.0, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown gradient-surgery mode {mode!r}; use one of {', '.join(MODES)}")
        self.params = dict(params)
        self.mode, self.lam, self.max_grad_norm = mode, lam, max_grad_norm
        self.reduce = reduce  # averages a gradient across processes (accelerate); None in one process
        self.retain: dict[str, torch.Tensor] | None = None
        self.conflicts = 0  # tensors corrected at the last step
        self.total_conflicts = 0

    def store_retain(self, retain_loss: torch.Tensor, retain_graph: bool = False) -> None:
        """``g_r = clip(d retain_loss / d params)``, kept until :meth:`correct`.

        ``retain_graph=True`` when the erasure loss shares the forward pass (one batched call).
        """
        names = list(self.params)
        grads = torch.autograd.grad(retain_loss, [self.params[n] for n in names], allow_unused=True, retain_graph=retain_graph)
        stored = {n: (torch.zeros_like(self.params[n]) if g is None else g.detach().clone()) for n, g in zip(names, grads)}
        if self.reduce is not None:
            stored = {n: self.reduce(g) for n, g in stored.items()}
        clip_global_norm_(list(stored.values()), self.max_grad_norm)
        self.retain = stored

    def correct(self) -> None:
        """Clip the erasure gradients in ``.grad`` and remove, per tensor, their conflict with ``g_r``."""
        if self.retain is None:
            raise RuntimeError("ConceptPreservingGradient.correct() before store_retain(): no retain gradient to project against")
        grads = {n: p.grad for n, p in self.params.items() if p.grad is not None}
        clip_global_norm_(list(grads.values()), self.max_grad_norm)
        self.conflicts = 0
        for n, g in grads.items():
            corrected = conflict_projection(g, self.retain[n], self.mode, self.lam)
            if not torch.equal(corrected, g):
                self.conflicts += 1
                g.copy_(corrected)
        self.total_conflicts += self.conflicts
        self.retain = None
