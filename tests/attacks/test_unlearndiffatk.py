"""UnlearnDiffAtk's search on tiny models: the loss falls, tokens decode, settings are the official ones."""

import pytest
import torch

from attacks import PromptItem, UnlearnDiffAtk, UnlearnDiffAtkConfig
from attacks.relaxed import RelaxedTokens
from attacks.tokens import decode_prompt
from attacks.unlearndiffatk import denoising_error, stage_timesteps
from pipelines import backbone_for
from pipelines.errors import ConfigError
from tests.tiny import tiny_pipeline


def test_the_official_timestep_sweep():
    assert stage_timesteps(50) == list(range(10, 1000, 20))
    assert stage_timesteps(10) == [50, 150, 250, 350, 450, 550, 650, 750, 850, 950]
    assert stage_timesteps(1) == [500]


def sensitive(pipe, gain=10.0):
    """The tiny model with its cross-attention scaled up, so that the prompt changes its output."""
    with torch.no_grad():
        for name, p in pipe.unet.named_parameters():
            if "attn2.to_v" in name or "attn2.to_out.0.weight" in name:
                p.mul_(gain)
    return backbone_for(pipe)


def search(backbone, prompts, steps, seed=0):
    """``steps`` iterations at t = 500 on a fixed target latent with fixed noise; losses (steps, B)."""
    draws = [torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(seed + 100 + i)) for i in range(len(prompts))]
    x0, noise = torch.stack([d[0] for d in draws]), torch.stack([d[1] for d in draws])  # (B, 4, 8, 8) each
    ids = backbone.prompts.ids(prompts)
    tokens = RelaxedTokens(ids, backbone.prompts.embed_ids(ids), backbone.prompts.token_embedding.weight, 3,
                           "prefix_k", [torch.Generator().manual_seed(seed + i) for i in range(len(prompts))])

    def loss_fn(in_ids, in_embeds, active):
        return denoising_error(backbone, backbone.prompts.encode_embeds(in_ids, in_embeds), x0[active], noise[active], 500)

    return torch.stack([tokens.step(loss_fn) for _ in range(steps)]), tokens


def test_attack_loss_falls_over_40_iterations():
    losses, _ = search(sensitive(tiny_pipeline()), ["a star image", "a red circle"], 40)
    first, last = losses[:10].mean(0), losses[-10:].mean(0)
    assert (last < first).all(), (first, last)


def test_discretised_ids_are_valid_and_decode(memory_pipe):
    backbone = backbone_for(memory_pipe)
    _, tokens = search(backbone, ["a star image"], 3)
    adv_ids, in_ids = tokens.discrete()
    assert adv_ids.shape == (1, 3) and 0 <= adv_ids.min() and adv_ids.max() < len(backbone.tokenizer)
    assert in_ids.shape == (1, 77) and in_ids[0, 0] == backbone.tokenizer.bos_token_id
    assert in_ids[0, 1:4].tolist() == adv_ids[0].tolist()
    text = decode_prompt(backbone.tokenizer, in_ids[0])
    assert text.endswith("a star image") and len(text) > len("a star image")


def test_a_prompt_searches_the_same_alone_or_in_a_batch(memory_pipe):
    backbone = backbone_for(memory_pipe)
    alone, tokens_alone = search(backbone, ["a star image"], 4)
    together, tokens_together = search(backbone, ["a star image", "a red circle"], 4)
    assert torch.allclose(alone[:, 0], together[:, 0], atol=1e-5)
    assert torch.allclose(tokens_alone.u[0], tokens_together.u[0], atol=1e-6)


def test_v_prediction_models_are_scored_against_v():
    backbone = backbone_for(tiny_pipeline(prediction_type="v_prediction", seed=1))
    x0, noise = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    cond = backbone.encode(["a star"])
    a = backbone.schedule.alphas_cumprod[300].float()
    with torch.no_grad():
        out = backbone.predict(a.sqrt() * x0 + (1 - a).sqrt() * noise, 300, cond)
        expected = (out - (a.sqrt() * noise - (1 - a).sqrt() * x0)).square().mean()
        assert torch.allclose(denoising_error(backbone, cond, x0, noise, 300), expected.reshape(1), atol=1e-5)


def test_defaults_and_skips(memory_pipe):
    attack = UnlearnDiffAtk(UnlearnDiffAtkConfig())
    assert (attack.config.stages, attack.config.iterations, attack.config.lr, attack.config.weight_decay) == (50, 40, 0.01, 0.1)
    attack.resolve("Nudity")
    assert attack.config.tokens == 5  # the official k for nudity; 3 for styles and objects
    other = UnlearnDiffAtk(UnlearnDiffAtkConfig(max_prompt_ids=8))
    other.resolve("stripes")
    backbone = backbone_for(memory_pipe)
    assert other.config.tokens == 3 and other.skip_reason(backbone, PromptItem(0, "a star", 0, 5.0)) is None
    assert "--max-prompt-ids 8" in other.skip_reason(backbone, PromptItem(1, "a b c d e f g", 0, 5.0))
    assert "no room for 5" in attack.skip_reason(backbone, PromptItem(2, "star " * 71, 0, 5.0))
    budget = attack.budget()
    assert budget["max_steps_per_prompt"] == 2000 and budget["timesteps"][:2] == [10, 30]


@pytest.mark.parametrize("field, value", [("stages", 0), ("iterations", 0), ("tokens", 0), ("lr", 0.0),
                                          ("insertion", "add"), ("batch_size", 0)])
def test_bad_settings_are_refused(field, value):
    with pytest.raises(ConfigError):
        UnlearnDiffAtk(UnlearnDiffAtkConfig(**{field: value}))
