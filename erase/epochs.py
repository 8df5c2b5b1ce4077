"""Per-epoch deltas: keep every epoch's trained tensors, save them, pick another epoch later.

A method whose stopping point is its hyper-parameter (few-shot erasure: gradient ascent has no
natural end) keeps the trained tensors after each epoch, only those, so that the epoch can be
chosen after training, by a rule or by the user, without training again. In the artifact they
are ``DIR/epochs/epoch_<n>.safetensors`` (``shared/docs/contracts.md``), keyed like
``erasure.safetensors``; epoch ``n`` is the state after ``n`` passes over the data (epoch 0
would be the base model, which is not stored). The record says which epoch
``erasure.safetensors`` holds under ``record["epochs"]["chosen"]``.

    result = load_epoch("out/no-stripes", 3)   # an ErasureResult holding epoch 3
    result.apply_(pipe)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import torch
from safetensors.torch import load_file

from pipelines import ErasureResult
from pipelines.errors import EraseError
from pipelines.weights import save_safetensors

EPOCHS_DIR = "epochs"
_FILE = re.compile(r"epoch_(\d+)\.safetensors")

Tensors = dict[str, torch.Tensor]


def epoch_path(folder: str, epoch: int) -> str:
    return os.path.join(folder, EPOCHS_DIR, f"epoch_{epoch}.safetensors")


def snapshot(params: dict[str, torch.nn.Parameter]) -> Tensors:
    """CPU copies of the trained tensors as they are now."""
    return {n: p.detach().cpu().clone() for n, p in params.items()}


@dataclass
class EpochedResult(ErasureResult):
    """An :class:`ErasureResult` that also carries every epoch's tensors and saves them.

    ``tensors`` is the chosen epoch; ``epochs`` maps 1..E to each epoch's tensors.
    """

    epochs: dict[int, Tensors] = field(default_factory=dict, repr=False, compare=False)

    def with_epoch(self, epoch: int, chosen_by: str) -> EpochedResult:
        """The same result holding ``epoch``'s tensors, the record saying so."""
        if epoch not in self.epochs:
            raise EraseError(f"epoch {epoch} was not kept; this run has epochs {', '.join(map(str, sorted(self.epochs)))}")
        record = {**self.record, "epochs": {**self.record.get("epochs", {}), "chosen": epoch, "chosen_by": chosen_by}}
        return EpochedResult(tensors=self.epochs[epoch], record=record, base_pipe=self.base_pipe, epochs=self.epochs)

    def save(self, folder: str, **options) -> str:
        """:meth:`ErasureResult.save`, then ``epochs/`` beside it.

        The epoch files are written after the atomic artifact folder (each file atomically):
        a run killed in between leaves a valid artifact without ``epochs/``.
        """
        super().save(folder, **options)
        os.makedirs(os.path.join(folder, EPOCHS_DIR), exist_ok=True)
        for epoch, tensors in sorted(self.epochs.items()):
            save_safetensors(tensors, epoch_path(folder, epoch), metadata={"format": "erase-delta", "epoch": str(epoch)})
        return folder


def saved_epochs(folder: str) -> list[int]:
    """The epochs an artifact folder keeps, ascending (empty if it keeps none)."""
    directory = os.path.join(folder, EPOCHS_DIR)
    if not os.path.isdir(directory):
        return []
    return sorted(int(m.group(1)) for name in os.listdir(directory) if (m := _FILE.fullmatch(name)))


def load_epoch(folder: str, epoch: int) -> ErasureResult:
    """The artifact in ``folder`` with epoch ``epoch`` in place of the one it chose."""
    result = ErasureResult.load(folder)
    kept = saved_epochs(folder)
    if epoch not in kept:
        have = f"it keeps epochs {', '.join(map(str, kept))}" if kept else "it keeps no epochs/ folder"
        raise EraseError(f"'{folder}' has no epoch {epoch}; {have}")
    tensors = load_file(epoch_path(folder, epoch))
    if set(tensors) != set(result.tensors):
        raise EraseError(f"'{epoch_path(folder, epoch)}' does not hold the tensors of erasure.safetensors; re-run the erasure")
    record = {**result.record, "epochs": {**result.record.get("epochs", {}), "chosen": epoch, "chosen_by": "user (load_epoch)"}}
    return ErasureResult(tensors=tensors, record=record)
