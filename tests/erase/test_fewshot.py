"""Few-shot erasure on tiny random components: the math, the trained tensors, the export, the rule."""

import os
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from erase import RunOptions, erase
from erase.epochs import EpochedResult, load_epoch, saved_epochs
from erase.fewshot import FewShot, FewShotConfig
from erase.stopping import EpochScore, canvas_probes, choose_epoch
from erase.retain import retain_pool
from erase.templates import templates
from eval.canvas import mini_canvas
from eval.canvas.mini import TEMPLATES as WORLD_CAPTIONS
from pipelines import ErasureResult, backbone_for
from pipelines.errors import ConfigError, EraseError
from pipelines.params import select_parameters
from tests.erase.hash_judge import HashJudge

QUICK_PROBES = {"probe_seeds": 1, "probe_steps": 2}


def fit(pipe, judge=None, **overrides) -> EpochedResult:
    values = {"concepts": ["stripes"], "steps": 2, "lr": 1e-3, **QUICK_PROBES, **overrides}
    config = FewShotConfig(**values)
    config.validate()
    return FewShot(config, judge=judge or HashJudge()).fit(pipe, RunOptions(progress=False))


def test_template_files_hold_the_official_lists_and_the_world_vocabulary():
    assert len(templates("fewshot_object")) == 27 and len(templates("fewshot_style")) == 19
    assert templates("fewshot_object")[0] == "a photo of a {}"
    known = {w for caption in WORLD_CAPTIONS for w in re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", caption).lower())}
    for name in ("fewshot_canvas_object", "fewshot_canvas_style"):
        for template in templates(name):
            words = set(re.findall(r"[a-z]+", template.lower()))
            assert words <= known, f"{template!r} uses words the mini-canvas text encoder never saw: {words - known}"


def test_denoising_error_rises_epoch_by_epoch(tiny_pipe):
    """Gradient ascent: on fixed (x0, t, noise, prompt), the erased text encoder's error grows
    (the original objective: the retain term, which pulls the other way, off)."""
    config = FewShotConfig(concepts=["stripes"], steps=4, lr=3e-3, epoch=4, retain_weight=0.0)
    method = FewShot(config)
    result = method.fit(tiny_pipe, RunOptions(progress=False))
    assert result.record["train"]["steps_done"] == 8  # 4 epochs x ceil(4 images / 2), as the paper counts
    bb = backbone_for(tiny_pipe)
    g = torch.Generator().manual_seed(123)
    x0 = method.latents.repeat(4, 1, 1, 1)  # (16, C, h, w)
    t = torch.randint(0, 1000, (len(x0),), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    prompts = [method.templates[i % len(method.templates)].format("stripes") for i in range(len(x0))]

    @torch.no_grad()
    def error() -> float:
        prediction = bb.predict(bb.schedule.add_noise(x0, noise, t), t, bb.encode(prompts))
        return F.mse_loss(prediction, bb.schedule.target(x0, noise, t)).item()

    errors = [error()]
    for epoch in range(1, 5):
        with ErasureResult(tensors=result.epochs[epoch], record=result.record).applied(tiny_pipe):
            errors.append(error())
    assert errors == sorted(errors) and errors[-1] > errors[0] * 1.01, errors


def test_only_the_preset_changes(tiny_pipe):
    bb = backbone_for(tiny_pipe)
    unet_before = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    te_before = {k: v.clone() for k, v in tiny_pipe.text_encoder.state_dict().items()}
    for preset in ["te-mlp-final-attn", "mlp-final-attn", "te-full", "te-ffn", "te-attn", "te-mlp-attn"]:
        result = fit(tiny_pipe, params=preset, steps=1, epoch=1)
        expected = set(select_parameters(bb.components, preset))
        assert set(result.tensors) == expected and result.components == {"text_encoder"}
        with result.applied(tiny_pipe):
            after = tiny_pipe.text_encoder.state_dict()
            changed = {f"text_encoder.text_model.{k.removeprefix('text_model.')}"
                       for k in te_before if not torch.equal(te_before[k], after[k])}
        assert changed and changed <= expected, preset
        if preset.endswith("mlp-final-attn"):  # the tiny encoder has 2 layers: MLPs + layer 1's attention
            assert all(".mlp.fc" in n or ".layers.1.self_attn." in n for n in changed)
    assert all(torch.equal(v, tiny_pipe.unet.state_dict()[k]) for k, v in unet_before.items())
    assert all(torch.equal(v, tiny_pipe.text_encoder.state_dict()[k]) for k, v in te_before.items())  # fit leaves pipe as it was


def test_the_unet_gets_no_gradient(tiny_pipe):
    method = FewShot(FewShotConfig(concepts=["stripes"]))
    bb = backbone_for(tiny_pipe)
    params = select_parameters(bb.components, "te-mlp-final-attn")
    for p in list(bb.unet.parameters()) + list(bb.text_encoder.parameters()):
        p.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    method.prepare(bb, params, {n: p.detach().clone() for n, p in params.items()})
    method.loss(0, torch.Generator().manual_seed(0)).backward()
    assert all(p.grad is None for p in bb.unet.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values())


def test_the_retain_term_holds_the_text_encoder_on_retain_prompts(tiny_pipe):
    """With the retain term the text encoder's output on prompts that do not name the concept
    moves much less than under the original objective, from the same seed and steps."""
    bb = backbone_for(tiny_pipe)
    prompts = retain_pool(["stripes"])[0][::9]
    with torch.no_grad():
        before = bb.encode(prompts)

    def drift(weight: float) -> float:
        result = fit(tiny_pipe, retain_weight=weight, steps=3, epoch=3, lr=3e-2)
        with result.applied(tiny_pipe), torch.no_grad():
            return F.mse_loss(bb.encode(prompts), before).item()

    free, held = drift(0.0), drift(3.0)
    assert held < free / 2, (held, free)


def test_exported_text_encoder_in_the_base_pipeline_gives_the_erased_images(tiny_folder, tmp_path):
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    from pipelines import load_erased, load_pipeline

    result = fit(load_pipeline(tiny_folder), steps=2, epoch=2, lr=1e-2)
    folder = str(tmp_path / "erased")
    result.save(folder)
    assert saved_epochs(folder) == [1, 2]
    assert "applies epoch 2: given by --epoch" in open(os.path.join(folder, "README.md")).read()  # the card says which
    swapped = StableDiffusionPipeline.from_pretrained(
        tiny_folder, text_encoder=CLIPTextModel.from_pretrained(f"{folder}/text_encoder"), safety_checker=None)
    erased = load_erased(folder, base=load_pipeline(tiny_folder))
    base = load_pipeline(tiny_folder)

    def draw(pipe) -> np.ndarray:
        return pipe("A star image in stripes style.", num_inference_steps=3, generator=torch.Generator().manual_seed(0),
                    output_type="np").images

    assert np.allclose(draw(swapped), draw(erased), atol=1e-5)
    assert not np.allclose(draw(base), draw(erased), atol=1e-3)
    # another epoch, later, without retraining
    first = load_epoch(folder, 1)
    assert all(torch.equal(first.tensors[n], result.epochs[1][n]) for n in result.tensors)
    with pytest.raises(EraseError, match="no epoch 5"):
        load_epoch(folder, 5)


def test_fit_keeps_the_epoch_its_recorded_scores_choose(tiny_pipe):
    result = fit(tiny_pipe, steps=3, stop_below=50.0)
    record = result.record["epochs"]
    scores = [EpochScore(**{k: v for k, v in s.items() if k != "kept"}) for s in record["scores"]]
    assert [s.epoch for s in scores] == [0, 1, 2, 3] and sorted(result.epochs) == [1, 2, 3]
    assert record["chosen"] == choose_epoch(scores, 50.0)[0]
    assert all(torch.equal(result.tensors[n], result.epochs[record["chosen"]][n]) for n in result.tensors)
    assert result.record["cost"]["train_seconds"] > 0 and result.record["cost"]["select_seconds"] > 0
    assert result.record["config"]["steps"] == 3  # epochs, as the user gave them
    world = mini_canvas()
    probes = canvas_probes(world, "stripes", 1)
    assert sum(p.is_target for p in probes) == len(world.objects)
    assert all(p.style != "stripes" for p in probes if not p.is_target)
    assert len({p.seed for p in canvas_probes(world, "stripes", 2)}) == 2 * len(probes)  # every probe its own noise


def test_same_seed_same_tensors(tiny_pipe):
    a, b, c = (fit(tiny_pipe, seed=s, epoch=2) for s in (7, 7, 8))
    assert all(torch.equal(a.tensors[n], b.tensors[n]) for n in a.tensors)
    assert any(not torch.equal(a.tensors[n], c.tensors[n]) for n in a.tensors)
    assert a.record["data"] == b.record["data"] and a.record["data"]["seeds"] == [2_000_000 + i for i in range(4)]


def test_image_folder_and_zero_shot_on_a_concept_the_world_does_not_know(tiny_pipe, tmp_path):
    for i, colour in enumerate(["red", "green", "blue"]):
        Image.new("RGB", (40, 30), colour).save(tmp_path / f"{i}.png")
    result = fit(tiny_pipe, concepts=["Van Gogh"], images=str(tmp_path), concept_type="style", steps=2)
    assert result.record["train"]["steps_done"] == 4  # ceil(3 / 2) steps per epoch
    assert result.record["data"]["files"] == ["0.png", "1.png", "2.png"] and result.record["data"]["templates"] == "fewshot_style"
    assert result.record["epochs"]["chosen"] == 2 and "last" in result.record["epochs"]["chosen_by"]
    zero = fit(tiny_pipe, concepts=["Van Gogh"], zero_shot=True, steps=3)
    assert zero.record["train"]["steps_done"] == 3 and zero.record["data"]["source"].startswith("zero-shot")


def test_renders_are_not_flipped_unless_asked_but_image_folders_are(tiny_pipe, tmp_path):
    """The world never mirrors its shapes, so its renders skip the original's flip; --images keeps it."""
    assert fit(tiny_pipe, epoch=1, steps=1).record["data"]["flipped"] == [False] * 4
    assert any(fit(tiny_pipe, epoch=1, steps=1, flip=True).record["data"]["flipped"])
    for i in range(6):
        Image.new("RGB", (32, 32), (40 * i, 0, 0)).save(tmp_path / f"{i}.png")
    folder = {"concepts": ["Van Gogh"], "images": str(tmp_path), "concept_type": "style", "steps": 1}
    drawn = fit(tiny_pipe, **folder).record["data"]["flipped"]
    assert any(drawn) and drawn == fit(tiny_pipe, flip=True, **folder).record["data"]["flipped"]
    assert not any(fit(tiny_pipe, flip=False, **folder).record["data"]["flipped"])


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"concepts": ["Van Gogh"]}, ConfigError, "pass --images DIR"),
        ({"concepts": ["star", "heart"]}, ConfigError, "one concept per run"),
        ({"epoch": 3}, ConfigError, "--epoch 3"),
        ({"zero_shot": True, "images": "x"}, ConfigError, "--zero-shot"),
        ({"images": "/nonexistent"}, EraseError, "not a folder"),
        ({"retain_weight": -1.0}, ConfigError, "--retain-weight"),
    ],
)
def test_bad_input_is_one_clear_error(tiny_pipe, overrides, error, message):
    with pytest.raises(error, match=message):
        erase(tiny_pipe, FewShotConfig(**{"concepts": ["stripes"], "steps": 2, **overrides}), progress=False)


def test_an_empty_image_folder_is_refused(tiny_pipe, tmp_path):
    with pytest.raises(EraseError, match="has no images"):
        erase(tiny_pipe, FewShotConfig(concepts=["Van Gogh"], images=str(tmp_path)), progress=False)


def test_v_prediction_model(tiny_v_folder):
    from pipelines import load_pipeline

    result = fit(load_pipeline(tiny_v_folder), steps=1, epoch=1)
    assert result.record["train"]["loss_last"] < 0


def test_cli_dry_run_reports_epochs_and_steps(tiny_folder, capsys):
    import json

    from erase.cli import main

    assert main(["run", "fewshot", "--model", tiny_folder, "--concept", "stripes", "--steps", "4", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["epochs"] == 4 and plan["optimizer_steps"] == 8 and plan["components"] == ["text_encoder"]
    assert plan["retain_prompts"] == 90 and "do not name" in plan["retain_source"]  # the world's pairs without stripes
    assert main(["run", "fewshot", "--model", tiny_folder, "--concept", "Van Gogh", "--images", "/nonexistent", "--dry-run"]) == 2


def test_cli_run_writes_a_text_encoder_only_artifact(tiny_folder, tmp_path, capsys):
    """`erase run fewshot --concept X --out DIR`: the delta holds only text-encoder tensors, with
    the plain CLIPTextModel folder and every epoch beside it; `erase methods` lists the method."""
    import json

    from safetensors.torch import load_file

    from erase.cli import main

    assert main(["methods"]) == 0
    assert re.search(r"^fewshot\s+\S", capsys.readouterr().out, re.M)
    out = str(tmp_path / "no-stripes")
    assert main(["-q", "run", "fewshot", "--model", tiny_folder, "--concept", "stripes", "--steps", "2", "--epoch", "1",
                 "--lr", "1e-2", "--out", out]) == 0
    tensors = load_file(f"{out}/erasure.safetensors")
    assert tensors and all(n.startswith("text_encoder.") for n in tensors)
    with open(f"{out}/erasure.json") as f:
        record = json.load(f)
    assert record["method"] == "fewshot" and record["epochs"]["chosen"] == 1 and record["config"]["steps"] == 2
    assert saved_epochs(out) == [1, 2]
    assert all(torch.equal(tensors[n], load_epoch(out, 1).tensors[n]) for n in tensors)
    assert os.path.isfile(f"{out}/text_encoder/config.json") and os.path.isdir(f"{out}/pipeline")
