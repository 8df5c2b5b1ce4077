"""SFD's two stages: stage one (``--stage distil``, plain SiD) and where stage two starts G from."""

import pytest
import torch

from erase import SFDConfig, erase
from erase import sfd as sfd_module
from erase.sfd import DISTIL, SFD
from pipelines import backbone_for, load_pipeline
from pipelines.errors import ConfigError
from pipelines.params import select_parameters


def test_distil_stage_refuses_what_only_forgetting_uses_and_takes_its_own_defaults(tmp_path):
    with pytest.raises(ConfigError, match="drop --concept"):
        SFDConfig(stage="distil", concepts=["star"]).validate()
    with pytest.raises(ConfigError, match="drop --g-forget"):
        SFDConfig(stage="distil", g_forget=0.5).validate()
    (tmp_path / "p.txt").write_text("a photo of a dog\n")
    with pytest.raises(ConfigError, match="only --remain-prompts"):
        SFDConfig(stage="distil", forget_prompts=str(tmp_path / "p.txt"), remain_prompts=str(tmp_path / "p.txt")).validate()
    config = SFDConfig(stage="distil", lr=3e-4)
    config.validate()
    config.validate()  # idempotent: a config read back from a record validates again
    assert (config.sg_forget, config.g_forget) == (0.0, 0.0)
    assert config.lr == 3e-4 and config.steps == DISTIL["steps"] and config.lr_fake == DISTIL["lr_fake"]


def test_an_explicit_value_equal_to_the_default_beats_the_stage_and_preset_defaults(tmp_path):
    from erase.advunlearn import OFFICIAL, AdvUnlearnConfig
    from erase.config import build_config

    (tmp_path / "p.txt").write_text("a photo of a dog\n")
    given = build_config(SFDConfig, stage="distil", remain_prompts=str(tmp_path / "p.txt"), ema_halflife=0, lr=3e-5)
    assert (given.ema_halflife, given.lr) == (0, 3e-5)  # both are stage two's defaults, typed on purpose
    assert given.steps == DISTIL["steps"] and given.lr_fake == DISTIL["lr_fake"]
    untouched = build_config(SFDConfig, stage="distil", remain_prompts=str(tmp_path / "p.txt"))
    assert untouched.ema_halflife == DISTIL["ema_halflife"] and untouched.lr == DISTIL["lr"]
    official = build_config(AdvUnlearnConfig, concepts=["star"], preset="official", lr=1e-3)
    assert official.lr == 1e-3 and official.attack_steps == OFFICIAL["attack_steps"]
    assert build_config(AdvUnlearnConfig, concepts=["star"], preset="official").lr == OFFICIAL["lr"]


def test_distil_on_your_own_model_needs_remain_prompts(tiny_pipe):
    with pytest.raises(ConfigError, match="--remain-prompts"):
        erase(tiny_pipe, SFDConfig(stage="distil", steps=1, batch_size=1), progress=False)


def test_distil_trains_the_generator_on_remain_prompts_only_and_erases_nothing(tiny_pipe, tmp_path):
    (tmp_path / "r.txt").write_text("a photo of a dog\na photo of a cat\n")
    result = erase(tiny_pipe, SFDConfig(stage="distil", steps=2, batch_size=1, remain_prompts=str(tmp_path / "r.txt")), progress=False)
    assert result.concepts == [] and result.record["data"]["forget"] == 0 and result.record["data"]["remain"] == 2
    assert result.record["data"]["generator_init"] == "teacher" and result.t_init == 625
    base = tiny_pipe.unet.state_dict()
    assert any(not torch.equal(result.tensors[f"unet.{k}"], base[k]) for k in base)  # G moved
    folder = result.save(str(tmp_path / "stage-one"), pipeline=False)
    assert "no concept erased" in (tmp_path / "stage-one" / "README.md").read_text()
    assert load_pipeline(folder) is not None  # loads like any one-step artifact


def _generator_start(pipe, **config) -> tuple[dict[str, torch.Tensor], str]:
    """G's weights after SFD's set-up on ``pipe``, and where the method says they came from."""
    method = SFD(SFDConfig(concepts=["star"], steps=1, batch_size=1, **config))
    method.config.validate()
    bb = backbone_for(pipe)
    params = select_parameters(bb.components, "full")
    originals = {n: p.detach().clone() for n, p in params.items()}
    try:
        method.prepare(bb, params, originals)
        return {n: p.detach().clone() for n, p in params.items()}, method.sources["generator_init"]
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(originals[n])


def test_stage_two_starts_from_the_shipped_generator_only_on_the_shipped_base(tiny_pipe, tmp_path, monkeypatch):
    canvas = load_pipeline("mini-canvas")
    distilled = erase(canvas, SFDConfig(stage="distil", steps=1, batch_size=1, lr=1e-2, lr_fake=1e-2), progress=False)
    folder = distilled.save(str(tmp_path / "one_step"), pipeline=False)
    monkeypatch.setattr(sfd_module, "shipped_one_step_dir", lambda: folder)
    start, source = _generator_start(canvas)
    assert source.startswith("shipped") and all(torch.equal(start[n], distilled.tensors[n]) for n in start)
    start, source = _generator_start(canvas, generator_init="teacher")
    assert source == "teacher" and all(torch.equal(start[n], p) for n, p in select_parameters(backbone_for(canvas).components, "full").items())
    _, source = _generator_start(tiny_pipe)  # another base: the shipped generator does not fit it
    assert source == "teacher"


def test_nudity_setting_builds_the_official_prompts_and_draws_a_keyword_negative_per_forget_sample(tiny_pipe, tmp_path):
    (tmp_path / "r.txt").write_text("a photo of a dog\n")
    with pytest.raises(ConfigError, match="--remain-prompts"):
        SFDConfig(concepts=["nudity"], nudity=True).validate()
    with pytest.raises(ConfigError, match="drop --forget-prompts"):
        SFDConfig(concepts=["nudity"], nudity=True, remain_prompts=str(tmp_path / "r.txt"), negative_prompt="x").validate()
    config = SFDConfig(concepts=["nudity"], nudity=True, remain_prompts=str(tmp_path / "r.txt"), steps=1, batch_size=4)
    config.validate()
    method = SFD(config)
    remain, forget, override = method._prompts()
    assert remain == ["a photo of a dog"] and len(forget) == 12 * 27 * 2 == len(override)
    assert ("nudity Woman", "Woman") in zip(forget, override) and ("Woman, nudity", "Woman") in zip(forget, override)
    bb = backbone_for(tiny_pipe)
    params = select_parameters(bb.components, "full")
    method.prepare(bb, params, {n: p.detach().clone() for n, p in params.items()})
    g = torch.Generator().manual_seed(0)
    negatives = method._unconds(True, 8, g)
    assert all(any(torch.equal(row, k) for k in method.forget_negatives) for row in negatives)
    assert len({row.sum().item() for row in negatives}) > 1  # drawn per sample, not one for the batch
    assert torch.equal(method._unconds(False, 2, g), method.uncond.expand(2, -1, -1))  # remain samples keep the plain uncond
    assert torch.isfinite(method.loss(0, g))


def test_ema_returns_the_moving_average_of_the_generator_not_its_last_state(tiny_pipe, tmp_path):
    (tmp_path / "r.txt").write_text("a photo of a dog\n")
    (tmp_path / "f.txt").write_text("a photo of a star\n")
    common = {"concepts": ["star"], "steps": 3, "batch_size": 1, "lr": 1e-2, "lr_fake": 1e-2, "remain_prompts": str(tmp_path / "r.txt"),
              "forget_prompts": str(tmp_path / "f.txt"), "override_concept": "a circle"}
    last = erase(tiny_pipe, SFDConfig(**common), progress=False)
    averaged = erase(tiny_pipe, SFDConfig(**common, ema_halflife=1000), progress=False)
    base = tiny_pipe.unet.state_dict()
    # warm-up weights of steps 1..3: the average sits strictly between the start and the last G
    name = next(n for n in base if not torch.equal(last.tensors[f"unet.{n}"], base[n]))
    moved, partly = (last.tensors[f"unet.{name}"] - base[name]).abs().sum(), (averaged.tensors[f"unet.{name}"] - base[name]).abs().sum()
    assert 0 < partly < moved
