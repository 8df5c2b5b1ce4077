"""DoCo never diverges silently (erase/gan_guard.py): NaNs and a collapsing discriminator stop the run
with a message, and the last good trained tensors are kept (with the error, in the checkpoint, as OUT.diverged)."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from erase import DoCoConfig, doco, erase
from erase.surgery import ConceptPreservingGradient
from pipelines.errors import TrainingDiverged

FAST = {"concepts": ["star"], "steps": 6, "warm_up": 2, "batch_size": 2, "anchor_images": 4, "generation_steps": 2,
        "d_width": 8, "lr": 1e-2}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ERASE_CACHE", str(tmp_path / "cache"))


def trained(pipe) -> dict[str, torch.Tensor]:
    """The default (esd-x-strict) tensors as they are now, named as in a result."""
    return {f"unet.{n}": p.detach().clone() for n, p in pipe.unet.named_parameters() if ".attn2.to_k." in n or ".attn2.to_v." in n}


def inject_nan(monkeypatch, pipe, where: str, at_step: int) -> dict:
    """Make ``where`` non-finite at ``at_step`` (a UNet step); the returned dict gets the tensors right then."""
    seen: dict = {}
    calls = {"n": 0}

    def due() -> bool:  # the injected functions run once per UNet step, from step warm_up on
        calls["n"] += 1
        if calls["n"] == at_step - FAST["warm_up"] + 1:
            seen.update(trained(pipe))
            return True
        return False

    if where == "correct":
        original = ConceptPreservingGradient.correct

        def correct(self):
            original(self)
            if due():
                next(iter(self.params.values())).grad.fill_(float("nan"))

        monkeypatch.setattr(ConceptPreservingGradient, "correct", correct)
    else:
        original = getattr(doco.F if where == "mse_loss" else doco, where)

        def poisoned(*args, **kwargs):
            out = original(*args, **kwargs)
            return out * float("nan") if due() else out

        monkeypatch.setattr(doco.F if where == "mse_loss" else doco, where, poisoned)
    return seen


@pytest.mark.parametrize("where, named", [("generator_loss", "instance loss L_u"), ("mse_loss", "prior loss L_r"),
                                          ("correct", "corrected UNet gradient")])
def test_a_nan_stops_the_run_and_keeps_the_tensors_from_before_the_step(tiny_pipe, tmp_path, monkeypatch, where, named):
    base = trained(tiny_pipe)
    seen = inject_nan(monkeypatch, tiny_pipe, where, at_step=3)
    work = str(tmp_path / "work")
    with pytest.raises(TrainingDiverged, match=f"{named}.* became nan at step 4\\. Lower --lr.*last good state \\(after step 3") as info:
        erase(tiny_pipe, DoCoConfig(**FAST), progress=False, work_dir=work)
    e = info.value
    assert seen and any(not torch.equal(seen[n], base[n]) for n in base)  # one UNet step (step 3) was taken before
    assert e.last_good_step == 3 and set(e.last_good) == set(seen)
    assert all(torch.equal(e.last_good[n], seen[n]) for n in seen)
    assert all(torch.equal(e.result.tensors[n], seen[n]) for n in seen)
    assert e.result.record["diverged"]["last_good_step"] == 3 and e.result.record["doco"]["d_loss_last"] is not None
    checkpoint = load_file(os.path.join(work, "checkpoint", "state.safetensors"))
    assert all(torch.equal(checkpoint[f"param/{n}"], seen[n]) for n in seen)
    assert trained(tiny_pipe).keys() == base.keys() and all(torch.equal(t, base[n]) for n, t in trained(tiny_pipe).items())


def winning_discriminator(monkeypatch):
    """D's loss as if it won outright (a tiny value with its real gradient), at every step."""
    original = doco.discriminator_loss
    monkeypatch.setattr(doco, "discriminator_loss", lambda *a: original(*a) * 1e-4)


def test_a_collapsing_discriminator_stops_the_cli_run_and_writes_the_last_good_state(tiny_folder, tmp_path, monkeypatch, capsys):
    from erase.cli import main
    from pipelines import load_pipeline

    base = trained(load_pipeline(tiny_folder))
    winning_discriminator(monkeypatch)
    out = str(tmp_path / "no-star")
    argv = ["run", "doco", "--model", tiny_folder, "--concept", "star", "--steps", "8", "--warm-up", "2", "--batch-size", "2",
            "--anchor-images", "2", "--generation-steps", "2", "--d-width", "8", "--lr", "1e-2", "--collapse-patience", "3",
            "--device", "cpu", "--no-pipeline", "--out", out]
    assert main(["-q", *argv]) == 2
    err = capsys.readouterr().err
    assert "discriminator collapsed" in err and "steps 3-5" in err and "before step 3" in err and "Lower --lr" in err
    assert f"{out}.diverged" in err and not os.path.exists(out)
    with open(os.path.join(f"{out}.diverged", "erasure.json")) as f:
        record = json.load(f)
    assert record["diverged"]["last_good_step"] == 2 and record["doco"]["collapse_guard"]["longest_streak"] == 3
    # the streak began at the first UNet step (the warm-up's wins do not count): the last good state is the base
    kept = load_file(os.path.join(f"{out}.diverged", "erasure.safetensors"))
    assert kept.keys() == base.keys() and all(torch.equal(kept[n], base[n]) for n in base)
    assert main(["-q", *argv]) == 2  # a retry that diverges again keeps the first one's state
    assert f"{out}.diverged.2" in capsys.readouterr().err
    assert os.path.exists(os.path.join(f"{out}.diverged", "erasure.json")) and os.path.exists(os.path.join(f"{out}.diverged.2", "erasure.json"))


def test_the_collapse_rule_can_be_turned_off(tiny_pipe, monkeypatch):
    winning_discriminator(monkeypatch)
    result = erase(tiny_pipe, DoCoConfig(**FAST, collapse_floor=0.0, collapse_patience=1), progress=False)
    assert result.record["doco"]["collapse_guard"]["d_loss_min_after_warm_up"] < 0.1


def test_a_healthy_tiny_run_does_not_trip_even_at_patience_one(tiny_pipe):
    result = erase(tiny_pipe, DoCoConfig(**{**FAST, "steps": 10}, collapse_patience=1), progress=False)
    guard = result.record["doco"]["collapse_guard"]
    assert guard["longest_streak"] == 0 and guard["d_loss_min_after_warm_up"] > guard["floor"]
