"""SFD on tiny random components: the Cheap-verification checks of algorithms.md §SFD, export, errors."""

import os

import pytest
import torch

from erase import SFDConfig, erase
from erase.sfd import SFD
from pipelines import backbone_for, load_pipeline
from pipelines.errors import ConfigError
from pipelines.one_step import one_step_call, one_step_generate
from pipelines.params import select_parameters

FAST = {"concepts": ["star"], "steps": 2, "batch_size": 2, "lr": 1e-3, "lr_fake": 1e-3}


def prepared(pipe, **overrides) -> SFD:
    """An SFD method prepared on ``pipe`` the way ``fit`` prepares it."""
    method = SFD(SFDConfig(**{**FAST, **overrides}))
    method.config.validate()
    bb = backbone_for(pipe)
    bb.unet.requires_grad_(False)
    params = select_parameters(bb.components, "full")
    for p in params.values():
        p.requires_grad_(True)
    method.prepare(bb, params, {n: p.detach().clone() for n, p in params.items()})
    return method


def grad_norm(params) -> float:
    return sum(float(p.grad.abs().sum()) for p in params.values() if p.grad is not None)


def test_fake_equal_to_teacher_gives_zero_remain_gradient(tiny_pipe):
    """y_real and y_fake are the same function of x_g, so the loss is 0 and its gradient is 0 up to
    rounding (the two backward paths meet at x_t in a different summation order)."""
    method = prepared(tiny_pipe, g_forget=0.0, guidance_fake=3.0, guidance_real=3.0)
    loss = method.generator_loss(torch.Generator().manual_seed(0))
    loss.backward()
    same = grad_norm(method.params)
    # a different CFG of the two scores gives a real gradient (the check can fail)
    other = prepared(tiny_pipe, g_forget=0.0, guidance_fake=1.0, guidance_real=3.0)
    for p in other.params.values():
        p.grad = None
    other.generator_loss(torch.Generator().manual_seed(0)).backward()
    different = grad_norm(other.params)
    assert loss.item() == 0.0 and same < 1e-4 * different, (same, different)


def test_override_prompt_gives_a_forget_gradient_the_forget_prompt_does_not(tiny_pipe):
    method = prepared(tiny_pipe, g_remain=0.0)
    assert method.override.shape == method.forget.shape and not torch.equal(method.override, method.forget)
    method.generator_loss(torch.Generator().manual_seed(0)).backward()
    different = grad_norm(method.params)
    assert different > 1e-4
    for p in method.params.values():
        p.grad = None
    method.override = method.forget  # c_o = c_f: the teacher and the fake score agree again
    method.generator_loss(torch.Generator().manual_seed(0)).backward()
    assert grad_norm(method.params) < 1e-4 * different


def test_one_iteration_updates_the_fake_score_then_the_generator_and_not_the_teacher(tiny_pipe):
    method = prepared(tiny_pipe)
    teacher0 = {n: p.clone() for n, p in method.teacher.unet.named_parameters()}
    fake0 = {n: p.clone() for n, p in method.fake.unet.named_parameters()}
    loss = method.loss(0, torch.Generator().manual_seed(0))
    assert any(not torch.equal(p, fake0[n]) for n, p in method.fake.unet.named_parameters())  # psi stepped first
    assert all(p.grad is None for p in method.fake.unet.parameters())  # and its gradients are cleared
    assert grad_norm(method.params) == 0.0  # G not yet touched ...
    loss.backward()
    assert grad_norm(method.params) > 0  # ... its gradient comes from the generator loss
    assert all(p.grad is None for p in method.teacher.unet.parameters())
    assert all(torch.equal(p, teacher0[n]) for n, p in method.teacher.unet.named_parameters())
    assert all(p.grad is None for p in method.fake.unet.parameters())  # frozen inside G's loss: inputs only


def test_generator_is_the_closed_form_clean_estimate_and_stock_euler_matches(tiny_pipe):
    bb = backbone_for(tiny_pipe)
    z = bb.noise(2, torch.Generator().manual_seed(0))
    cond = bb.encode(["a star", "a circle"])
    t = 625
    a = bb.schedule.alphas_cumprod[t].float()
    with torch.no_grad():
        x_init = (1 - a).sqrt() * z
        eps = tiny_pipe.unet(x_init, torch.tensor([t, t]), encoder_hidden_states=cond).sample
        expected = (x_init - (1 - a).sqrt() * eps) / a.sqrt()
        got = one_step_generate(bb, z, cond, t)
    assert torch.allclose(got, expected, atol=1e-5)
    from pipelines.one_step import one_step_scheduler

    tiny_pipe.scheduler = one_step_scheduler(tiny_pipe.scheduler.config)
    stock = tiny_pipe(["a star", "a circle"], latents=z, output_type="latent", **one_step_call(t)).images
    assert torch.allclose(stock, got, atol=1e-4)


def test_fit_exports_a_stock_one_step_pipeline_and_is_reproducible(tiny_pipe, tmp_path):
    base = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    result = erase(tiny_pipe, SFDConfig(**FAST), progress=False)
    assert all(torch.equal(v, base[k]) for k, v in tiny_pipe.unet.state_dict().items())  # pipe left as it was
    assert result.record["sampling"]["t_init"] == 625 and result.components == {"unet"}
    assert any(not torch.equal(result.tensors[f"unet.{k}"], base[k]) for k in base)
    again = erase(tiny_pipe, SFDConfig(**FAST), progress=False)
    assert all(torch.equal(result.tensors[k], again.tensors[k]) for k in result.tensors)
    folder = result.save(str(tmp_path / "sfd"))
    from diffusers import StableDiffusionPipeline

    exported = StableDiffusionPipeline.from_pretrained(os.path.join(folder, "pipeline"))  # plain diffusers
    assert type(exported.scheduler).__name__ == "EulerDiscreteScheduler"
    assert "timesteps=[625], guidance_scale=1.0" in open(os.path.join(folder, "README.md")).read()  # the card says how
    loaded = load_pipeline(folder)  # the route users take
    bb = backbone_for(loaded)
    z = bb.noise(1, torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = one_step_generate(bb, z, bb.encode(["a star"]), 625)
    got = exported(["a star"], latents=z, output_type="latent", **result.record["sampling"]["call"]).images
    assert torch.allclose(got, want, atol=1e-4)


def test_bad_input_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--t-min"):
        SFDConfig(concepts=["star"], t_min=900, t_max=100).validate()
    (tmp_path / "f.txt").write_text("a photo of a star\n")
    with pytest.raises(ConfigError, match="--remain-prompts"):
        SFDConfig(concepts=["star"], forget_prompts=str(tmp_path / "f.txt")).validate()
    with pytest.raises(ConfigError, match="override"):
        SFDConfig(concepts=["star"], forget_prompts=str(tmp_path / "f.txt"), remain_prompts=str(tmp_path / "f.txt")).validate()


def test_own_prompts_replace_the_concept_for_the_override(tiny_pipe, tmp_path):
    (tmp_path / "f.txt").write_text("a photo of Brad Pitt\nBRAD PITT smiling\n")
    (tmp_path / "r.txt").write_text("a photo of a dog\n")
    method = SFD(SFDConfig(concepts=["brad pitt"], forget_prompts=str(tmp_path / "f.txt"), remain_prompts=str(tmp_path / "r.txt"),
                           override_concept="a middle aged man"))
    method.config.validate()
    remain, forget, override = method._prompts()
    assert override == ["a photo of a middle aged man", "a middle aged man smiling"] and remain == ["a photo of a dog"]
