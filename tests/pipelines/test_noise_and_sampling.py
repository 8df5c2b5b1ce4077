import pytest
import torch

from pipelines import backbone_for, load_pipeline, sample, sample_until
from pipelines.sampling import compvis_draw, ddim_scheduler


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_conversions_are_inverse(prediction, tiny_folder, tiny_v_folder):
    bb = backbone_for(load_pipeline(tiny_folder if prediction == "epsilon" else tiny_v_folder))
    assert bb.schedule.prediction_type == prediction
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    t = torch.tensor([10, 500, 990])
    x_t = bb.schedule.add_noise(x0, noise, t)
    target = bb.schedule.target(x0, noise, t)  # what a perfect model outputs
    torch.testing.assert_close(bb.schedule.eps_from_output(x_t, target, t), noise, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(bb.schedule.x0_from_output(x_t, target, t), x0, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(bb.schedule.eps_from_x0(x_t, x0, t), noise, atol=1e-3, rtol=1e-3)


def test_partial_sampler_conventions(tiny_pipe):
    bb = backbone_for(tiny_pipe)
    cond = bb.encode(["a star"])
    z = bb.noise(1, torch.Generator().manual_seed(0))
    K = 10
    ts = ddim_scheduler(bb, K).timesteps
    x0, t0 = sample_until(bb, cond, guidance=3.0, num_steps=K, stop_index=0, latents=z)
    assert torch.equal(x0, z * ddim_scheduler(bb, K).init_noise_sigma) and int(t0) == int(ts[0])
    x3, t3 = sample_until(bb, cond, guidance=3.0, num_steps=K, stop_index=3, latents=z)
    assert int(t3) == int(ts[3])
    full = sample(bb, cond, guidance=3.0, num_steps=K, latents=z)
    xK, tK = sample_until(bb, cond, guidance=3.0, num_steps=K, stop_index=K, latents=z)
    assert torch.equal(full, xK) and int(tK) == 0
    # running on from step 3 gives the same end point: the stop is a true prefix of the run
    assert not torch.equal(x3, full)


def test_guidance_one_is_the_conditional_prediction(tiny_pipe):
    bb = backbone_for(tiny_pipe)
    cond = bb.encode(["a star"])
    x = bb.noise(1, torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(bb.predict(x, 500, cond, guidance=1.0), bb.predict(x, 500, cond))
        guided = bb.predict(x, 500, cond, guidance=3.0)
        uncond = bb.predict(x, 500, bb.uncond(1))
        conditional = bb.predict(x, 500, cond)
    torch.testing.assert_close(guided, uncond + 3.0 * (conditional - uncond), atol=1e-5, rtol=1e-4)


def test_compvis_draw_reproduces_the_offset():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        stop, t = compvis_draw(50, 1000, g)
        k = 50 - stop + 1 if stop < 50 else None
        assert 1 <= stop <= 50 and 0 <= t < 1000
        if k is not None:  # the label lies in k's bucket, about two DDIM steps noisier than the latent
            assert round(k / 50 * 1000) <= t < round((k + 1) / 50 * 1000)


def test_soft_prompt_path_equals_token_path(tiny_pipe):
    bb = backbone_for(tiny_pipe)
    ids = bb.prompts.ids(["a striped heart", "a dotted star"])
    with torch.no_grad():
        via_embeds = bb.prompts.encode_embeds(ids, bb.prompts.embed_ids(ids))
        direct = bb.prompts.encode(["a striped heart", "a dotted star"])
    torch.testing.assert_close(via_embeds, direct)
    # and gradients reach the given embeddings
    embeds = bb.prompts.embed_ids(ids).detach().requires_grad_(True)
    bb.prompts.encode_embeds(ids, embeds).sum().backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0
