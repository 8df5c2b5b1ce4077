"""`erase stack` and pipelines.stack: several erasures of one base in one artifact."""

import os

import pytest
import torch
from diffusers import StableDiffusionPipeline

from attacks.models import Models, resolve
from erase.cli import main
from pipelines import ErasureResult, backbone_for, new_record
from pipelines.errors import BaseMismatchError, ConfigError
from pipelines.fingerprint import tensors_sha256
from pipelines.params import resolve_tensors, select_parameters
from pipelines.stack import load_stacked


def erasure(pipe, base_folder, preset, suffix, method, fingerprint=None, sampling=None):
    """A hand-made artifact record and tensors: the ``preset`` tensors ending in ``suffix``, halved."""
    params = {n: p for n, p in select_parameters(backbone_for(pipe).components, preset).items() if n.endswith(suffix)}
    record = new_record(method=method, config={}, concepts=["star"], seed=0, base_model=base_folder,
                        base_fingerprint=fingerprint or tensors_sha256(params), cost={})
    if sampling:
        record["sampling"] = sampling
    return ErasureResult({n: p.detach() * 0.5 for n, p in params.items()}, record, base_pipe=pipe)


@pytest.fixture
def saved(tiny_pipe, tiny_folder, tmp_path):
    """Save an artifact made by ``erasure`` and return its folder."""
    def save(name, *args, **kwargs):
        folder = str(tmp_path / name)
        erasure(tiny_pipe, tiny_folder, *args, **kwargs).save(folder, pipeline=False)
        return folder
    return save


def test_the_stack_is_an_artifact_whose_pipeline_holds_every_erasure_in_plain_diffusers(saved, tiny_folder, tiny_pipe, tmp_path):
    unet = saved("unet-edit", "esd-x-strict", "to_k.weight", "esd")
    text = saved("te-edit", "te-full", "q_proj.weight", "advunlearn")
    out = str(tmp_path / "stacked")
    assert main(["stack", unet, text, "--out", out]) == 0
    plain = StableDiffusionPipeline.from_pretrained(os.path.join(out, "pipeline"), local_files_only=True)
    expected = load_stacked([unet, text])
    for component in ("unet", "text_encoder"):
        mine, theirs = getattr(plain, component).state_dict(), getattr(expected, component).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    for folder in (unet, text):  # each artifact's tensors are in, as saved
        result = ErasureResult.load(folder)
        live = resolve_tensors(backbone_for(plain).components, list(result.tensors))
        assert all(torch.equal(live[n], t) for n, t in result.tensors.items())
    stacked = ErasureResult.load(out)
    assert (stacked.method, stacked.components, stacked.concepts) == ("esd+advunlearn", {"unet", "text_encoder"}, ["star"])
    assert [(p["method"], p["components"]) for p in stacked.record["stack"]] == [("esd", ["unet"]), ("advunlearn", ["text_encoder"])]
    card = (tmp_path / "stacked" / "README.md").read_text()
    assert "## Stack" in card and unet in card and text in card
    # Its base fingerprint covers every tensor it changes: it applies to the base, and is what eval and attack resolve.
    stacked.check_base(tiny_pipe)
    assert resolve(out, None) == Models(out, os.path.abspath(tiny_folder), "artifact", ("text_encoder", "unet"))
    assert main(["stack", unet, text, "--out", out]) == 2  # nothing overwritten silently
    again = str(tmp_path / "stacked-again")  # a stack stacks like any artifact
    assert main(["stack", out, saved("te-edit-2", "te-full", "k_proj.weight", "fewshot"), "--out", again, "--no-pipeline"]) == 0
    assert ErasureResult.load(again).method == "esd+advunlearn+fewshot"


def test_a_stack_refuses_shared_tensors_another_base_a_one_step_generator_and_a_lone_artifact(saved, capsys):
    unet = saved("unet-edit", "esd-x-strict", "to_k.weight", "esd")
    also_unet = saved("unet-edit-2", "esd-x-strict", "to_k.weight", "salun")
    with pytest.raises(ConfigError, match="both change unet.*different tensors"):
        load_stacked([unet, also_unet])
    elsewhere = saved("te-other-base", "te-full", "q_proj.weight", "advunlearn", fingerprint="0" * 64)
    with pytest.raises(BaseMismatchError, match="made from base"):
        load_stacked([unet, elsewhere])
    one_step = saved("one-step", "te-full", "q_proj.weight", "sfd", sampling={"one_step": True, "t_init": 625})
    with pytest.raises(ConfigError, match="one-step generator"):
        load_stacked([unet, one_step])
    assert main(["stack", unet, "--out", "unused"]) == 2
    assert "two or more artifacts" in capsys.readouterr().err
