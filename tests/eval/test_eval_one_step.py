"""A one-step generator (SFD / SiD artifact) is drawn in ONE UNet evaluation per image by
``erase eval``, the drop-in loader and the demo, and UnlearnDiffAtk attacks it at its t_init;
an ESD artifact is drawn and attacked as before.

UNet calls are counted with a wrapper around ``UNet2DConditionModel.forward`` that records the
batch size and timestep of every call.
"""

import json
import os

import pytest
import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel

from pipelines import ErasureResult, backbone_for, load_pipeline
from pipelines.errors import EraseError
from pipelines.generation import SamplerSettings, generate
from pipelines.one_step import one_step_generate, pipeline_t_init, sampling_block
from tests.eval.test_eval_cli import cli, common, eval_command, world_files  # noqa: F401 (fixtures)
from tests.pipelines.test_artifact import make_result

T_INIT = 625


@pytest.fixture
def unet_calls(monkeypatch):
    """``[(batch, timestep), ...]`` of every UNet forward while the test runs."""
    calls = []
    forward = UNet2DConditionModel.forward

    def counting(self, sample, timestep, *args, **kwargs):
        t = torch.as_tensor(timestep).reshape(-1)
        calls.append((sample.shape[0], int(t[0])))
        return forward(self, sample, timestep, *args, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "forward", counting)
    return calls


def one_step_result(pipe, base_model):
    """A hand-made generator artifact: changed tensors plus the record key SFD writes (``sampling``)."""
    result = make_result(pipe)
    result.record["sampling"] = sampling_block(T_INIT)
    result.record["base"]["model"] = base_model
    return result


@pytest.fixture(scope="module")
def sfd_artifact(world_files, tiny_folder):  # noqa: F811
    folder = str(world_files["root"] / "one-step")
    one_step_result(load_pipeline(tiny_folder), tiny_folder).save(folder)
    return folder


def evaluate(capsys, files, model, out):
    code, _, err = cli(capsys, *common({**files, "artifact": model}, out), "--limit", "20", "--metrics", "ua", "--no-cache")
    assert code == 0, err
    return json.loads((out / "eval.json").read_text())


def test_eval_draws_a_one_step_artifact_in_one_unet_call_per_image(capsys, world_files, sfd_artifact, tmp_path, unet_calls):  # noqa: F811
    record = evaluate(capsys, world_files, sfd_artifact, tmp_path / "sfd")
    images = record["settings"]["images"]
    at_t_init = sum(b for b, t in unet_calls if t == T_INIT)
    base = sum(b for b, t in unet_calls if t != T_INIT)
    assert images == 20 and at_t_init == images  # the generator: one evaluation per image, at t_init, no CFG
    assert base == images * 2 * 2  # the base (default: the recorded one): 2 DDIM steps with batched CFG
    assert record["settings"]["model_sampling"] == {"steps": 1, "guidance": 1.0, "sampler": "one-step", "eta": 0.0,
                                                    "t_init": T_INIT}


def test_eval_of_an_esd_artifact_is_unchanged(capsys, world_files, tmp_path, unet_calls):  # noqa: F811
    record = evaluate(capsys, world_files, world_files["artifact"], tmp_path / "esd")
    images = record["settings"]["images"]
    assert sum(b for b, _ in unet_calls) == 2 * images * 2 * 2  # model and base: 2 DDIM steps, CFG each
    assert all(t != T_INIT for _, t in unet_calls) and "model_sampling" not in record["settings"]


def test_drop_in_loader_returns_a_pipeline_whose_plain_call_is_one_step(sfd_artifact, tmp_path, unet_calls):
    pipe = load_pipeline(sfd_artifact)
    assert isinstance(pipe, StableDiffusionPipeline) and pipeline_t_init(pipe) == T_INIT
    assert pipeline_t_init(load_pipeline(os.path.join(sfd_artifact, "pipeline"))) == T_INIT  # its pipeline/ too
    bb = backbone_for(pipe)
    z = bb.noise(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = one_step_generate(bb, z, bb.encode(["a star", "a heart"]), T_INIT)
    unet_calls.clear()
    got = pipe(["a star", "a heart"], latents=z, output_type="latent").images  # the plain call
    assert unet_calls == [(2, T_INIT)] and torch.allclose(got, want, atol=1e-4)
    # what it saves is a stock folder that plain diffusers loads (no class of ours in model_index.json)
    pipe.save_pretrained(str(tmp_path / "saved"))
    assert json.loads((tmp_path / "saved" / "model_index.json").read_text())["_class_name"] == "StableDiffusionPipeline"
    plain = StableDiffusionPipeline.from_pretrained(str(tmp_path / "saved"))
    again = plain(["a star", "a heart"], latents=z, output_type="latent", timesteps=[T_INIT], guidance_scale=1.0).images
    assert torch.allclose(again, want, atol=1e-4)


def test_applied_marks_the_shared_pipeline_only_while_applied(tiny_pipe, tiny_folder, unet_calls):
    """The demo's route: a result applied to the one shared base pipeline for one generation."""
    result = one_step_result(tiny_pipe, tiny_folder)
    bb, settings = backbone_for(tiny_pipe), SamplerSettings(steps=3, guidance=5.0)
    with result.applied(tiny_pipe):
        generate(bb, ["a star"], [0], settings)
        assert unet_calls == [(1, T_INIT)]
    assert pipeline_t_init(tiny_pipe) is None
    unet_calls.clear()
    generate(bb, ["a star"], [0], settings)
    assert [b for b, _ in unet_calls] == [2, 2, 2]  # the base again: 3 DDIM steps with CFG


def test_a_damaged_sampling_block_is_a_clear_error(sfd_artifact, tmp_path):
    import shutil

    folder = tmp_path / "damaged"
    shutil.copytree(sfd_artifact, folder)
    record = json.loads((folder / "erasure.json").read_text())
    record["sampling"]["t_init"] = "625"
    (folder / "erasure.json").write_text(json.dumps(record))
    with pytest.raises(EraseError, match="t_init"):
        ErasureResult.load(str(folder))
    assert os.path.isdir(folder / "pipeline")


def test_unlearndiffatk_attacks_a_one_step_generator_at_its_t_init_only(sfd_artifact, world_files):  # noqa: F811
    from attacks.unlearndiffatk import attack_timesteps, stage_timesteps

    assert attack_timesteps(backbone_for(load_pipeline(sfd_artifact)), 4) == [T_INIT] * 4
    esd = backbone_for(load_pipeline(world_files["artifact"]))
    assert attack_timesteps(esd, 4) == stage_timesteps(4) == [125, 375, 625, 875]
