"""The shipped mini-canvas models: loadable, small, and as good as the README says.

The full bars are measured by ``erase mini-canvas check`` (figures in
``eval/measurements/mini_canvas_check.json``); here a CI-sized share of the same measurements
guards against a regression. Generated-sample thresholds are below the measured figures
(4 seeds, every image from its own noise: object 100%, style 95.0%; the one-step generator
100 / 98.25) by a margin for the single seed used here (seed 0 alone, 2026-11-28: style 91.0 and
97.0, floors 88 and 92; the first training phase alone read 86.75 at 4 seeds).
"""

import json
import os

import pytest
import torch

from eval.canvas import mini_canvas
from eval.canvas.training.quality import (
    generated_accuracy,
    judge_on_renders,
    judge_on_vae_round_trip,
    plain_diffusers_identical,
)
from pipelines import ErasureResult, load_pipeline
from pipelines.generation import SamplerSettings
from pipelines.shipped import mini_canvas_dir, mini_canvas_file

pytestmark = pytest.mark.slow


def test_shipped_folder_is_complete_and_under_30_mb():
    folder = mini_canvas_dir()
    total = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(folder) for f in files)
    assert total < 30 * 2**20
    with open(mini_canvas_file("manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    assert manifest["sampling"] == {"steps": 20, "guidance": 5.0}
    pipe = load_pipeline("mini-canvas")
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert {p.dtype for p in pipe.unet.parameters()} | {p.dtype for p in pipe.text_encoder.parameters()} == {torch.float32}


def test_shipped_judge_reads_fresh_renders():
    world = mini_canvas()
    accuracy = judge_on_renders(world, world.judge())
    assert accuracy["object"] >= 99 and accuracy["style"] >= 98


def test_shipped_vae_keeps_every_style_legible():
    """Measured 2026-11-27 (4 renders per pair): object 100, style 99.5, every style 97.5 or more; so
    the styles the samples miss (rings 80 %, dots 90 %) are the UNet's, not the autoencoder's."""
    world = mini_canvas()
    result = judge_on_vae_round_trip(world, world.judge(), load_pipeline("mini-canvas"), per_pair=2)
    assert result["object"] >= 97 and min(result["per_style"].values()) >= 90, result


def test_shipped_pipeline_draws_what_it_is_asked():
    world = mini_canvas()
    result = generated_accuracy(world, world.judge(), load_pipeline("mini-canvas"), SamplerSettings(), seeds=[0], progress=False)
    assert result["object"] >= 95, result
    assert result["style"] >= 88, result


def test_shipped_one_step_generator_draws_what_it_is_asked():
    """Measured (4 seeds): object 100, style 98.25. The style floor leaves a margin for one seed."""
    world = mini_canvas()
    generator = ErasureResult.load(mini_canvas_file("one_step"))
    assert generator.t_init == 625 and generator.concepts == []
    pipe = load_pipeline("mini-canvas")
    with generator.applied(pipe):  # checks that it was distilled from this very base
        result = generated_accuracy(world, world.judge(), pipe, SamplerSettings(), seeds=[0], progress=False)
    assert result["object"] >= 95, result
    assert result["style"] >= 92, result


def test_plain_diffusers_draws_the_same_images():
    assert plain_diffusers_identical(mini_canvas_file("pipeline"), SamplerSettings())
