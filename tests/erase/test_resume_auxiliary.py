"""A killed SFD or DoCo run resumes to the tensors of an uninterrupted one: the fake score, the
discriminator, their optimisers, the EMA and DoCo's snapshots come back from the checkpoint, not from scratch."""

import pytest
import torch

from erase import DoCoConfig, SFDConfig
from erase.doco import DoCo
from erase.method import RunOptions
from erase.sfd import SFD
from pipelines import load_pipeline

CASES = {
    "sfd": (SFD, SFDConfig, {"concepts": ["star"], "steps": 6, "batch_size": 2, "lr": 1e-3, "lr_fake": 1e-3, "ema_halflife": 2}),
    "doco": (DoCo, DoCoConfig, {"concepts": ["star"], "steps": 6, "warm_up": 2, "batch_size": 2, "anchor_images": 4,
                                "generation_steps": 2, "d_width": 8, "collapse_floor": 0.0,
                                "snapshot_from": 3, "snapshot_every": 1, "snapshot": 6}),
}


class Killed(Exception):
    pass


@pytest.mark.parametrize("name", CASES)
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(name, tiny_folder, tmp_path):
    cls, config_class, options = CASES[name]
    whole_result = cls(config_class(**options)).fit(load_pipeline(tiny_folder), RunOptions(progress=False))
    whole = whole_result.tensors

    run = RunOptions(work_dir=str(tmp_path / "work"), checkpoint_every=2, progress=False)
    first = cls(config_class(**options))
    loss = first.loss

    def killed_at_step_5(step, generator):
        if step == 5:
            raise Killed
        return loss(step, generator)

    first.loss = killed_at_step_5
    with pytest.raises(Killed):
        first.fit(load_pipeline(tiny_folder), run)
    torch.manual_seed(1234)  # another process: whatever the global RNG would draw for fresh networks differs
    resumed = cls(config_class(**options)).fit(load_pipeline(tiny_folder), run)
    assert resumed.record["train"]["resumed_from"] == 4
    assert resumed.tensors.keys() == whole.keys()
    for n in whole:
        torch.testing.assert_close(resumed.tensors[n], whole[n], msg=n)
    for step, kept in getattr(whole_result, "epochs", {}).items():  # DoCo's snapshots, the one before the kill restored
        for n in kept:
            torch.testing.assert_close(resumed.epochs[step][n], kept[n], msg=f"step {step} {n}")
