"""The relaxed token variable of UnlearnDiffAtk: a distribution per adversarial token over the vocabulary.

Each of the k adversarial tokens is a row ``u`` of a (k, |V|) matrix kept on the probability
simplex (entries in [0, 1] summing to 1). The optimisation (``shared/docs/algorithms.md`` §7)
alternates three pieces, all here, all batched over prompts:

* :class:`StraightThroughSample`: the forward pass draws one token per row with
  ``multinomial(u)`` and returns its one-hot; the backward pass hands the one-hot's gradient
  to ``u`` clipped to [-1, 1] (``hardtanh``), the official ``STERandSelect``.
* :func:`project_simplex`: after each Adam step, every row goes back onto the simplex,
  ``x = clip(u - mu, 0, 1)`` with ``mu`` found by bisection so that ``sum x = 1``.
* :func:`discretise`: the attack's prompt is the argmax token of every row (no nearest-
  neighbour projection, as in the official code).

:class:`RelaxedTokens` holds these for a batch of prompts (the ``RelaxedTokenAttack`` building
block of ``algorithms.md``): the attack supplies the loss as a callback on the inserted
sequences, so the same search serves any loss.

Projection differs from the official ``bisection`` in two ways, neither changing the point
it converges to: it runs on all rows at once (the official loops over rows in Python), and it
stops when the row *sum* is within ``tol`` of 1, not when the bracket on ``mu`` is narrower
than ``tol``. With 49,408 entries a ``mu`` within 1e-5 can leave the sum off by more than 0.1
(tens of thousands of entries share the error), so rows would not be distributions.
The bracket starts at ``[max(u) - 1, max(u)]`` (the official ``[min(u) - 1, max(u)]`` is wider
and contains it), and the search runs in float64 for the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .insertion import insert


class StraightThroughSample(torch.autograd.Function):
    """One-hot samples ``(B, k, V)`` of ``u`` (B, k, V); backward: ``hardtanh`` of the gradient.

    Every prompt draws from its own generator, so a prompt's tokens do not depend on which
    other prompts share its batch.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        # Inverse-CDF sampling: the distribution of torch.multinomial, with the uniforms drawn
        # on the CPU so the same seed picks the same tokens on any device.
        k = u.shape[1]
        uniforms = torch.stack([torch.rand(k, generator=g, dtype=torch.float64) for g in generators])  # (B, k)
        cdf = u.detach().double().cumsum(dim=-1)  # (B, k, V)
        targets = uniforms.to(u.device) * cdf[..., -1]  # (B, k)
        ids = torch.searchsorted(cdf, targets.unsqueeze(-1), right=True).squeeze(-1)  # (B, k): first cdf > target
        ids = ids.clamp(max=u.shape[-1] - 1)
        return F.one_hot(ids, u.shape[-1]).to(u.dtype)  # (B, k, V)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return F.hardtanh(grad), None  # (B, k, V), clipped to [-1, 1]


def sample_one_hot(u: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Straight-through one-hot samples of ``u`` (B, k, V), one generator per prompt."""
    if len(generators) != u.shape[0]:
        raise ValueError(f"{u.shape[0]} prompts but {len(generators)} generators")
    return StraightThroughSample.apply(u, generators)


@torch.no_grad()
def project_simplex(u: torch.Tensor) -> torch.Tensor:
    """Each row of ``u`` (..., V) onto ``{x : 0 <= x <= 1, sum x = 1}``: ``clip(u - mu, 0, 1)``.

    ``mu`` solves ``sum clip(u - mu, 0, 1) = 1`` (see the module docstring). It is found exactly
    by Michelot's fixed point ``mu <- (sum_{u_i > mu} u_i - 1) / #{u_i > mu}``, which rises
    monotonically from any lower bound to the root; every entry at or below the current ``mu``
    is zero at the root, so each step only looks at the entries still above it. One vectorised
    pass finds the candidates of every row, then a few float64 steps on them per row.
    """
    flat = u.detach().reshape(-1, u.shape[-1])  # (R, V)
    vocab = flat.shape[1]
    lower = torch.maximum((flat.sum(dim=1, dtype=torch.float64) - 1) / vocab,
                          flat.amax(dim=1).double() - 1)  # (R,) both bound the root from below
    roots = []
    for row, mu in zip(flat, lower):
        candidates = row[row > mu].double()  # (n,) the only entries that can be positive
        while True:
            step = (candidates.sum() - 1) / candidates.numel()
            if step <= mu:
                break
            mu = step
            candidates = candidates[candidates > mu]
        roots.append(mu)
    mu = torch.stack(roots)  # (R,)
    return (flat.double() - mu[:, None]).clamp(0, 1).to(u.dtype).reshape(u.shape)


def uniform_init(batch: int, k: int, vocab: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The official start: every entry ``1 / |V|`` (already on the simplex), shape (B, k, V)."""
    return project_simplex(torch.full((batch, k, vocab), 1.0 / vocab, device=device))


def discretise(u: torch.Tensor) -> torch.Tensor:
    """The attack's tokens: the argmax of every row, ids ``(B, k)``."""
    return u.argmax(dim=-1)


class RelaxedTokens:
    """k relaxed tokens for each prompt of a batch, with one Adam over them (the official state).

    ``step(loss_fn)`` is one iteration: sample one-hot tokens straight-through, insert their
    embeddings into every still-searching prompt, ask ``loss_fn(input_ids (A, L),
    input_embeds (A, L, D), active)`` for the per-prompt losses (A,), step Adam on their sum
    and project every row back onto the simplex. Per-prompt losses are *summed*, so each
    prompt's gradient, and its straight-through clipping, is the one a single-prompt run sees;
    Adam is elementwise, so one optimiser over per-prompt tensors is one optimiser per prompt.
    A prompt taken out with :meth:`stop` keeps ``grad = None``, which Adam leaves untouched.
    """

    def __init__(self, ids: torch.Tensor, embeds: torch.Tensor, vocab_embeds: torch.Tensor, k: int,
                 insertion: str, generators: Sequence[torch.Generator], lr: float = 0.01,
                 weight_decay: float = 0.1) -> None:
        self.ids, self.embeds = ids, embeds.detach()  # (B, L), (B, L, D)
        self.vocab_embeds = vocab_embeds.detach()  # (V, D)
        self.insertion, self.generators = insertion, list(generators)
        vocab = vocab_embeds.shape[0]
        self.u = [torch.nn.Parameter(uniform_init(1, k, vocab, ids.device)[0]) for _ in range(ids.shape[0])]  # B x (k, V)
        self.optimizer = torch.optim.Adam(self.u, lr=lr, weight_decay=weight_decay)
        self.active = list(range(ids.shape[0]))

    def step(self, loss_fn) -> torch.Tensor:
        """One iteration on the active prompts (see the class docstring); their losses (A,)."""
        active = list(self.active)
        relaxed = torch.stack([self.u[b] for b in active])  # (A, k, V)
        one_hot = sample_one_hot(relaxed, [self.generators[b] for b in active])  # (A, k, V)
        in_ids, in_embeds = insert(self.insertion, self.ids[active], self.embeds[active], one_hot.argmax(-1),
                                   one_hot.to(self.vocab_embeds.dtype) @ self.vocab_embeds)  # (A, L), (A, L, D)
        losses = loss_fn(in_ids, in_embeds, active)  # (A,)
        grads = torch.autograd.grad(losses.sum(), [self.u[b] for b in active])
        self.optimizer.zero_grad(set_to_none=True)
        for b, grad in zip(active, grads):
            self.u[b].grad = grad
        self.optimizer.step()
        with torch.no_grad():
            projected = project_simplex(torch.stack([self.u[b] for b in active]))  # (A, k, V)
            for position, b in enumerate(active):
                self.u[b].copy_(projected[position])
        return losses.detach().cpu()

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The active prompts' argmax tokens (A, k) and their whole input ids (A, L)."""
        adv_ids = discretise(torch.stack([self.u[b].detach() for b in self.active]))  # (A, k)
        in_ids, _ = insert(self.insertion, self.ids[self.active], self.embeds[self.active], adv_ids,
                           self.vocab_embeds[adv_ids])
        return adv_ids, in_ids

    def stop(self, finished: Sequence[int]) -> None:
        """Take prompts (batch positions) out of the search."""
        self.active = [b for b in self.active if b not in set(finished)]
