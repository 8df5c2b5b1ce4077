import pytest
import torch

from erase import ESDConfig, erase
from erase.esd import ESD
from pipelines import backbone_for
from pipelines.errors import ConfigError
from tests.erase.preparing import prepare_method


def run(pipe, **overrides):
    values = {"concepts": ["star"], "steps": 3, "ddim_steps": 4, "lr": 1e-3, **overrides}
    config = ESDConfig(**values)
    return erase(pipe, config, progress=False)


def _prepared(pipe, **overrides):
    return prepare_method(ESD(ESDConfig(concepts=["star"], ddim_steps=4, **overrides)), pipe)


def test_from_base_with_eta_zero_gives_zero_loss_at_start(tiny_pipe):
    """The diffusers rewrite's form at eta = 0 asks the model for what it already predicts."""
    method, params = _prepared(tiny_pipe, negative_guidance=0.0, target_base="from")
    loss = method.loss(0, torch.Generator().manual_seed(0))
    # Zero up to float rounding: the frozen scores are computed in one batch of three, the
    # trained one alone, and batched kernels round differently in the last bits.
    assert loss.item() < 1e-10
    loss.backward()
    assert max(p.grad.abs().max().item() for p in params.values() if p.grad is not None) < 1e-6
    eta_one, _ = _prepared(tiny_pipe, negative_guidance=1.0, target_base="from")
    assert eta_one.loss(0, torch.Generator().manual_seed(0)).item() > 1e-6


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_default_target_is_the_papers_and_the_rewrites_eta_is_one_more(tiny_pipe, eta):
    """Paper/CompVis: target = e_0 - eta (e_c - e_0); the rewrite reaches it with eta + 1."""
    paper, _ = _prepared(tiny_pipe, negative_guidance=eta)
    assert paper.config.to_dict()["target_base"] == "uncond"
    rewrite, _ = _prepared(tiny_pipe, negative_guidance=eta + 1, target_base="from")
    a = paper.loss(0, torch.Generator().manual_seed(3)).item()
    b = rewrite.loss(0, torch.Generator().manual_seed(3)).item()
    assert a > 1e-6 and abs(a - b) <= 1e-5 * a
    mild, _ = _prepared(tiny_pipe, negative_guidance=eta, target_base="from")
    assert mild.loss(0, torch.Generator().manual_seed(3)).item() < a


def test_uncond_base_with_erase_from_is_refused(tiny_pipe):
    with pytest.raises(ConfigError, match="--target-base from"):
        erase(tiny_pipe, ESDConfig(concepts=["star"], erase_from="a shape", target_base="uncond"), progress=False)


def test_esd_x_changes_only_cross_attention_bit_for_bit(tiny_pipe):
    before = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    te_before = {k: v.clone() for k, v in tiny_pipe.text_encoder.state_dict().items()}
    result = run(tiny_pipe)
    assert result.tensors and all(".attn2." in n for n in result.tensors)
    # the user's pipeline is untouched by fit; applying changes exactly the attn2 tensors
    assert all(torch.equal(v, tiny_pipe.unet.state_dict()[k]) for k, v in before.items())
    result.apply_(tiny_pipe)
    after = tiny_pipe.unet.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".attn2." in k for k in changed)
    assert all(torch.equal(v, tiny_pipe.text_encoder.state_dict()[k]) for k, v in te_before.items())


def test_same_seed_same_weights_other_seed_other_weights(tiny_folder):
    from pipelines import load_pipeline

    a = run(load_pipeline(tiny_folder), seed=7)
    b = run(load_pipeline(tiny_folder), seed=7)
    c = run(load_pipeline(tiny_folder), seed=8)
    assert all(torch.equal(a.tensors[n], b.tensors[n]) for n in a.tensors)
    assert any(not torch.equal(a.tensors[n], c.tensors[n]) for n in a.tensors)


def test_training_moves_the_model_towards_the_target(tiny_pipe):
    """Held-out x_t: the erased model is closer to the negatively guided target than the base."""
    bb = backbone_for(tiny_pipe)
    config = ESDConfig(concepts=["star"], steps=40, ddim_steps=4, lr=1e-4, sampler="frozen")
    result = erase(tiny_pipe, config, progress=False)
    g = torch.Generator().manual_seed(123)
    x_t = bb.noise(4, g)
    t = torch.tensor([900, 700, 500, 300])
    cond = bb.encode(["", "star"])
    with torch.no_grad():
        uncond_out, concept_out = (bb.predict(x_t, t, c.expand(4, -1, -1)) for c in cond.split(1))
        target = uncond_out - 1.0 * (concept_out - uncond_out)
        base_error = (concept_out - target).pow(2).mean()
        with result.applied(tiny_pipe):
            erased_error = (bb.predict(x_t, t, cond[1:].expand(4, -1, -1)) - target).pow(2).mean()
    assert erased_error < 0.7 * base_error


def test_text_encoder_preset_trains_only_the_text_encoder(tiny_pipe):
    result = run(tiny_pipe, params="te-ffn")
    assert result.components == {"text_encoder"}


def test_several_concepts_and_erase_from(tiny_pipe):
    result = run(tiny_pipe, concepts=["star", "heart"], erase_from="a shape", timestep_mapping="compvis")
    assert result.concepts == ["star", "heart"] and result.record["config"]["erase_from"] == "a shape"
    assert result.record["config"]["target_base"] == "from"


@pytest.mark.parametrize(
    "bad, message",
    [({"concepts": []}, "no concept"), ({"concepts": ["  "]}, "no concept"), ({"lr": -1.0}, "--lr"), ({"steps": 0}, "--steps")],
)
def test_bad_configs_are_refused(tiny_pipe, bad, message):
    values = {"concepts": ["star"], **bad}
    with pytest.raises(ConfigError, match=message):
        erase(tiny_pipe, ESDConfig(**values), progress=False)


def test_v_prediction_model(tiny_v_folder):
    from pipelines import load_pipeline

    result = run(load_pipeline(tiny_v_folder))
    assert result.tensors and result.record["train"]["loss_last"] >= 0
