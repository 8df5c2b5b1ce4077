"""SalUn on tiny random components: the math (algorithms.md, Cheap verification), data, files, CLI."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from erase import erase
from erase.saliency import SaliencyMask
from erase.salun import SalUn, SalUnConfig
from eval.canvas import mini_canvas
from pipelines import backbone_for
from pipelines.errors import ConfigError, EraseError
from pipelines.params import select_parameters
from tests.erase.preparing import prepare_method

FAST = {"concepts": ["star"], "steps": 3, "batch_size": 2, "images_per_pair": 1, "lr": 1e-3}


def run(pipe, **overrides):
    return erase(pipe, SalUnConfig(**{**FAST, **overrides}), progress=False)


def prepared(pipe, **overrides) -> SalUn:
    """A SalUn method prepared on ``pipe`` the way ``fit`` prepares it (mask included)."""
    return prepare_method(SalUn(SalUnConfig(**{**FAST, **overrides})), pipe)[0]


@pytest.fixture
def prompt_files(tmp_path, monkeypatch):
    """Forget/retain prompt files, with the generation cache in the test's folder."""
    monkeypatch.setenv("ERASE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "forget.txt").write_text("a photo of a star\n\n")
    (tmp_path / "retain.txt").write_text("a photo of a circle\na photo of a square\n")
    return {"forget_prompts": str(tmp_path / "forget.txt"), "retain_prompts": str(tmp_path / "retain.txt"),
            "generated_images": 4, "generation_steps": 2}


def test_alpha_zero_and_the_forget_prompt_as_pseudo_give_zero_loss_at_start(tiny_pipe, prompt_files):
    files = {k: v for k, v in prompt_files.items() if not k.startswith("retain")}
    method = prepared(tiny_pipe, alpha=0.0, pseudo="a photo of a star", **files)
    loss = method.loss(0, torch.Generator().manual_seed(0))
    assert loss.item() == 0.0  # the pseudo target is the trained model's own prediction for the same prompt
    loss.backward()
    assert max(p.grad.abs().max().item() for p in method.params.values() if p.grad is not None) == 0.0
    other = prepared(tiny_pipe, alpha=0.0, pseudo="a photo of a heart", **files)
    assert other.loss(0, torch.Generator().manual_seed(0)).item() > 1e-6


@pytest.mark.parametrize("params", ["esd-x", "full"])
def test_only_salient_weights_change_and_masked_ones_stay_bit_identical(tiny_pipe, params, tmp_path):
    base_unet = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    base_text = {k: v.clone() for k, v in tiny_pipe.text_encoder.state_dict().items()}
    mask_file = str(tmp_path / "mask.safetensors")
    result = run(tiny_pipe, params=params, mask_fraction=0.3, save_mask=mask_file)
    mask = SaliencyMask.load(mask_file)
    assert set(result.tensors) == set(mask.masks) == set(select_parameters(backbone_for(tiny_pipe).components, params))
    assert mask.kept == int(0.3 * mask.total)
    moved = 0
    for name, tensor in result.tensors.items():
        before = base_unet[name.removeprefix("unet.")]
        frozen = ~mask.masks[name]
        assert torch.equal(tensor[frozen], before[frozen]), name
        moved += int((tensor[~frozen] != before[~frozen]).sum())
    assert moved > 0.9 * mask.kept
    assert all(torch.equal(v, tiny_pipe.unet.state_dict()[k]) for k, v in base_unet.items())  # fit leaves pipe as it was
    assert all(torch.equal(v, tiny_pipe.text_encoder.state_dict()[k]) for k, v in base_text.items())
    record = result.record
    assert record["saliency"]["kept"] == mask.kept and len(record["saliency"]["sparsity_per_tensor"]) == len(mask.masks)
    assert record["data"]["forget"]["images"] == 10 and record["data"]["retain"]["images"] == 90


def test_a_saved_mask_reused_gives_the_same_weights(tiny_folder, tmp_path):
    from pipelines import load_pipeline

    mask_file = str(tmp_path / "mask.safetensors")
    computed = run(load_pipeline(tiny_folder), seed=3, save_mask=mask_file)
    reused = run(load_pipeline(tiny_folder), seed=3, mask=mask_file)
    assert all(torch.equal(computed.tensors[n], reused.tensors[n]) for n in computed.tensors)
    assert reused.record["saliency"]["source"]["file"] == os.path.abspath(mask_file)
    with pytest.raises(ConfigError, match="does not match the trained tensors"):
        run(load_pipeline(tiny_folder), params="full", mask=mask_file)


def test_same_seed_same_weights_other_seed_other_weights(tiny_folder):
    from pipelines import load_pipeline

    a, b, c = (run(load_pipeline(tiny_folder), seed=s) for s in (7, 7, 8))
    assert all(torch.equal(a.tensors[n], b.tensors[n]) for n in a.tensors)
    assert any(not torch.equal(a.tensors[n], c.tensors[n]) for n in a.tensors)


def test_next_class_relabels_the_target_in_the_same_caption(tiny_pipe):
    bb = backbone_for(tiny_pipe)
    forget, retain, pseudo = SalUn(SalUnConfig(concepts=["star"], images_per_pair=1, pseudo="next-class"))._canvas_sets(bb)
    assert pseudo["A star image in dots style."] == "A cross image in dots style."
    assert len(forget) == 10 and len(retain) == 90
    _, _, pseudo = SalUn(SalUnConfig(concepts=["outline"], images_per_pair=1, pseudo="next-class"))._canvas_sets(bb)
    assert pseudo["A heart image in outline style."] == "A heart image in solid style."  # wraps around
    forget, retain, pseudo = SalUn(SalUnConfig(concepts=["star", "cross", "dots"], images_per_pair=1, pseudo="next-class"))._canvas_sets(bb)
    assert len(forget) == len(set(forget.prompts)) == 2 * 10 + 10 - 2  # pairs showing two targets once
    assert pseudo["A star image in dots style."] == "A heart image in grid style."
    assert not any(t in p for p in retain.prompts for t in ("star", "cross", "dots"))


def test_a_concept_or_the_farthest_class_replaces_the_target_in_every_caption(tiny_pipe):
    bb = backbone_for(tiny_pipe)
    _, _, pseudo = SalUn(SalUnConfig(concepts=["star"], pseudo="Heart", images_per_pair=1))._canvas_sets(bb)
    assert pseudo["A star image in dots style."] == "A heart image in dots style."
    _, _, pseudo = SalUn(SalUnConfig(concepts=["star"], pseudo="farthest", images_per_pair=1))._canvas_sets(bb)
    replacements = {caption.split()[1] for caption in pseudo.values()}
    assert len(pseudo) == 10 and len(replacements) == 1 and "star" not in replacements
    _, _, object_default = SalUn(SalUnConfig(concepts=["star"], pseudo="farthest-object", images_per_pair=1))._canvas_sets(bb)
    assert object_default == pseudo  # an object target: the farthest object
    style_default, style_next = (SalUn(SalUnConfig(concepts=["dots"], pseudo=p, images_per_pair=1))._canvas_sets(bb)[2]
                                 for p in ("farthest-object", "next-class"))
    assert style_default == style_next  # a style target: the next style
    _, _, pseudo = SalUn(SalUnConfig(concepts=["star"], pseudo="a plain picture", images_per_pair=1))._canvas_sets(bb)
    assert pseudo is None  # a fixed text is used as it is
    with pytest.raises(ConfigError, match="itself a target"):
        SalUn(SalUnConfig(concepts=["star"], pseudo="star", images_per_pair=1))._canvas_sets(bb)


def test_pseudo_share_draws_that_part_of_each_retain_batch_from_the_pseudo_captions(tiny_pipe):
    method = prepared(tiny_pipe, pseudo_share=1.0, pseudo="next-class")
    shown = {method.retain.prompts[method.retain.prompt_ids[i]] for i in method.pseudo_rows.tolist()}
    assert shown == {f"A cross image in {s} style." for s in mini_canvas().styles}  # star's next class, every style
    conds = []
    predict = method.backbone.predict
    method.backbone.predict = lambda x, t, cond, **kw: conds.append(cond) or predict(x, t, cond, **kw)
    method.loss(0, torch.Generator().manual_seed(0))
    retain_conds = conds[-1].chunk(2)[1]  # the last call is the batched forget + retain pass
    anchored = method.retain.conds[method.retain.prompt_ids[method.pseudo_rows]]
    assert all(any(torch.equal(c, a) for a in anchored) for c in retain_conds)  # share 1: every retain image
    assert prepared(tiny_pipe).pseudo_rows is None  # 0: the official uniform batch
    assert prepared(tiny_pipe, pseudo_share=0.5, pseudo="a plain picture").pseudo_rows is None  # no world captions
    with pytest.raises(ConfigError, match="pseudo-share"):
        SalUnConfig(concepts=["star"], pseudo_share=1.5).validate()


@pytest.mark.parametrize("pseudo", ["next-class", "farthest", "farthest-object", "heart", "retain", "a plain picture"])
def test_every_pseudo_choice_trains(tiny_pipe, pseudo):
    result = run(tiny_pipe, pseudo=pseudo, pseudo_model="frozen")
    assert np.isfinite(result.record["train"]["loss_last"])


def test_frozen_pseudo_target_equals_the_trained_one_at_start(tiny_pipe):
    trained, frozen = (prepared(tiny_pipe, pseudo_model=m) for m in ("trained", "frozen"))
    assert trained.loss(0, torch.Generator().manual_seed(1)).item() == frozen.loss(0, torch.Generator().manual_seed(1)).item()


def test_generated_sets_are_cached(tiny_folder, prompt_files, monkeypatch):
    import pipelines.cache
    from pipelines import load_pipeline

    calls = []
    generate = pipelines.cache.generate
    monkeypatch.setattr(pipelines.cache, "generate", lambda *a, **k: calls.append(1) or generate(*a, **k))
    first = run(load_pipeline(tiny_folder), pseudo="retain", **prompt_files)
    drawn = len(calls)
    second = run(load_pipeline(tiny_folder), pseudo="retain", **prompt_files)
    assert drawn >= 2 and len(calls) == drawn  # forget and retain drawn once, then read from the cache
    assert first.record["data"]["forget"]["kind"] == "generated" and first.record["data"]["retain"]["images"] == 4
    assert all(torch.equal(first.tensors[n], second.tensors[n]) for n in first.tensors)


def test_image_folders_with_captions(tiny_pipe, tmp_path):
    for kind, colour in (("forget", "red"), ("retain", "blue")):
        folder = tmp_path / kind
        folder.mkdir()
        for i in range(3):
            Image.new("RGB", (24, 24), colour).save(folder / f"{i}.png")
            (folder / f"{i}.txt").write_text(f"a {colour} square")
    result = run(tiny_pipe, forget_images=str(tmp_path / "forget"), retain_images=str(tmp_path / "retain"), pseudo="retain")
    assert result.record["data"]["forget"]["kind"] == "folder" and result.record["data"]["retain"]["images"] == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EraseError, match="has no images"):
        run(tiny_pipe, forget_images=str(empty), retain_images=str(tmp_path / "retain"), pseudo="retain")


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"forget_images": "/nope"}, "--forget-images '/nope' is not a folder"),
        ({"forget_prompts": "F", "forget_images": "D"}, "choose one source for the forget set"),
        ({"retain_prompts": "F"}, "retain set was given without a forget set"),
        ({"forget_prompts": "F"}, "needs the mini-canvas world's classes"),
        ({"forget_prompts": "F", "pseudo": "a dog"}, "no retain set"),
        ({"params": "te-ffn"}, "SalUn trains the UNet"),
        ({"params": "esd-x+te-ffn"}, "SalUn trains the UNet"),
        ({"params": "everything"}, "unknown parameter preset"),
        ({"mask_fraction": 0.0}, "--mask-fraction"),
        ({"alpha": -1.0}, "--alpha"),
        ({"pseudo": "  "}, "--pseudo is empty"),
        ({"mask": "M", "save_mask": "out.safetensors"}, "drop --save-mask"),
    ],
)
def test_bad_configs_are_refused_before_any_work(tmp_path, bad, message):
    files = {"F": tmp_path / "prompts.txt", "D": tmp_path, "M": tmp_path / "m.safetensors"}
    for path in (files["F"], files["M"]):
        path.write_text("a star\n")
    values = {k: (str(files[v]) if v in files else v) for k, v in bad.items()}
    with pytest.raises(ConfigError, match=message):
        SalUnConfig(concepts=["star"], **values).validate()


def test_unknown_concept_without_data_and_empty_prompt_file(tiny_pipe, tmp_path):
    with pytest.raises(ConfigError, match="--forget-images DIR or --forget-prompts FILE"):
        run(tiny_pipe, concepts=["Van Gogh"])
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(ConfigError, match="has no prompts"):
        run(tiny_pipe, forget_prompts=str(tmp_path / "empty.txt"), alpha=0.0, pseudo="a dog")


def test_cli_run_and_dry_run(capsys, tiny_folder, tmp_path):
    from erase.cli import main

    out = str(tmp_path / "no-star")
    argv = ["-q", "run", "salun", "--model", tiny_folder, "--concept", "star", "--steps", "2", "--images-per-pair", "1",
            "--batch-size", "2", "--params", "xattn", "--pseudo", "retain", "--device", "cpu"]
    assert main(argv + ["--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["components"] == ["unet"] and plan["config"]["pseudo"] == "retain"
    assert main(argv + ["--out", out]) == 0
    record = json.load(open(os.path.join(out, "erasure.json")))
    assert record["method"] == "salun" and record["config"]["params"] == "xattn" and record["saliency"]["sparsity"] == 0.5
    assert record["cost"]["peak_rss_mb"] > 0 and record["cost"]["data_seconds"] > 0
    code = main(["run", "salun", "--model", tiny_folder, "--concept", "star", "--retain-prompts", str(tmp_path), "--dry-run"])
    assert code == 2 and "erase: error: --retain-prompts" in capsys.readouterr().err


def test_v_prediction_model(tiny_v_folder):
    from pipelines import load_pipeline

    result = run(load_pipeline(tiny_v_folder))
    assert np.isfinite(result.record["train"]["loss_last"])
