"""AdvUnlearn on tiny random components: what trains, the attacker inside the loop, the retain
term, the data, the errors and the command line."""

import json
import os

import pytest
import torch

from erase import AdvUnlearnConfig, RunOptions, erase
from erase.advunlearn import AdvUnlearn
from erase.retain import retain_pool
from pipelines import backbone_for
from pipelines.errors import ConfigError
from pipelines.params import select_parameters

QUICK = {"steps": 4, "warmup": 1, "ddim_steps": 4, "attack_steps": 3, "retain_batch": 2, "lr": 1e-2}


def fit(pipe, **overrides):
    config = AdvUnlearnConfig(**{"concepts": ["stripes"], **QUICK, **overrides})
    config.validate()
    method = AdvUnlearn(config)
    return method, method.fit(pipe, RunOptions(progress=False))


@pytest.mark.parametrize("preset", ["te-full", "te-layers:1-1", "te-ffn"])
def test_only_the_chosen_text_encoder_tensors_change(tiny_pipe, preset):
    bb = backbone_for(tiny_pipe)
    unet_before = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    te_before = {f"text_encoder.{k}": v.detach().clone() for k, v in tiny_pipe.text_encoder.named_parameters()}
    _, result = fit(tiny_pipe, params=preset)
    assert set(result.tensors) == set(select_parameters(bb.components, preset))
    expected = {n.replace("text_model.", "") for n in result.tensors}  # artifact names carry the diffusers prefix
    assert result.components == {"text_encoder"}
    assert not any("embeddings" in n for n in expected)
    with result.applied(tiny_pipe):
        after = {f"text_encoder.{k}": v for k, v in tiny_pipe.text_encoder.named_parameters()}
        changed = {k for k in te_before if not torch.equal(te_before[k], after[k])}
        assert all(torch.equal(v, tiny_pipe.unet.state_dict()[k]) for k, v in unet_before.items())
    assert changed and changed <= expected and not any("embeddings" in n for n in changed), changed
    if preset == "te-layers:1-1":
        assert all(".layers.1." in n for n in changed)
    now = {f"text_encoder.{k}": v for k, v in tiny_pipe.text_encoder.named_parameters()}
    assert all(torch.equal(v, now[k]) for k, v in te_before.items())  # pipe as it was


def test_every_attack_in_the_loop_lowers_its_loss(tiny_pipe):
    """The inner attacker, run against the text encoder being trained, finds embeddings that
    bring the original model's conditional noise back closer than where it started."""
    method, result = fit(tiny_pipe, steps=5, warmup=2, attack_steps=8, attack_lr=5e-2, attack_init="random")
    attacks = result.record["attack"]
    assert attacks["count"] == 3 and [a["step"] for a in attacks["losses"]] == [2, 3, 4]
    assert all(a["last"] < a["first"] for a in attacks["losses"]), attacks
    assert method.delta.shape == (method.config.attack_k, tiny_pipe.text_encoder.config.hidden_size)  # one row per embedding


def test_the_attacked_prompt_brings_the_concept_back(tiny_pipe):
    """After ESD warm-up, the attacker's embedding makes the current text encoder reproduce the
    original model's noise for the concept better than the clean prompt does: it finds what the
    defender has not unlearned (the reason for the min-max). On the tiny random model the
    unconditional and conditional noises are nearly equal, so the ESD loss itself is no signal;
    measured: 3.4e-4 attacked vs 3.8e-4 clean."""
    method, result = fit(tiny_pipe, steps=6, warmup=5)
    bb = backbone_for(tiny_pipe)
    params = select_parameters(bb.components, "te-full")
    originals = {n: p.detach().clone() for n, p in params.items()}
    with result.applied(tiny_pipe):
        method.prepare(bb, params, originals)
        g = torch.Generator().manual_seed(3)
        cond = method.frozen_concept["stripes"]
        x_t, t = method._draw(cond, g)
        with torch.no_grad():
            e = bb.predict(torch.cat([x_t, x_t]), t, torch.cat([method.frozen_uncond, cond]))  # original: "", c
        method.attacker.lr, method.attacker.steps, method.attacker.init = 5e-2, 20, "random"
        method._attack("stripes", x_t, t, 0, g)
        with torch.no_grad():
            clean = torch.nn.functional.mse_loss(bb.predict(x_t, t, bb.encode(["stripes"])), e[1:])
            attacked = torch.nn.functional.mse_loss(bb.predict(x_t, t, method._adversarial("stripes")), e[1:])
    assert attacked < clean * 0.95, (float(attacked), float(clean))


def test_the_retain_term_reduces_drift_on_retain_prompts(tiny_pipe):
    bb = backbone_for(tiny_pipe)
    pool, _ = retain_pool(["stripes"])
    prompts = pool[::9][:10]
    x = torch.randn(bb.latent_shape(len(prompts)), generator=torch.Generator().manual_seed(5))
    t = torch.tensor(400)
    with torch.no_grad():
        before = bb.predict(x, t, bb.encode(prompts))

    def drift(weight):
        _, result = fit(tiny_pipe, steps=8, warmup=7, retain_weight=weight, retain_batch=5, lr=3e-2)
        with result.applied(tiny_pipe), torch.no_grad():
            return float(torch.nn.functional.mse_loss(bb.predict(x, t, bb.encode(prompts)), before))

    free, kept = drift(0.0), drift(3.0)
    assert kept < free, (kept, free)


def test_a_union_preset_trains_the_text_encoder_and_the_unet_each_at_its_rate(tiny_pipe):
    bb = backbone_for(tiny_pipe)
    base = {n: p.detach().clone() for n, p in select_parameters(bb.components, "te-full+esd-x").items()}
    _, result = fit(tiny_pipe, params="te-full+esd-x", unet_lr=1e-6)
    assert set(result.tensors) == set(base) and result.components == {"text_encoder", "unet"}
    moved = {n: (result.tensors[n] - base[n]).abs().max().item() for n in base}
    unet = [v for n, v in moved.items() if n.startswith("unet.")]
    text = [v for n, v in moved.items() if n.startswith("text_encoder.")]
    # Adam moves each tensor by about its rate per step: 4 steps at 1e-6 for the UNet, at 1e-2 for the text encoder.
    assert 0 < max(unet) <= 4 * 1e-6 * 1.01 and max(text) > 1e-3


def test_unet_lr_at_its_default_leaves_the_bench_cell_key_as_it_was():
    # Cells benched before --unet-lr existed must stay finished: the key leaves it out at its default.
    plain, given = AdvUnlearnConfig(concepts=["stripes"]), AdvUnlearnConfig(concepts=["stripes"], unet_lr=3e-4)
    assert "unet_lr" in plain.to_dict() and "unet_lr" not in plain.key_values()
    assert given.key_values()["unet_lr"] == 3e-4
    assert {k: v for k, v in plain.to_dict().items() if k not in ("unet_lr", "unet_from")} == plain.key_values()


def test_same_seed_same_tensors(tiny_pipe):
    (_, a), (_, b), (_, c) = (fit(tiny_pipe, seed=s) for s in (4, 4, 5))
    assert all(torch.equal(a.tensors[n], b.tensors[n]) for n in a.tensors)
    assert any(not torch.equal(a.tensors[n], c.tensors[n]) for n in a.tensors)


def test_official_resampling_and_sign_updates_run(tiny_pipe):
    _, result = fit(tiny_pipe, steps=3, attack_resample=True, attack_update="fast_at", attack_accumulate_grads=False,
                    attack_insertion="suffix_k", attack_k=2)
    assert result.record["attack"]["count"] == 2 and result.record["train"]["steps_done"] == 3


def test_official_preset_fills_the_defaults_and_explicit_values_win():
    config = AdvUnlearnConfig(concepts=["nudity"], preset="official", attack_steps=7)
    config.validate()
    assert (config.steps, config.lr, config.warmup, config.attack_resample, config.attack_steps) == (1000, 1e-5, 200, True, 7)
    # The official attacker is one word embedding, whatever the mini-canvas default is.
    assert (config.attack_k, config.retain_weight, config.retain_batch) == (1, 0.3, 5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"warmup": 4, "steps": 4}, "leaves no adversarial iteration"),
        ({"attack_steps": 0}, "--attack-steps must be positive"),
        ({"lr": -1.0}, "--lr must be positive"),
        ({"unet_lr": 0.0}, "--unet-lr must be positive"),
        ({"retain_weight": -0.5}, "non-negative"),
        ({"concepts": []}, "no concept to erase"),
    ],
)
def test_bad_config_is_one_clear_error(tiny_pipe, overrides, message):
    with pytest.raises(ConfigError, match=message):
        erase(tiny_pipe, AdvUnlearnConfig(**{"concepts": ["stripes"], **overrides}), progress=False)


def test_cli_run_writes_a_text_encoder_only_artifact(tiny_folder, tmp_path, capsys):
    """`erase run advunlearn`: the delta holds only text-encoder tensors, with the plain
    CLIPTextModel folder that drops into the base pipeline and gives the erased images."""
    import numpy as np
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file
    from transformers import CLIPTextModel

    from erase.cli import main
    from pipelines import load_erased, load_pipeline

    assert main(["run", "advunlearn", "--model", tiny_folder, "--concept", "stripes", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["components"] == ["text_encoder"] and plan["attacks"] == 100 and plan["retain_prompts"] == 90
    out = str(tmp_path / "no-stripes")
    assert main(["-q", "run", "advunlearn", "--model", tiny_folder, "--concept", "stripes", "--steps", "3", "--warmup", "1",
                 "--ddim-steps", "3", "--attack-steps", "2", "--lr", "1e-2", "--out", out]) == 0
    tensors = load_file(f"{out}/erasure.safetensors")
    assert tensors and all(n.startswith("text_encoder.") for n in tensors)
    with open(f"{out}/erasure.json") as f:
        record = json.load(f)
    assert record["method"] == "advunlearn" and record["attack"]["count"] == 2 and record["data"]["retain_prompts"] == 90
    swapped = StableDiffusionPipeline.from_pretrained(
        tiny_folder, text_encoder=CLIPTextModel.from_pretrained(f"{out}/text_encoder"), safety_checker=None)
    erased, base = load_erased(out, base=load_pipeline(tiny_folder)), load_pipeline(tiny_folder)

    def draw(pipe):
        return pipe("A star image in stripes style.", num_inference_steps=3, generator=torch.Generator().manual_seed(0),
                    output_type="np").images

    assert np.allclose(draw(swapped), draw(erased), atol=1e-5)
    assert not np.allclose(draw(base), draw(erased), atol=1e-4)
    assert main(["run", "advunlearn", "--model", tiny_folder, "--concept", "stripes", "--warmup", "500", "--dry-run"]) == 2
    assert os.path.isdir(f"{out}/pipeline")
