"""DoCo on tiny random components (algorithms.md, Cheap verification, DoCo (2)-(4)), config errors, CLI."""

import json
import logging
import os

import pytest
import torch

from erase import DoCoConfig, erase
from erase.doco import DoCo, PatchDiscriminator, discriminator_loss, instance_prompt
from erase.epochs import EpochedResult
from erase.method import RunOptions
from erase.stopping import EpochScore, choose_epoch
from pipelines.errors import ConfigError
from tests.erase.hash_judge import HashJudge
from tests.erase.preparing import prepare_method

FAST = {"concepts": ["star"], "steps": 4, "warm_up": 2, "batch_size": 2, "anchor_images": 4, "generation_steps": 2,
        "d_width": 8, "lr": 1e-2}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ERASE_CACHE", str(tmp_path / "cache"))


def prepared(pipe, **overrides) -> DoCo:
    return prepare_method(DoCo(DoCoConfig(**{**FAST, **overrides})), pipe)[0]


def test_one_discriminator_step_lowers_its_loss():
    torch.manual_seed(0)
    d = PatchDiscriminator(4, PatchDiscriminator.blocks_for(16), width=16)
    opt = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    anchor, target = torch.randn(8, 4, 16, 16), torch.randn(8, 4, 16, 16) + 1.0
    before = discriminator_loss(d, anchor, target)
    opt.zero_grad()
    before.backward()
    opt.step()
    assert discriminator_loss(d, anchor, target).item() < before.item()


@pytest.mark.parametrize("size, blocks, patch", [(64, 4, 3), (16, 2, 3), (8, 1, 3)])
def test_discriminator_depth_fits_the_latent_size(size, blocks, patch):
    assert PatchDiscriminator.blocks_for(size) == blocks
    out = PatchDiscriminator(4, blocks, width=8)(torch.zeros(2, 4, size, size))
    assert out.shape == (2, 1, patch, patch)


def test_before_the_warm_up_ends_the_unet_is_unchanged_while_d_changes(tiny_pipe):
    result = erase(tiny_pipe, DoCoConfig(**{**FAST, "steps": 3, "warm_up": 2}), progress=False)  # 2 D-only steps, 1 full
    unet = tiny_pipe.unet.state_dict()
    assert any(not torch.equal(t, unet[n.removeprefix("unet.")]) for n, t in result.tensors.items())  # the step after
    method = prepared(tiny_pipe, steps=3, warm_up=2)
    d_before = {k: v.clone() for k, v in method.d.state_dict().items()}
    base = {n: p.detach().clone() for n, p in method.params.items()}
    opt = method.optimizer(method.params)
    for step in range(2):
        loss = method.loss(step, torch.Generator().manual_seed(step))
        loss.backward()
        method.adjust_gradients()
        opt.step()
        opt.zero_grad(set_to_none=True)
    assert all(torch.equal(p, base[n]) for n, p in method.params.items())
    assert any(not torch.equal(v, method.d.state_dict()[k]) for k, v in d_before.items())
    assert len(method.d_losses) == 2


@pytest.mark.parametrize("surgery", ["doco", "pcgrad", "off"])
def test_only_attn2_key_and_value_change(tiny_pipe, surgery):
    base_unet = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    base_text = {k: v.clone() for k, v in tiny_pipe.text_encoder.state_dict().items()}
    result = erase(tiny_pipe, DoCoConfig(**FAST, surgery=surgery), progress=False)
    names = {n.removeprefix("unet.") for n in result.tensors}
    assert names and all(".attn2.to_k." in n or ".attn2.to_v." in n for n in names)
    assert names == {n for n in base_unet if ".attn2.to_k." in n or ".attn2.to_v." in n}
    assert all(not torch.equal(t, base_unet[n.removeprefix("unet.")]) for n, t in result.tensors.items())
    assert all(torch.equal(v, tiny_pipe.unet.state_dict()[k]) for k, v in base_unet.items())  # fit leaves pipe as it was
    assert all(torch.equal(v, tiny_pipe.text_encoder.state_dict()[k]) for k, v in base_text.items())
    record = result.record["doco"]
    assert record["anchor"]["anchor"] == "others" and record["discriminator_blocks"] == 1
    assert (record["conflicting_tensors_per_step"] is None) == (surgery == "off")


def test_the_surgery_changes_the_step(tiny_folder):
    from pipelines import load_pipeline

    runs = {s: erase(load_pipeline(tiny_folder), DoCoConfig(**FAST, surgery=s), progress=False).tensors for s in ("doco", "off")}
    assert any(not torch.equal(runs["doco"][n], runs["off"][n]) for n in runs["doco"])
    again = erase(load_pipeline(tiny_folder), DoCoConfig(**FAST, surgery="doco"), progress=False).tensors
    assert all(torch.equal(again[n], runs["doco"][n]) for n in again)  # same seed, same weights


SNAPSHOTS = {"steps": 6, "warm_up": 2, "snapshot_from": 3, "snapshot_every": 1, "probe_seeds": 1, "probe_steps": 2,
             "stop_below": 60.0}


def test_snapshots_are_the_states_after_their_steps_and_the_judged_one_is_applied(tiny_folder, caplog):
    from pipelines import load_pipeline

    def fit(**overrides):
        config = DoCoConfig(**{**FAST, **SNAPSHOTS, **overrides})
        config.validate()
        return DoCo(config, judge=HashJudge()).fit(load_pipeline(tiny_folder), RunOptions(progress=False))

    result = fit()
    assert isinstance(result, EpochedResult) and sorted(result.epochs) == [3, 4, 5, 6]
    shorter = fit(steps=3)  # the state after step 3 of a longer run is a 3-step run's result
    assert all(torch.equal(result.epochs[3][n], shorter.tensors[n]) for n in shorter.tensors)
    assert any(not torch.equal(result.epochs[3][n], result.epochs[6][n]) for n in result.tensors)
    record = result.record["epochs"]
    scores = [EpochScore(**{k: v for k, v in s.items() if k != "kept"}) for s in record["scores"]]
    assert record["unit"] == "step" and [s.epoch for s in scores] == [3, 4, 5, 6]  # the base is not probed
    assert record["chosen"] == choose_epoch(scores, 60.0, rank="balance")[0] and record["chosen_by"].startswith(f"step {record['chosen']}:")
    assert all(torch.equal(result.tensors[n], result.epochs[record["chosen"]][n]) for n in result.tensors)
    assert result.record["cost"]["select_seconds"] > 0
    given = fit(snapshot=4)
    assert given.record["epochs"]["chosen"] == 4 and given.record["epochs"]["scores"] == []
    assert all(torch.equal(given.tensors[n], result.epochs[4][n]) for n in result.tensors)
    official = fit(snapshot_every=0)  # the official behaviour: the last step, nothing else kept
    assert not isinstance(official, EpochedResult) and "epochs" not in official.record
    assert all(torch.equal(official.tensors[n], result.epochs[6][n]) for n in result.tensors)
    with caplog.at_level(logging.WARNING, logger="erase.doco"):
        late = fit(snapshot_from=7)  # past --steps: the last step, and the user is told why
    assert not isinstance(late, EpochedResult) and "--snapshot-from 7 leaves no state" in caplog.text


def test_mini_canvas_prompts_put_the_target_in_the_anchor_caption(tiny_pipe):
    style = prepared(tiny_pipe, concepts=["striped"], anchor="dots").anchor_source
    assert style["anchor"] == "dots" and style["kind"] == "style"
    assert style["captions"][0] == "A circle image in dots style."
    assert style["instance_prompts"][0] == "A circle image in stripes style."
    obj = prepared(tiny_pipe, anchor="circle").anchor_source
    assert obj["anchor"] == "circle" and obj["captions"][1] == "A circle image in gradient style."
    assert obj["captions"][0] == "A circle image in solid style." and obj["instance_prompts"][0] == "A star image in solid style."


@pytest.mark.parametrize("anchor", [None, "others"])
def test_the_default_anchor_spans_every_other_class_of_the_axis(tiny_pipe, anchor):
    method = prepared(tiny_pipe, concepts=["striped"], anchor=anchor, anchor_images=9)
    source = method.anchor_source
    assert source["anchor"] == "others" and source["kind"] == "style"
    captions, instances, _ = method._pairs()
    assert len(captions) == 9 * 10 and len(set(captions)) == 90  # 9 other styles x 10 objects, each once
    assert not any("stripes" in c for c in captions) and all("stripes style" in p for p in instances)
    # every caption's instance prompt is the same object in the target's style; the first 9 anchor images
    # already cover the nine other styles
    assert all(c.split(" image")[0] == p.split(" image")[0] for c, p in zip(captions, instances))
    assert len({c.split(" in ")[1] for c in captions[:9]}) == 9


def test_mini_canvas_anchors_are_not_mirrored_unless_asked(tiny_pipe):
    """The world never mirrors a shape; --hflip brings the official augmentation back (real models: on)."""
    default = prepared(tiny_pipe)
    assert default.latents.shape[0] == 4 and default.anchor_source["hflip"] is False
    mirrored = prepared(tiny_pipe, hflip=True)
    assert mirrored.latents.shape[0] == 8 and torch.equal(mirrored.latents[:4], default.latents)


def test_official_instance_patterns():
    g = torch.Generator().manual_seed(0)
    styles = {instance_prompt("a painting of a tree", "Van Gogh", "style", None, g) for _ in range(20)}
    assert styles == {"a painting of a tree, in the style of Van Gogh", "in Van Gogh's style, a painting of a tree"}
    assert instance_prompt("a photo of an airplane", "parachute", "object", "airplane", g) == "a photo of an parachute"
    assert instance_prompt("a clothed person", "nudity", "nudity", None, g) == "nudity, a clothed person"


def test_anchor_prompt_file_on_a_real_model(tiny_pipe, tmp_path):
    path = tmp_path / "anchors.txt"
    path.write_text("a photo of an airplane\nan airplane in the sky\n")
    method = prepared(tiny_pipe, concepts=["parachute"], anchor_prompts=str(path), concept_type="object", anchor="airplane")
    assert method.anchor_source["instance_prompts"] == ["a photo of an parachute", "an parachute in the sky"]
    assert method.latents.shape[0] == 8  # 4 images and their mirror images


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"concepts": ["star", "heart"]}, "one concept per run"),
        ({"warm_up": 4}, "leaves no UNet step"),
        ({"d_lr": 0.0}, "--d-lr must be positive"),
        ({"params": "te-ffn"}, "DoCo trains the UNet"),
        ({"params": "esd-x+te-ffn"}, "DoCo trains the UNet"),
        ({"anchor_prompts": "F"}, "needs --concept-type"),
        ({"anchor_prompts": "F", "concept_type": "object"}, "needs --anchor WORD"),
        ({"anchor_prompts": "/nonexistent.txt", "concept_type": "style"}, "does not exist"),
        ({"anchor": " "}, "--anchor is empty"),
        ({"anchor": "others", "anchor_prompts": "F", "concept_type": "style"}, "--anchor others takes the world's"),
        ({"d_blocks": 9}, "--d-blocks"),
        ({"collapse_patience": 0}, "--collapse-patience at least 1"),
        ({"snapshot_every": -1}, "--snapshot-every must be 0"),
        ({"snapshot": 2}, "not a kept step; this run keeps 4"),
        ({"snapshot": 4, "anchor_prompts": "F", "concept_type": "style"}, "--snapshot picks among"),
    ],
)
def test_bad_configs_are_refused_before_any_work(tmp_path, bad, message):
    (tmp_path / "a.txt").write_text("a painting\n")
    values = {k: (str(tmp_path / "a.txt") if v == "F" else v) for k, v in bad.items()}
    with pytest.raises(ConfigError, match=message):
        DoCoConfig(**{**FAST, **values}).validate()


def test_unknown_concept_and_bad_anchor_name_the_fix(tiny_pipe):
    with pytest.raises(ConfigError, match="--anchor-prompts FILE"):
        erase(tiny_pipe, DoCoConfig(**{**FAST, "concepts": ["Van Gogh"]}), progress=False)
    with pytest.raises(ConfigError, match="another object"):
        erase(tiny_pipe, DoCoConfig(**{**FAST, "anchor": "stripes"}), progress=False)


def test_cli_run_and_dry_run(capsys, tiny_folder, tmp_path):
    from erase.cli import main

    out = str(tmp_path / "no-star")
    argv = ["-q", "run", "doco", "--model", tiny_folder, "--concept", "star", "--steps", "3", "--warm-up", "1",
            "--batch-size", "2", "--anchor-images", "2", "--generation-steps", "2", "--d-width", "8",
            "--surgery", "pcgrad", "--params", "cross-attn", "--device", "cpu"]
    assert main(argv + ["--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["components"] == ["unet"] and plan["config"]["surgery"] == "pcgrad"
    assert main(argv + ["--out", out]) == 0
    with open(os.path.join(out, "erasure.json")) as f:
        record = json.load(f)
    assert record["method"] == "doco" and record["config"]["params"] == "cross-attn" and record["doco"]["d_loss_last"] > 0
    code = main(["run", "doco", "--model", tiny_folder, "--concept", "star", "--warm-up", "700", "--dry-run"])
    assert code == 2 and "erase: error: --warm-up" in capsys.readouterr().err
