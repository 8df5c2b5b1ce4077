"""AdvUnlearn ``--unet-from``: the text encoder trained in front of another erasure's UNet."""

import pytest
import torch

from erase import AdvUnlearnConfig, RunOptions
from erase.advunlearn import AdvUnlearn
from pipelines import ErasureResult, backbone_for, new_record
from pipelines.backbone import Backbone
from pipelines.errors import BaseMismatchError, ConfigError
from pipelines.fingerprint import tensors_sha256
from pipelines.params import resolve_tensors, select_parameters

QUICK = {"steps": 3, "warmup": 1, "ddim_steps": 3, "attack_steps": 2, "retain_batch": 2, "lr": 1e-2}


def save_edit(pipe, folder, preset="esd-x", scale=0.5, method="esd"):
    """A hand-made erasure of ``preset``'s tensors (scaled), saved as an artifact folder."""
    params = select_parameters(backbone_for(pipe).components, preset)
    record = new_record(method=method, config={}, concepts=["stripes"], seed=0, base_model="tiny",
                        base_fingerprint=tensors_sha256(params), cost={"train_seconds": 2.0, "wall_seconds": 1000.0})
    ErasureResult({n: p.detach() * scale for n, p in params.items()}, record, base_pipe=pipe).save(folder, pipeline=False)
    return folder


def fit(pipe, **overrides):
    config = AdvUnlearnConfig(**{"concepts": ["stripes"], **QUICK, **overrides})
    config.validate()
    method = AdvUnlearn(config)
    return method, method.fit(pipe, RunOptions(progress=False))


def test_the_student_is_the_erased_unet_and_every_target_the_base_model(tiny_pipe, tmp_path, monkeypatch):
    """Gradient-free predictions (x_t's sampler, the ESD target, the attacker's goal) run on the base UNet;
    those the text encoder learns from (the defender's, the attacker's) and the retain targets (the original
    encoder's outputs through the same UNet) on the erased one."""
    under = ErasureResult.load(save_edit(tiny_pipe, str(tmp_path / "esd")))
    live = resolve_tensors(backbone_for(tiny_pipe).components, list(under.tensors))
    base = {n: t.detach().clone() for n, t in live.items()}
    seen = {"frozen": set(), "student": set(), "retain": set()}
    predict, retain_targets, inside = Backbone.predict, AdvUnlearn._retain_targets, []

    def spying(self, *args, **kwargs):
        now = "erased" if all(torch.equal(live[n], under.tensors[n]) for n in live) else (
            "base" if all(torch.equal(live[n], base[n]) for n in live) else "mixed")
        seen["retain" if inside else "student" if torch.is_grad_enabled() else "frozen"].add(now)
        return predict(self, *args, **kwargs)

    def marking(self, *args):
        inside.append(True)
        try:
            return retain_targets(self, *args)
        finally:
            inside.clear()

    monkeypatch.setattr(Backbone, "predict", spying)
    monkeypatch.setattr(AdvUnlearn, "_retain_targets", marking)
    _, result = fit(tiny_pipe, unet_from=str(tmp_path / "esd"))
    assert seen == {"frozen": {"base"}, "student": {"erased"}, "retain": {"erased"}}
    assert all(torch.equal(live[n], base[n]) for n in live)  # the pipeline is left as it was
    # One artifact holding both edits, checked against the base on all of them, costing both trainings.
    assert result.components == {"unet", "text_encoder"}
    assert all(torch.equal(result.tensors[n], t) for n, t in under.tensors.items())
    result.check_base(tiny_pipe)
    record = result.record
    assert record["unet_from"]["method"] == "esd" and record["unet_from"]["cost"]["train_seconds"] == 2.0
    assert record["cost"]["train_seconds"] > 2.0 and record["cost"]["artifact_mb"] == round(result.size_mb, 3)
    result.save(str(tmp_path / "out"), pipeline=False)
    assert "trained in front of the UNet of `esd`" in (tmp_path / "out" / "README.md").read_text()


def test_the_erased_unet_changes_what_the_text_encoder_learns(tiny_pipe, tmp_path):
    _, plain = fit(tiny_pipe)
    _, same = fit(tiny_pipe, unet_from=save_edit(tiny_pipe, str(tmp_path / "null"), scale=1.0))
    _, behind = fit(tiny_pipe, unet_from=save_edit(tiny_pipe, str(tmp_path / "esd")))
    text = [n for n in plain.tensors]
    def mean_change(a, b):
        return sum((a.tensors[n] - b.tensors[n]).abs().sum().item() for n in text) / sum(a.tensors[n].numel() for n in text)

    # A null edit trains the same encoder (up to the rounding of the retain targets' own batch); a real one another.
    assert mean_change(plain, same) < 1e-5 and mean_change(plain, behind) > 1e-3


def test_the_bench_key_and_the_checkpoint_follow_the_artifacts_content(tiny_pipe, tmp_path):
    assert "unet_from" not in AdvUnlearnConfig(concepts=["stripes"]).key_values()  # earlier cells stay finished
    assert AdvUnlearn(AdvUnlearnConfig(concepts=["stripes"])).external_inputs() == {}
    folder = str(tmp_path / "esd")
    config = AdvUnlearnConfig(concepts=["stripes"], unet_from=save_edit(tiny_pipe, folder))
    first, checkpoint = AdvUnlearn(config).external_inputs(), AdvUnlearn(config)._fingerprint("base", RunOptions())
    save_edit(tiny_pipe, str(tmp_path / "other"), scale=0.25)
    (tmp_path / "esd" / "erasure.safetensors").write_bytes((tmp_path / "other" / "erasure.safetensors").read_bytes())
    assert AdvUnlearn(config).external_inputs() != first
    assert AdvUnlearn(config)._fingerprint("base", RunOptions()) != checkpoint  # an interrupted run does not resume on it


@pytest.mark.parametrize(
    "make, overrides, error, message",
    [
        (None, {}, ConfigError, "not an erasure artifact folder"),
        ("esd-x", {"params": "te-full+esd-x"}, ConfigError, "pick a text-encoder preset"),
        ("te-full", {}, ConfigError, "erasure of the UNet alone"),
    ],
)
def test_bad_unet_from_is_one_clear_error(tiny_pipe, tmp_path, make, overrides, error, message):
    folder = str(tmp_path / "edit")
    if make:
        save_edit(tiny_pipe, folder, preset=make)
    with pytest.raises(error, match=message):
        fit(tiny_pipe, unet_from=folder, **overrides)


def test_an_artifact_of_another_base_is_refused(tiny_pipe, tmp_path):
    folder = save_edit(tiny_pipe, str(tmp_path / "esd"))
    with ErasureResult.load(folder).applied(tiny_pipe):  # the pipeline no longer is that artifact's base
        with pytest.raises(BaseMismatchError, match="already applied"):
            fit(tiny_pipe, unet_from=folder)


def test_an_artifact_of_another_concept_is_said_and_recorded(tiny_pipe, tmp_path, caplog):
    """ESD of stripes under AdvUnlearn of dots: accepted (a user may want both gone), said once, and the
    artifact's concepts are both, so its model card and the demo name what it no longer draws."""
    folder = save_edit(tiny_pipe, str(tmp_path / "esd"))  # erased "stripes"
    with caplog.at_level("WARNING", logger="erase.advunlearn"):
        _, same = fit(tiny_pipe, unet_from=folder)
    assert same.concepts == ["stripes"] and not caplog.records
    with caplog.at_level("WARNING", logger="erase.advunlearn"):
        _, other = fit(tiny_pipe, concepts=["dots"], unet_from=folder)
    assert other.concepts == ["dots", "stripes"]
    assert [r.getMessage() for r in caplog.records if "erased stripes, and this run erases dots" in r.getMessage()]


def test_cli_run_counts_the_unet_it_stands_on(tiny_pipe, tiny_folder, tmp_path):
    """`erase run advunlearn --unet-from`: the artifact's cost is both trainings', the command's time on top."""
    from erase.cli import main

    under = save_edit(tiny_pipe, str(tmp_path / "esd"))
    out = tmp_path / "adv"
    assert main(["-q", "run", "advunlearn", "--model", tiny_folder, "--concept", "stripes", "--unet-from", under, "--steps", "3",
                 "--warmup", "1", "--ddim-steps", "3", "--attack-steps", "2", "--retain-batch", "2", "--out", str(out)]) == 0
    result = ErasureResult.load(str(out))
    assert result.components == {"unet", "text_encoder"} and result.record["unet_from"]["path"] == under
    assert result.record["cost"]["wall_seconds"] > 1000.0 + result.record["cost"]["train_seconds"] - 2.0
