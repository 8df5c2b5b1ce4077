"""Per-epoch deltas (erase.epochs) on their own, without a model: save, list, choose, reload."""

import pytest
import torch

from erase.epochs import EpochedResult, load_epoch, saved_epochs, snapshot
from pipelines import new_record
from pipelines.errors import EraseError


def epoch_tensors(epoch: int) -> dict[str, torch.Tensor]:
    return {"unet.a.weight": torch.full((2, 3), float(epoch)), "unet.b.bias": torch.arange(4.0) * epoch}

RECORD = new_record(method="x", config={}, concepts=["star"], seed=0, base_model="tiny", base_fingerprint="0" * 64, cost={})


def test_epochs_are_saved_listed_and_reloaded(tmp_path):
    epochs = {e: epoch_tensors(e) for e in (1, 2, 3)}
    result = EpochedResult(tensors=epochs[3], record=RECORD, epochs=epochs)
    chosen = result.with_epoch(2, "test")
    assert chosen.record["epochs"] == {"chosen": 2, "chosen_by": "test"} and torch.equal(chosen.tensors["unet.a.weight"], epochs[2]["unet.a.weight"])
    assert "epochs" not in result.record  # with_epoch does not touch the original
    with pytest.raises(EraseError, match="epoch 7 was not kept; this run has epochs 1, 2, 3"):
        result.with_epoch(7, "test")
    folder = str(tmp_path / "artifact")
    chosen.save(folder, pipeline=False)
    assert saved_epochs(folder) == [1, 2, 3] and saved_epochs(str(tmp_path)) == []
    first = load_epoch(folder, 1)
    assert all(torch.equal(first.tensors[n], epochs[1][n]) for n in epochs[1])
    assert first.record["epochs"]["chosen"] == 1
    with pytest.raises(EraseError, match="has no epoch 5; it keeps epochs 1, 2, 3"):
        load_epoch(folder, 5)


def test_snapshot_is_a_detached_copy():
    p = torch.nn.Parameter(torch.ones(3))
    copy = snapshot({"w": p})
    with torch.no_grad():
        p.add_(1)
    assert copy["w"].tolist() == [1.0, 1.0, 1.0] and not copy["w"].requires_grad
