"""Score identity distillation losses (SiD, Zhou et al. 2024) with SFD's forgetting target.

``shared/docs/algorithms.md`` §5. Both functions are pure: they take predictions, not
networks, so the math is testable on its own.

* :func:`sid_generator_loss`: the generator's SiD loss. With ``y_real`` the teacher's x0 estimate
  and ``y_fake`` the fake score's (both on ``x_t`` noised from ``x_g``)::

      sum (y_real - y_fake) * ((y_real - x_g) - alpha (y_real - y_fake)) / w,
      w = sg mean|x_g - y_real| (per sample, clipped at 1e-5)

  SFD's *forgetting* term is the same function with ``y_real`` computed by the teacher under the
  override prompt c_o, while ``y_fake`` and ``x_g`` come from the forget prompt c_f: the
  generator's score for the unsafe concept is pulled to the teacher's score for the safe one.
* :func:`fake_score_loss`: the fake score's denoising loss on (stop-gradient) generator samples,
  ``sum ||eps_psi(x_t) - eps||^2 / B`` with CFG applied to the fake net's output.

Losses are summed over pixels and averaged over the batch, as the official code does
(``loss.sum() / batch``); learning rates are set for that scale.
"""

from __future__ import annotations

import torch

#: SiD's floor on the per-sample normaliser ``w``.
MIN_WEIGHT = 1e-5


def _per_sample_sum(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(1)


def sid_generator_loss(x_g: torch.Tensor, y_real: torch.Tensor, y_fake: torch.Tensor, alpha: float) -> torch.Tensor:
    """SiD generator loss (see the module docstring); ``alpha = 1`` gives ``(y_real - y_fake)(y_fake - x_g) / w``."""
    with torch.no_grad():
        w = (x_g - y_real).abs().float().mean(dim=tuple(range(1, x_g.dim())), keepdim=True).clamp_min(MIN_WEIGHT)
    diff = (y_real - y_fake).float()
    loss = diff * ((y_real - x_g).float() - alpha * diff) / w
    return _per_sample_sum(loss).mean()


def fake_score_loss(eps_pred: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Denoising loss of the fake score: ``sum ||eps_pred - eps||^2`` per sample, batch mean."""
    return _per_sample_sum((eps_pred.float() - eps.float()) ** 2).mean()


def kept_rows(n: int, fraction: float, generator: torch.Generator) -> torch.Tensor | None:
    """Which of ``n`` prompts survive SiD's drop (each dropped with probability ``fraction``); None: all
    (no random draw, so a run without the drop keeps its random stream)."""
    if fraction <= 0:
        return None
    return torch.rand(n, generator=generator) >= fraction  # (n,)


def keep_or_replace(keep: torch.Tensor | None, cond: torch.Tensor, replacement: torch.Tensor) -> torch.Tensor:
    """``cond`` with the rows not in ``keep`` replaced by ``replacement`` (one row, broadcast)."""
    if keep is None:
        return cond
    keep = keep.to(cond.device).reshape(-1, *([1] * (cond.dim() - 1)))
    return torch.where(keep, cond, replacement.expand_as(cond).to(cond.dtype))
