"""`erase stack` and pipelines.stack: several erasures of one base in one stock pipeline."""

import json
import os

import pytest
import torch
from diffusers import StableDiffusionPipeline

from attacks.models import resolve
from erase.cli import main
from pipelines import ErasureResult, backbone_for, new_record
from pipelines.errors import BaseMismatchError, ConfigError
from pipelines.fingerprint import tensors_sha256
from pipelines.params import resolve_tensors, select_parameters
from pipelines.stack import STACK_FILE, load_stacked


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


def test_the_stacked_pipeline_holds_every_erasure_and_loads_in_plain_diffusers(saved, tmp_path):
    unet = saved("unet-edit", "esd-x-strict", "to_k.weight", "esd")
    text = saved("te-edit", "te-full", "q_proj.weight", "advunlearn")
    out = str(tmp_path / "stacked")
    assert main(["stack", unet, text, "--out", out]) == 0
    plain = StableDiffusionPipeline.from_pretrained(out, local_files_only=True)
    expected = load_stacked([unet, text])
    for component in ("unet", "text_encoder"):
        mine, theirs = getattr(plain, component).state_dict(), getattr(expected, component).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    for folder in (unet, text):  # each artifact's tensors are in, as saved
        result = ErasureResult.load(folder)
        live = resolve_tensors(backbone_for(plain).components, list(result.tensors))
        assert all(torch.equal(live[n], t) for n, t in result.tensors.items())
    with open(os.path.join(out, "stack.json"), encoding="utf-8") as f:
        record = json.load(f)
    assert [a["method"] for a in record["artifacts"]] == ["esd", "advunlearn"]
    assert [a["components"] for a in record["artifacts"]] == [["unet"], ["text_encoder"]]
    card = (tmp_path / "stacked" / "README.md").read_text()
    assert card.startswith("# esd + advunlearn: `star` erased") and unet in card and text in card
    assert main(["stack", unet, text, "--out", out]) == 2  # nothing overwritten silently
    with pytest.raises(ConfigError, match="stacked pipeline, not an artifact"):
        load_stacked([out, text])


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


def test_a_stacked_folder_names_its_base_and_changed_components_to_eval_and_attack(saved, tiny_folder, tmp_path):
    from eval.cli import _default_base

    out = str(tmp_path / "stacked")
    assert main(["stack", saved("unet-edit", "esd-x-strict", "to_k.weight", "esd"),
                 saved("te-edit", "te-full", "q_proj.weight", "advunlearn"), "--out", out]) == 0
    models = resolve(out, None)
    assert (models.base, models.kind, models.components) == (os.path.abspath(tiny_folder), "pipeline", ("text_encoder", "unet"))
    assert _default_base(out, None) == os.path.abspath(tiny_folder)
    assert resolve(out, "elsewhere").base == "elsewhere"  # --base still wins
    with open(os.path.join(out, STACK_FILE), "w", encoding="utf-8") as f:
        f.write('{"artifacts": []}')
    with pytest.raises(ConfigError, match="not a readable stack record.*lacks 'base'"):
        resolve(out, None)
