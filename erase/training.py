"""The one training loop every erasure method runs in.

It owns what methods should not re-implement: the optimiser step, mixed precision and
multi-process gradient averaging (through ``accelerate``), a NaN/inf guard, checkpoints that a
killed run resumes from, and progress. A run stopped by a guard (the loop's NaN/inf check, or a
method raising :class:`~pipelines.errors.TrainingDiverged` from its loss or gradient hook) keeps
its last good state: :func:`keep_last_good`. A method supplies ``loss_fn(step, generator)``; all of a
step's randomness must come from that generator, which is seeded from ``(seed, step, rank)``,
so a resumed run continues exactly as an uninterrupted one would.

Checkpoints are safetensors (trained tensors, optimiser state, and a method's
:class:`AuxiliaryState`) plus JSON (step, losses and a fingerprint of the run's
configuration): no pickle. A checkpoint from a different configuration is never silently reused.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from pipelines import sharding
from pipelines.atomic import atomic_folder
from pipelines.errors import ConfigError, TrainingDiverged
from pipelines.weights import save_safetensors

logger = logging.getLogger(__name__)

LossFn = Callable[[int, torch.Generator], torch.Tensor]
GradHook = Callable[[], None]


def accelerator(mixed_precision: str = "no"):
    """The process's ``accelerate.Accelerator``.

    accelerate fixes mixed precision once per process. In a single process (tests, notebooks) a
    later call asking for another precision resets that state instead of failing; under
    ``accelerate launch`` the launcher's setting wins and a conflicting request is an error.
    """
    from accelerate import Accelerator, PartialState
    from accelerate.state import AcceleratorState

    try:
        return Accelerator(mixed_precision=mixed_precision)
    except ValueError:
        if PartialState().num_processes > 1:
            raise ConfigError(
                f"mixed precision '{mixed_precision}' conflicts with the one accelerate launch set; "
                "pass the same value to both"
            ) from None
        AcceleratorState._reset_state()
        return Accelerator(mixed_precision=mixed_precision)


@dataclass
class TrainStats:
    steps_done: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)

    def summary(self, points: int = 50) -> dict:
        stride = max(1, math.ceil(len(self.losses) / points))
        return {
            "steps_done": self.steps_done,
            "resumed_from": self.resumed_from,
            "loss_first": self.losses[0] if self.losses else None,
            "loss_last": self.losses[-1] if self.losses else None,
            "loss_curve": [round(x, 6) for x in self.losses[::stride]],
        }


@dataclass
class AuxiliaryState:
    """What a method trains or accumulates beside its trained tensors: SFD's fake score and its
    optimiser, DoCo's discriminator, an EMA of the trained tensors.

    A resumed run restores it with the trained tensors, so it continues as an uninterrupted run
    would instead of restarting these from scratch. ``modules`` are saved with their buffers
    (BatchNorm statistics); ``tensors`` are restored in place.
    """

    modules: dict[str, torch.nn.Module] = field(default_factory=dict)
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    tensors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    def flat(self) -> dict[str, torch.Tensor]:
        """Every module's state and every tensor, under ``aux/<name>/``."""
        out = {}
        for name, module in self.modules.items():
            out.update({f"aux/{name}/{k}": v for k, v in module.state_dict().items()})
        for name, tensors in self.tensors.items():
            out.update({f"aux/{name}/{k}": v for k, v in tensors.items()})
        return out

    def restore(self, saved: Mapping[str, torch.Tensor]) -> list[str]:
        """Load what ``saved`` holds; return the names it lacks (a checkpoint written before them)."""
        missing = []
        for name, target in [*self.modules.items(), *self.tensors.items()]:
            prefix = f"aux/{name}/"
            part = {k[len(prefix):]: v for k, v in saved.items() if k.startswith(prefix)}
            if not part:
                missing.append(name)
            elif isinstance(target, torch.nn.Module):
                target.load_state_dict(part)
            else:
                with torch.no_grad():
                    for k, t in target.items():
                        t.copy_(part[k].to(t.device, t.dtype))
        return missing


def _flatten_optimizer(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser's state as safetensors-ready tensors under ``prefix`` plus its JSON part."""
    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, state in opt["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}{idx}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": opt["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], prefix: str, meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, name = key[len(prefix):].split("/", 1)
            state.setdefault(int(idx), {})[name] = value
    for idx, scalars in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(scalars)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class Checkpointer:
    """Saves and restores ``(step, tensors, optimiser state, losses)`` in one folder, with the
    method's :class:`AuxiliaryState` if it has one."""

    def __init__(self, folder: str, fingerprint: str, every: int, auxiliary: AuxiliaryState | None = None) -> None:
        self.folder = folder
        self.fingerprint = fingerprint
        self.every = every
        self.auxiliary = auxiliary or AuxiliaryState()

    @property
    def _state(self) -> str:
        return os.path.join(self.folder, "checkpoint")

    def exists(self) -> bool:
        return os.path.exists(os.path.join(self._state, "state.json"))

    def save(self, step: int, params: Mapping[str, torch.nn.Parameter], optimizer, losses: list[float]) -> None:
        tensors = {f"param/{n}": p.detach().cpu().contiguous() for n, p in params.items()}
        opt_tensors, opt_meta = _flatten_optimizer(optimizer, "opt/")
        tensors.update(opt_tensors)
        tensors.update({k: v.detach().cpu().contiguous() for k, v in self.auxiliary.flat().items()})
        aux_optimizers = {}
        for name, aux_optimizer in self.auxiliary.optimizers.items():
            aux_tensors, aux_optimizers[name] = _flatten_optimizer(aux_optimizer, f"auxopt/{name}/")
            tensors.update(aux_tensors)
        meta = {"step": step, "fingerprint": self.fingerprint, **opt_meta, "aux_optimizers": aux_optimizers, "losses": losses}
        os.makedirs(self.folder, exist_ok=True)
        with atomic_folder(self._state, overwrite=True) as tmp:
            save_safetensors(tensors, os.path.join(tmp, "state.safetensors"))
            with open(os.path.join(tmp, "state.json"), "w", encoding="utf-8") as f:
                json.dump(meta, f)

    def load(self, params: Mapping[str, torch.nn.Parameter], optimizer) -> tuple[int, list[float]]:
        """Restore tensors, optimiser and auxiliary state; return ``(last completed step, losses)``."""
        with open(os.path.join(self._state, "state.json"), encoding="utf-8") as f:
            meta = json.load(f)
        if meta["fingerprint"] != self.fingerprint:
            raise ConfigError(
                f"'{self.folder}' holds a checkpoint of a run with a different configuration; delete it, "
                "or pass --fresh to start over"
            )
        tensors = load_file(os.path.join(self._state, "state.safetensors"))
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(tensors[f"param/{n}"].to(p.device, p.dtype))
        _restore_optimizer(optimizer, tensors, "opt/", meta)
        missing = self.auxiliary.restore(tensors)
        for name, aux_optimizer in self.auxiliary.optimizers.items():
            if name in meta.get("aux_optimizers", {}):
                _restore_optimizer(aux_optimizer, tensors, f"auxopt/{name}/", meta["aux_optimizers"][name])
            else:
                missing.append(f"{name} optimiser")
        if missing:
            logger.warning("the checkpoint in %s holds no %s (written by an older version): they restart from scratch",
                           self.folder, ", ".join(missing))
        return meta["step"], meta["losses"]


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The CPU generator of one step: a pure function of ``(seed, step, rank)``."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 131 + rank)


def _grads_finite(params: Mapping[str, torch.nn.Parameter]) -> bool:
    return all(p.grad is None or torch.isfinite(p.grad).all() for p in params.values())


def keep_last_good(e: TrainingDiverged, step: int, params: Mapping[str, torch.nn.Parameter], optimizer,
                   losses: list[float], checkpointer: Checkpointer | None) -> None:
    """Fill in ``e``'s last good state and, with a checkpointer, save it; the message says where.

    Every guard runs before the optimiser step, so the trained tensors are still those of the
    last good step (``step`` steps done): they go with the error, unless a method kept an
    earlier copy (``e.last_good``). With a checkpointer, the same state (tensors and optimiser)
    is saved as the run's resumable checkpoint; a method's earlier copy has no optimiser state
    to go with it, so it travels with the error alone (``erase run`` writes it beside ``--out``).
    """
    if e.last_good is None:
        e.last_good_step = step
        e.last_good = {n: p.detach().cpu().clone() for n, p in params.items()}
    if checkpointer is not None and e.last_good_step == step:
        checkpointer.save(step, params, optimizer, losses)
        e.args = (f"{e.args[0]} The last good state (after step {step}, before the bad update) is kept in {checkpointer.folder}.",)


def train(
    params: Mapping[str, torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    *,
    steps: int,
    seed: int,
    mixed_precision: str = "no",
    checkpointer: Checkpointer | None = None,
    grad_hook: GradHook | None = None,
    max_grad_norm: float | None = None,
    progress: bool = True,
    desc: str = "erase",
) -> TrainStats:
    """Run ``steps`` optimiser steps of ``loss_fn``; resume from ``checkpointer`` if it has state."""
    import time

    acc = accelerator(mixed_precision)
    stats = TrainStats()
    start = 0
    if checkpointer is not None and checkpointer.exists():
        start, stats.losses = checkpointer.load(params, optimizer)
        stats.resumed_from = start
        logger.info("resuming from step %d of %d (%s)", start, steps, checkpointer.folder)
    bar = tqdm(range(start, steps), desc=desc, initial=start, total=steps, disable=not (progress and sharding.is_main_process()))
    t0 = time.perf_counter()
    for step in bar:
        generator = step_generator(seed, step, sharding.process_index())
        try:
            with acc.autocast():
                loss = loss_fn(step, generator)
            acc.backward(loss)
            if sharding.num_processes() > 1:  # data-parallel training; a bench cell runs alone()
                for p in params.values():
                    if p.grad is not None:
                        p.grad = acc.reduce(p.grad, reduction="mean")
            if grad_hook is not None:
                grad_hook()
            value = float(loss.detach())
            if not math.isfinite(value) or not _grads_finite(params):
                raise TrainingDiverged(
                    f"the loss or its gradient became {value if not math.isfinite(value) else 'non-finite'} at step "
                    f"{step + 1}. Lower the learning rate (--lr) or use fp32 (--mixed-precision no)"
                )
        except TrainingDiverged as e:  # the loop's own guard or a method's (loss_fn, grad_hook)
            keep_last_good(e, step, params, optimizer, stats.losses, checkpointer if sharding.is_main_process() else None)
            raise
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(list(params.values()), max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        stats.losses.append(value)
        bar.set_postfix(loss=f"{value:.4g}")
        done = step + 1
        if checkpointer is not None and sharding.is_main_process() and checkpointer.every and done % checkpointer.every == 0 and done < steps:
            checkpointer.save(done, params, optimizer, stats.losses)
    stats.seconds = time.perf_counter() - t0
    stats.steps_done = steps
    return stats
