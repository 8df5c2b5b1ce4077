"""AdvUnlearn's inner attacker: a continuous word-embedding block searched by gradient steps.

The ``SoftPromptAttack`` building block of ``shared/docs/algorithms.md`` (§3, "Inner attack";
"Shared building blocks" 9). The variable is ``delta`` (k, D), k word embeddings inserted into
the prompt by one of the insertion helpers of :mod:`attacks.insertion` (``prefix_k`` by
default) and fed through the text encoder's ``inputs_embeds`` path
(:meth:`pipelines.prompts.PromptEncoder.encode_embeds`). The loss is a callback on the
inserted sequences, so the same search serves any objective; AdvUnlearn *minimises*
``MSE(eps(x_t, TE_phi(delta + c)), eps_orig(x_t, TE_o(c)))``, i.e. it looks for embeddings that
bring the concept back into the current unlearned model.

Faithful to the official ``soft_prompt_attack``:

* ``init="random"``: the embeddings of k uniformly random vocabulary ids; ``init="latest"``:
  the previous call's ``delta`` (random on the first call). For ``add`` (delta added to the
  prompt's token embeddings) a random start is zeros, i.e. the clean prompt: adding a whole
  word embedding to every token is not a small perturbation (our choice, the notes do not
  record the official one).
* ``update="pgd"``: a plain Adam step (no epsilon-ball, no projection: the official name is a
  misnomer); ``update="fast_at"``: the gradient is replaced by its sign in place, then Adam.
* A fresh Adam per call, ``lr`` 1e-3, ``steps`` 30.
* The official code never calls ``attack_opt.zero_grad()``: the gradients of all steps of a
  call *accumulate* (with ``fast_at`` the sign is taken in place, so the next gradient is added
  to +-1: unless a gradient entry exceeds 1 in size, the attack keeps its first step's sign for
  the whole call). ``accumulate_grads=True`` keeps that; ``False`` clears them each step, the
  textbook update.

The attacker never writes into the model's ``.grad``: it takes ``torch.autograd.grad`` with
respect to ``delta`` only, so it can run inside a training step of the defender.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch

from .insertion import INSERTIONS, insert

#: loss_fn(input_ids (B, L), input_embeds (B, L, D), step) -> scalar loss the attacker minimises
SoftLoss = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]

INITS = ("random", "latest")
UPDATES = ("pgd", "fast_at")


@dataclass
class SoftPromptResult:
    delta: torch.Tensor  # (k, D), detached
    losses: list[float] = field(default_factory=list)  # the loss before each step


class SoftPromptAttack:
    """k continuous adversarial embeddings for one prompt batch (see the module docstring)."""

    def __init__(self, k: int = 1, insertion: str = "prefix_k", init: Literal["random", "latest"] = "latest",
                 update: Literal["pgd", "fast_at"] = "pgd", lr: float = 1e-3, steps: int = 30,
                 accumulate_grads: bool = True) -> None:
        if k < 1:
            raise ValueError(f"the attack needs at least one adversarial embedding, got k={k}")
        if insertion not in INSERTIONS:
            raise ValueError(f"unknown insertion {insertion!r}; choose from {', '.join(INSERTIONS)}")
        if init not in INITS:
            raise ValueError(f"unknown attack init {init!r}; choose from {', '.join(INITS)}")
        if update not in UPDATES:
            raise ValueError(f"unknown attack update {update!r}; choose from {', '.join(UPDATES)}")
        self.k, self.insertion, self.init, self.update = k, insertion, init, update
        self.lr, self.steps, self.accumulate_grads = lr, steps, accumulate_grads
        self.latest: torch.Tensor | None = None  # (k, D), the last call's delta

    def start(self, vocab_embeds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The initial ``delta`` (k, D): random word embeddings (zeros for ``add``), or the latest."""
        if self.init == "latest" and self.latest is not None:
            return self.latest.clone()
        if self.insertion == "add":
            return torch.zeros(self.k, vocab_embeds.shape[1], dtype=vocab_embeds.dtype, device=vocab_embeds.device)
        ids = torch.randint(vocab_embeds.shape[0], (self.k,), generator=generator)  # (k,) drawn on the CPU
        return vocab_embeds.detach()[ids.to(vocab_embeds.device)].clone()  # (k, D)

    def inputs(self, ids: torch.Tensor, embeds: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids (B, L), embeds (B, L, D))`` with ``delta`` (k, D) inserted into every prompt."""
        adv = delta.unsqueeze(0).expand(ids.shape[0], -1, -1)  # (B, k, D)
        return insert(self.insertion, ids, embeds, None, adv)

    def run(self, ids: torch.Tensor, embeds: torch.Tensor, vocab_embeds: torch.Tensor, loss_fn: SoftLoss,
            generator: torch.Generator) -> SoftPromptResult:
        """``steps`` updates of ``delta`` that lower ``loss_fn``; returns the last ``delta``.

        ``ids``/``embeds`` are the clean prompt's token ids and word embeddings (B, L[, D]);
        ``vocab_embeds`` (V, D) the token embedding matrix (for the random start).
        """
        delta = torch.nn.Parameter(self.start(vocab_embeds, generator))  # (k, D)
        optimizer = torch.optim.Adam([delta], lr=self.lr)
        embeds = embeds.detach()
        losses = []
        for step in range(self.steps):
            in_ids, in_embeds = self.inputs(ids, embeds, delta)
            loss = loss_fn(in_ids, in_embeds, step)
            (grad,) = torch.autograd.grad(loss, [delta])
            losses.append(float(loss.detach()))
            if self.accumulate_grads and delta.grad is not None:
                delta.grad += grad  # the official never zeroes the attack optimiser's gradients
            else:
                delta.grad = grad
            if self.update == "fast_at":
                delta.grad.sign_()
            optimizer.step()
        self.latest = delta.detach().clone()
        return SoftPromptResult(self.latest, losses)
