"""Weight saliency masks: which weights a method may change (SalUn, Fan et al., ICLR 2024).

A mask is computed from the gradient of a *forgetting* loss over the forget set and then
frozen; training changes only the weights it keeps::

    G = sum over batches b of  grad_theta loss_b        signed sum: batches may cancel each other
    s = |G|                                             one score per weight
    m = 1 for the floor(p * N) largest s, over ALL selected tensors together (global rank)

The sum is taken *before* the absolute value (``shared/docs/algorithms.md`` §2): a weight
pushed one way by half the batches and the other way by the rest is not salient. Ties at the
threshold are broken by position (tensor order, then flat index), so the same gradients give
the same mask everywhere.

The mask works through the gradients (:meth:`SaliencyMask.apply`, between backward and the
optimiser step). With a zero gradient from the very first step, Adam's moment estimates of a
masked weight stay zero and its update is exactly zero, so masked weights stay bit-identical;
decoupled weight decay (AdamW) would still shrink them, so use Adam without decay, as SalUn does.

The module is method-neutral: SalUn supplies its loss, another saliency method (SHS, SelFT) can
supply its own to :func:`signed_gradient_sum`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping

import torch
from safetensors import safe_open

from pipelines import sharding
from pipelines.errors import ConfigError, TrainingDiverged
from pipelines.weights import save_safetensors

logger = logging.getLogger(__name__)

FORMAT = "erase.saliency-mask/1"
_POSITIVE_INF_BITS = 0x7F800000  # bit pattern of float32 +inf


def signed_gradient_sum(params: Mapping[str, torch.nn.Parameter], losses: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{name: sum of d loss_b / d param}`` over the losses ``losses`` yields (built lazily).

    Autograd adds each backward's gradient into ``.grad``, which is exactly the official
    "zero_grad, backward, add to a running sum" without a second copy of the weights' size.
    Under ``accelerate launch`` every process passes its own share of the batches and the sums
    are added across processes, so every process ends with the same ``G`` (not inside
    ``pipelines.sharding.alone()``, where a bench cell runs by itself).
    """
    from accelerate.utils import reduce

    shared = sharding.num_processes() > 1
    for p in params.values():
        p.grad = None
    batches = 0
    for loss in losses:
        loss.backward()
        batches += 1
    sums = {}
    for name, p in params.items():
        g = p.grad if p.grad is not None else torch.zeros_like(p)  # a tensor the loss does not reach
        sums[name] = reduce(g.detach().float(), reduction="sum") if shared else g.detach().float()
        p.grad = None
    if not all(torch.isfinite(g).all() for g in sums.values()):
        raise TrainingDiverged("the forgetting loss's gradient is not finite, so no saliency mask can be ranked; "
                               "check the forget images, or use fp32 (--mixed-precision no)")
    logger.info("saliency: summed gradients of %d batches over %d tensors", batches, len(sums))
    return sums


class SaliencyMask:
    """One boolean tensor per trained tensor (qualified names): ``True`` where a weight may change."""

    def __init__(self, masks: Mapping[str, torch.Tensor], fraction: float | None = None) -> None:
        self.masks = {n: m.bool() for n, m in masks.items()}
        self.fraction = fraction  # the requested top fraction, when known

    # --- building --------------------------------------------------------------------
    @classmethod
    def from_gradients(cls, gradients: Mapping[str, torch.Tensor], fraction: float) -> SaliencyMask:
        """Keep the ``floor(fraction * N)`` weights of largest ``|gradient|``, ranked globally."""
        return cls(top_fraction({n: g.abs() for n, g in gradients.items()}, fraction), fraction)

    # --- using -------------------------------------------------------------------------
    def check(self, params: Mapping[str, torch.Tensor], source: str = "the mask") -> None:
        """A clear error unless the mask covers exactly ``params``, shape for shape."""
        missing = sorted(set(params) - set(self.masks))
        extra = sorted(set(self.masks) - set(params))
        if missing or extra:
            raise ConfigError(
                f"{source} does not match the trained tensors ({len(missing)} missing, e.g. {missing[:2]}; "
                f"{len(extra)} unexpected, e.g. {extra[:2]}); compute it with the same --params preset and model"
            )
        for n, p in params.items():
            if self.masks[n].shape != p.shape:
                raise ConfigError(f"{source}: tensor {n} has shape {tuple(self.masks[n].shape)}, the model's is {tuple(p.shape)}")

    def to(self, device: torch.device | str) -> SaliencyMask:
        return SaliencyMask({n: m.to(device) for n, m in self.masks.items()}, self.fraction)

    @torch.no_grad()
    def apply(self, params: Mapping[str, torch.nn.Parameter]) -> None:
        """Zero the gradient of every masked-out weight (call after backward, before the step).

        ``masked_fill_`` rather than a multiplication: an inf in a masked entry would otherwise
        become NaN, and a masked weight must not move whatever its gradient was.
        """
        for name, p in params.items():
            if p.grad is not None:
                p.grad.masked_fill_(~self.masks[name], 0)

    # --- reporting -----------------------------------------------------------------------
    @property
    def kept(self) -> int:
        return sum(int(m.sum()) for m in self.masks.values())

    @property
    def total(self) -> int:
        return sum(m.numel() for m in self.masks.values())

    def sparsity(self) -> dict[str, float]:
        """Per tensor, the fraction of its weights that are masked out (frozen)."""
        return {n: 1.0 - float(m.float().mean()) for n, m in self.masks.items()}

    def report(self) -> dict:
        """What goes into the erasure record."""
        return {
            "fraction": self.fraction,
            "kept": self.kept,
            "total": self.total,
            "sparsity": round(1.0 - self.kept / max(self.total, 1), 6),
            "sparsity_per_tensor": {n: round(s, 4) for n, s in self.sparsity().items()},
        }

    # --- files -------------------------------------------------------------------------
    def save(self, path: str, metadata: Mapping[str, object] | None = None) -> str:
        """Write a safetensors file of bool tensors keyed by qualified parameter names."""
        meta = {"format": FORMAT, "fraction": json.dumps(self.fraction), "info": json.dumps(dict(metadata or {}), default=str)}
        return save_safetensors({n: m.cpu() for n, m in self.masks.items()}, path, metadata=meta)

    @classmethod
    def load(cls, path: str, flag: str = "--mask") -> SaliencyMask:
        """Read a mask written by :meth:`save` (bool or uint8 tensors: non-zero means kept)."""
        if not os.path.isfile(path):
            raise ConfigError(f"{flag} {path!r} does not exist; pass a mask file written by an earlier run (--save-mask)")
        try:
            with safe_open(path, framework="pt") as f:
                metadata = f.metadata() or {}
                masks = {name: f.get_tensor(name) != 0 for name in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        except Exception as e:  # noqa: BLE001  safetensors raises several types for a damaged or foreign file
            raise ConfigError(f"{flag} {path!r} is not a safetensors mask file ({str(e).splitlines()[0]})") from None
        if not masks:
            raise ConfigError(f"{flag} {path!r} holds no tensors; compute a new mask (omit {flag})")
        fraction = json.loads(metadata["fraction"]) if "fraction" in metadata else None
        return cls(masks, fraction)


@torch.no_grad()
def top_fraction(scores: Mapping[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """Bool masks keeping exactly ``floor(fraction * N)`` entries of largest score over all tensors.

    Equal to a stable descending argsort of all scores concatenated (the official code), but
    without concatenating: at Stable Diffusion scale that copy and its int64 ranks would take
    about 10 GB, more than training itself. Scores are non-negative, and for non-negative
    float32 values the int32 bit patterns sort like the values, so the k-th largest value is
    found by bisection on the bit pattern (31 counting passes over the tensors).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"the mask fraction must be in [0, 1], got {fraction}")
    bits = {n: s.detach().float().contiguous().view(torch.int32) for n, s in scores.items()}
    if any(bool((b < 0).any()) or bool((b > _POSITIVE_INF_BITS).any()) for b in bits.values()):
        raise ConfigError("saliency scores must be non-negative and not NaN (take the absolute value of finite gradients)")
    total = sum(b.numel() for b in bits.values())
    k = int(fraction * total)  # floor, as the official rank < floor(p * N)
    if k == 0:
        return {n: torch.zeros_like(b, dtype=torch.bool) for n, b in bits.items()}

    def at_least(threshold: int) -> int:
        return sum(int((b >= threshold).sum()) for b in bits.values())

    # The largest bit pattern v with count(scores >= v) >= k is the k-th largest score.
    low, high = 0, _POSITIVE_INF_BITS
    while low < high:
        middle = (low + high + 1) // 2
        if at_least(middle) >= k:
            low = middle
        else:
            high = middle - 1
    masks = {n: b > low for n, b in bits.items()}
    remaining = k - sum(int(m.sum()) for m in masks.values())  # ties at the k-th value: first by position
    for n, b in bits.items():
        if remaining == 0:
            break
        tied = (b == low).flatten().nonzero().squeeze(1)[:remaining]  # (<= remaining,) flat indices
        masks[n].view(-1)[tied] = True
        remaining -= tied.numel()
    return masks
