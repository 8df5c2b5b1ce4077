"""Small helpers shared by the mini-canvas training loops (schedule, EMA, progress)."""

from __future__ import annotations

import math

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int, floor: float = 0.05):
    """Linear warm-up then cosine decay to ``floor`` times the base learning rate."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class EMA:
    """Exponential moving average of parameters, with the usual warm-up of the decay."""

    def __init__(self, modules: list[torch.nn.Module], decay: float) -> None:
        self.decay = decay
        self.params = [p for m in modules for p in m.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]
        self.steps = 0

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - d)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        for p, s in zip(self.params, self.shadow):
            p.copy_(s)
