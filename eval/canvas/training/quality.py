"""Measure the shipped mini-canvas models against the quality bars the README reports.

* judge on fresh renders (``diffusion-heldout`` seeds, which no model trained on);
* the pipeline's own samples (every object x style prompt, several seeds, its default sampler
  settings) as the judge reads them, overall and per class;
* the judge on fresh renders after the pipeline's VAE round trip, per style: where the samples
  fall short of it, the UNet is what limits them;
* the mini CLIP's zero-shot accuracy on fresh renders;
* where the folder ships one (``one_step/``, SFD stage one), the one-step generator's samples as
  the judge reads them, and its sampling speed against the 20-step teacher's;
* that plain diffusers, in a process that never imports this package, draws the same images
  as ``pipelines.load_pipeline("mini-canvas")``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from eval.canvas.answers import canvas_answer_set, mini_canvas_benchmark
from pipelines import ErasureResult, backbone_for, load_pipeline
from pipelines.generation import SamplerSettings, generate
from pipelines.shipped import ONE_STEP_DIR

FRESH_PER_PAIR = 20


def _per_class(correct: np.ndarray, labels: np.ndarray, names) -> dict[str, float]:
    return {name: round(100 * float(correct[labels == i].mean()), 2) for i, name in enumerate(names)}


def _fresh_renders(world, per_pair: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images, object labels, style labels)``: ``per_pair`` renders of every pair at held-out seeds."""
    first = world.seed_range("diffusion-heldout").start
    items = [(o, s, first + k) for o in world.objects for s in world.styles for k in range(per_pair)]
    true_obj = np.repeat(np.arange(len(world.objects)), len(world.styles) * per_pair)
    true_sty = np.tile(np.repeat(np.arange(len(world.styles)), per_pair), len(world.objects))
    return world.render_batch(items), true_obj, true_sty


def judge_on_renders(world, judge) -> dict:
    images, true_obj, true_sty = _fresh_renders(world, FRESH_PER_PAIR)
    obj, sty = judge.predict(list(images))
    return {"object": round(100 * float((obj == true_obj).mean()), 2), "style": round(100 * float((sty == true_sty).mean()), 2)}


def judge_on_vae_round_trip(world, judge, pipe, per_pair: int = 4) -> dict:
    """The judge on fresh renders after the pipeline's VAE encodes and decodes them, per class.

    The pipeline's samples can only be as legible as what its VAE reproduces: a style the samples
    miss but the round trip keeps is lost in the UNet (more training), not in the autoencoder.
    """
    images, true_obj, true_sty = _fresh_renders(world, per_pair)
    backbone = backbone_for(pipe)
    pixels = backbone.from_pil([Image.fromarray(a) for a in images])
    with torch.no_grad():
        decoded = torch.cat([backbone.decode(backbone.encode_images(pixels[i : i + 100])) for i in range(0, len(pixels), 100)])
    obj, sty = judge.predict(backbone.to_pil(decoded))
    return {
        "object": round(100 * float((obj == true_obj).mean()), 2),
        "style": round(100 * float((sty == true_sty).mean()), 2),
        "per_style": _per_class(sty == true_sty, true_sty, world.styles),
        "images": len(images),
    }


def generated_accuracy(world, judge, pipe, settings: SamplerSettings, seeds: list[int], progress: bool = True) -> dict:
    """Judge accuracy on the pipeline's samples of every canonical prompt at every seed, drawn as
    ``erase eval`` draws them (its answer set: a noise of its own for every image)."""
    answers = canvas_answer_set(mini_canvas_benchmark(), seeds, settings.guidance)
    images = generate(backbone_for(pipe), list(answers.prompts), list(answers.seeds), settings, batch_size=100, progress=progress)
    obj, sty = judge.predict(images)
    true_obj, true_sty = answers.objects, answers.styles
    per_object = _per_class(obj == true_obj, true_obj, world.objects)
    per_style = _per_class(sty == true_sty, true_sty, world.styles)
    return {
        "object": round(100 * float((obj == true_obj).mean()), 2),
        "style": round(100 * float((sty == true_sty).mean()), 2),
        "worst_object": min(per_object.items(), key=lambda kv: kv[1]),
        "worst_style": min(per_style.items(), key=lambda kv: kv[1]),
        "per_object": per_object,
        "per_style": per_style,
        "images": len(images),
        "settings": settings.to_dict(),
        "seeds": seeds,
    }


def _seconds_per_image(pipe, prompts: list[str], settings: SamplerSettings) -> float:
    start = time.perf_counter()
    generate(backbone_for(pipe), prompts, [0] * len(prompts), settings, batch_size=len(prompts))
    return (time.perf_counter() - start) / len(prompts)


def one_step_quality(world, judge, pipe, one_step: str, settings: SamplerSettings, seeds: list[int],
                     repeats: int = 3, progress: bool = True) -> dict:
    """The one-step generator in ``one_step`` (an artifact of ``pipe``) against its bars: the judge on
    its samples of every prompt, and seconds per image (every prompt once, end to end: text
    encoder, sampler, VAE) against ``pipe`` with ``settings``, medians of ``repeats`` alternating runs."""
    generator = ErasureResult.load(one_step)
    prompts = [world.prompt(o, s) for o in world.objects for s in world.styles]
    teacher, one = [], []
    for _ in range(repeats):
        teacher.append(_seconds_per_image(pipe, prompts, settings))
        with generator.applied(pipe):
            one.append(_seconds_per_image(pipe, prompts, settings))
    with generator.applied(pipe):
        accuracy = generated_accuracy(world, judge, pipe, settings, seeds, progress)
    teacher_s, one_s = statistics.median(teacher), statistics.median(one)
    return {
        **accuracy,
        "seconds_per_image": {"teacher": round(teacher_s, 5), "one_step": round(one_s, 5), "repeats": repeats,
                              "images_per_run": len(prompts)},
        "speedup": round(teacher_s / one_s, 1),
    }


_PLAIN = r"""
import sys, numpy, torch
from diffusers import StableDiffusionPipeline
torch.set_num_threads(int(sys.argv[6]))  # the caller's: CPU reductions split by thread count round differently
pipe = StableDiffusionPipeline.from_pretrained(sys.argv[1], local_files_only=True)
images = pipe(sys.argv[3], num_inference_steps=int(sys.argv[4]), guidance_scale=float(sys.argv[5]),
              generator=torch.Generator().manual_seed(0), output_type="np").images
assert not any(m.split(".")[0] in ("pipelines", "erase", "eval", "attacks", "demos") for m in sys.modules), "imported erase"
numpy.save(sys.argv[2], images)
"""


def plain_diffusers_identical(folder: str, settings: SamplerSettings, prompt: str = "A star image in stripes style.") -> bool:
    """Same call, same seed, same thread count: plain diffusers in a clean process vs our loader, pixel for pixel."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "plain.npy")
        subprocess.run(
            [sys.executable, "-c", _PLAIN, folder, out, prompt, str(settings.steps), str(settings.guidance),
             str(torch.get_num_threads())],
            check=True, cwd=tmp, capture_output=True,
        )
        plain = np.load(out)
    pipe = load_pipeline(folder)
    ours = pipe(prompt, num_inference_steps=settings.steps, guidance_scale=settings.guidance,
                generator=torch.Generator().manual_seed(0), output_type="np").images
    return bool(np.array_equal(plain, ours))


def measure(folder: str, *, seeds: int = 4, progress: bool = True) -> dict:
    """Every quality bar for a built mini-canvas folder (see the module docstring)."""
    from eval.canvas import mini_canvas
    from eval.clip import load_mini_clip
    from eval.clip.zeroshot import render_labelled, zero_shot_accuracy

    world = mini_canvas()
    with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    settings = SamplerSettings(**manifest["sampling"])
    judge = world.judge(os.path.join(folder, "judge.safetensors"))
    pipe = load_pipeline(os.path.join(folder, "pipeline"))
    clip, _, tokenizer = load_mini_clip(os.path.join(folder, "clip"))
    first = world.seed_range("diffusion-heldout").start
    pairs = len(world.objects) * len(world.styles)
    images, objects, styles = render_labelled(world, range(first, first + FRESH_PER_PAIR * pairs))
    zero_shot = zero_shot_accuracy(clip, tokenizer, world, images, objects, styles)
    results = {
        "judge_on_fresh_renders": judge_on_renders(world, judge),
        "generated": generated_accuracy(world, judge, pipe, settings, list(range(seeds)), progress),
        "vae_round_trip": judge_on_vae_round_trip(world, judge, pipe),
        "clip_zero_shot": {"object": zero_shot["object_accuracy"], "style": zero_shot["style_accuracy"]},
        "plain_diffusers_identical": plain_diffusers_identical(os.path.join(folder, "pipeline"), settings),
    }
    one_step = os.path.join(folder, ONE_STEP_DIR)
    if os.path.isdir(one_step):
        results["one_step"] = one_step_quality(world, judge, pipe, one_step, settings, list(range(seeds)), progress=progress)
    return results
