"""What every erasure method is: a config class, a loss, and one shared ``fit``.

A method subclasses :class:`ErasureMethod` and supplies

* ``config_class`` (a :class:`~erase.config.MethodConfig` dataclass) and a one-line ``summary``;
* :meth:`~ErasureMethod.prepare`: build its data (prompts, cached generations), timed as data;
* :meth:`~ErasureMethod.loss`: the loss of one step, all randomness from the given generator;
* optionally :meth:`~ErasureMethod.trainable`, :meth:`~ErasureMethod.optimizer`,
  :meth:`~ErasureMethod.adjust_gradients` (SalUn's mask, DoCo's surgery).

:meth:`ErasureMethod.fit` does the rest once for all of them: it selects and snapshots the
trained tensors, freezes everything else, runs :func:`erase.training.train`, and returns an
:class:`~pipelines.ErasureResult` holding only the changed tensors, after putting the user's
pipeline back exactly as it was (weights, ``requires_grad``, gradient checkpointing).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from pipelines import ErasureResult, backbone_for, new_record, select_parameters
from pipelines.backbone import Backbone
from pipelines.cost import PeakMemory, Stopwatch
from pipelines.errors import ConfigError, TrainingDiverged
from pipelines.fingerprint import tensors_sha256
from pipelines.params import count

from .config import MethodConfig
from .official import OfficialSchedule
from .training import AuxiliaryState, Checkpointer, train

logger = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """How to run a fit; none of these change what is learned, except ``mixed_precision``."""

    model_name: str | None = None  # recorded as base.model; defaults to the pipeline's name_or_path
    work_dir: str | None = None  # where checkpoints go; None: no checkpoints
    checkpoint_every: int = 100
    mixed_precision: str = "no"  # "no", "bf16" or "fp16" (autocast; weights stay fp32)
    gradient_checkpointing: bool = False
    progress: bool = True


class ErasureMethod(ABC):
    """Base class of erasure methods (see the module docstring)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]]
    #: Bumped whenever the method's algorithm changes what it learns: benchmarks redo its cells.
    version: ClassVar[str] = "1"
    #: The official SD 1.x schedule's cost (iterations, per-iteration options), for
    #: ``erase bench --timing-only`` (:mod:`erase.official`); ``None``: not known.
    official: ClassVar[OfficialSchedule | None] = None
    #: Its artifact is a one-step generator (SFD's), sampled alone: no stack can hold it and no
    #: method can be trained in front of it, which a bench refuses before anything trains.
    one_step: ClassVar[bool] = False

    def __init__(self, config: MethodConfig) -> None:
        if not isinstance(config, self.config_class):
            raise ConfigError(f"{self.name} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    # --- what a method supplies ----------------------------------------------------------
    def trainable(self, backbone: Backbone) -> dict[str, torch.nn.Parameter]:
        """The tensors this method trains (default: the config's ``params`` preset)."""
        return select_parameters(backbone.components, self.config.params)

    def prepare(self, backbone: Backbone, params: dict[str, torch.nn.Parameter], originals: dict[str, torch.Tensor]) -> None:
        """Build data and frozen targets before training. ``originals`` are the base values."""

    @abstractmethod
    def loss(self, step: int, generator: torch.Generator) -> torch.Tensor:
        """The loss of training step ``step``; draw all randomness from ``generator``."""

    def optimizer(self, params: dict[str, torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params.values(), lr=self.config.lr)

    def adjust_gradients(self) -> None:
        """Called after backward, before the optimiser step (gradient masks, surgery)."""

    def auxiliary_state(self) -> AuxiliaryState | None:
        """What the method trains or accumulates beside the trained tensors (after :meth:`prepare`),
        for checkpoints: a resumed run restores it instead of restarting it."""
        return None

    def external_inputs(self) -> dict[str, str]:
        """Files the run reads beyond its config and base model, as ``{name: content hash}``.

        A cache keyed on the config and the model's name (the bench's cells) would otherwise
        reuse a result made from an older version of such a file (SFD's distilled generator).
        """
        return {}

    # --- the shared part ----------------------------------------------------------------
    def plan(self, pipe: Any) -> dict[str, Any]:
        """What :meth:`fit` would train, without training (``--dry-run``)."""
        backbone = backbone_for(pipe)
        params = self.trainable(backbone)
        total = sum(count(dict(m.named_parameters())) for m in backbone.components.values())
        components = sorted({n.partition(".")[0] for n in params})
        return {
            "method": self.name,
            "concepts": self.config.concepts,
            "trained_tensors": len(params),
            "trained_parameters": count(params),
            "total_parameters": total,
            "trained_fraction": count(params) / total,
            "components": components,
            "steps": self.config.steps,
        }

    def fit(self, pipe: Any, run: RunOptions | None = None) -> ErasureResult:
        """Train on ``pipe`` and return the result; ``pipe`` is left exactly as it was."""
        run = run or RunOptions()
        wall, data = Stopwatch(), Stopwatch()
        with wall, PeakMemory() as memory:
            backbone = backbone_for(pipe)
            params = self.trainable(backbone)
            for n, p in params.items():
                if p.dtype != torch.float32:
                    raise ConfigError(
                        f"trained tensor {n} is {p.dtype}; load the pipeline in float32 for training "
                        "(the weights are kept fp32 and --mixed-precision bf16 gives the speed)"
                    )
            originals = {n: p.detach().clone() for n, p in params.items()}
            base_fingerprint = tensors_sha256(originals)
            restore = _Freezer(backbone, params, run.gradient_checkpointing)
            try:
                with data:
                    self.prepare(backbone, params, originals)
                checkpointer = None
                if run.work_dir is not None:
                    checkpointer = Checkpointer(run.work_dir, self._fingerprint(base_fingerprint, run), run.checkpoint_every,
                                                self.auxiliary_state())
                try:
                    stats = train(
                        params,
                        self.optimizer(params),
                        self.loss,
                        steps=self.config.steps,
                        seed=self.config.seed,
                        mixed_precision=run.mixed_precision,
                        checkpointer=checkpointer,
                        grad_hook=self.adjust_gradients,
                        progress=run.progress,
                        desc=" ".join([self.name, ", ".join(self.config.concepts)]).strip(),
                    )
                except TrainingDiverged as e:  # the last good tensors as a partial result, marked as such
                    record = self._record(pipe, run, base_fingerprint, backbone, cost={})
                    record["diverged"] = {"message": str(e), "last_good_step": e.last_good_step, "steps": self.config.steps}
                    e.result = ErasureResult(tensors=e.last_good, record=record, base_pipe=pipe)
                    raise
                tensors = {n: p.detach().cpu().clone() for n, p in params.items()}
            finally:
                with torch.no_grad():
                    for n, p in params.items():
                        p.copy_(originals[n])
                restore()
        cost = {
            "train_seconds": round(stats.seconds, 3),
            "wall_seconds": round(wall.seconds, 3),
            "data_seconds": round(data.seconds, 3),
            "peak_rss_mb": round(memory.peak_rss_mb, 1),
            "peak_gpu_mb": round(memory.peak_gpu_mb, 1),
            "artifact_mb": round(sum(t.numel() * t.element_size() for t in tensors.values()) / 2**20, 3),
        }
        record = self._record(pipe, run, base_fingerprint, backbone, cost)
        record["train"] = stats.summary()
        return ErasureResult(tensors=tensors, record=record, base_pipe=pipe)

    def _record(self, pipe: Any, run: RunOptions, base_fingerprint: str, backbone: Backbone, cost: dict[str, Any]) -> dict[str, Any]:
        record = new_record(
            method=self.name,
            config=self.config.to_dict(),
            concepts=self.config.concepts,
            seed=self.config.seed,
            base_model=run.model_name or str(getattr(pipe, "name_or_path", "") or "unknown"),
            base_fingerprint=base_fingerprint,
            cost=cost,
        )
        record["run"] = {"mixed_precision": run.mixed_precision, "device": str(backbone.device), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        return record

    def _fingerprint(self, base_fingerprint: str, run: RunOptions) -> str:
        # key_values: an option added later, at its default, leaves checkpoints of runs under way resumable.
        parts = [self.name, self.config.key_values(), base_fingerprint, run.mixed_precision]
        inputs = self.external_inputs()
        if inputs:  # appended only when present: checkpoints of runs without such files keep their fingerprint
            parts.append(inputs)
        payload = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


class _Freezer:
    """Freeze everything but ``params`` (and optionally checkpoint activations); undo on call."""

    def __init__(self, backbone: Backbone, params: dict[str, torch.nn.Parameter], checkpointing: bool) -> None:
        self.modules = [backbone.unet, backbone.text_encoder, backbone.vae]
        self.flags = [(p, p.requires_grad) for m in self.modules for p in m.parameters()]
        self.training = [(m, m.training) for m in self.modules]
        for p, _ in self.flags:
            p.requires_grad_(False)
        for p in params.values():
            p.requires_grad_(True)
        for m in self.modules:
            m.eval()  # dropout off: the base model's behaviour is what we fine-tune
        self.checkpointed = []
        if checkpointing:
            for m in backbone.components.values():
                if not any(p.requires_grad for p in m.parameters()):
                    continue
                if hasattr(m, "enable_gradient_checkpointing"):  # diffusers
                    m.enable_gradient_checkpointing()
                else:  # transformers checkpoints only in train mode (CLIP has no dropout)
                    m.gradient_checkpointing_enable()
                    m.train()
                self.checkpointed.append(m)

    def __call__(self) -> None:
        for p, flag in self.flags:
            p.requires_grad_(flag)
            p.grad = None
        for m, was_training in self.training:
            m.train(was_training)
        for m in self.checkpointed:
            if hasattr(m, "disable_gradient_checkpointing"):
                m.disable_gradient_checkpointing()
            else:
                m.gradient_checkpointing_disable()
