"""Build every shipped mini-canvas model from scratch into one folder (``erase mini-canvas train``).

The folder (by default the package's own ``pipelines/mini_canvas/``) holds::

    pipeline/            stock StableDiffusionPipeline (fp16 weights, loaded as fp32)
    judge.safetensors    the object/style classifier
    clip/                the mini CLIP (open_clip) for CLIP score
    manifest.json        budget, seed, device, timings, training reports, sampling defaults

Budgets: ``cpu`` fits two CPU cores (about an hour for everything), ``gpu`` trains longer on a
CUDA device (the shipped weights, see manifest.json), ``smoke`` is a seconds-long run for tests.
Same budget, seed and device: same weights.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass

import torch

from pipelines.artifact import save_pipeline_folder, versions
from pipelines.atomic import atomic_folder
from pipelines.tokenizer import clip_tokenizer

from .architecture import sampling_scheduler
from .data import build_training_set
from .text_to_image import train_text_to_image
from .vae import train_vae

logger = logging.getLogger(__name__)

#: Sampling defaults of the shipped model: what "its default guidance" means everywhere.
SAMPLING = {"steps": 20, "guidance": 5.0}


@dataclass(frozen=True)
class Budget:
    images_per_pair: int
    vae_steps: int
    vae_batch: int
    t2i_steps: int
    t2i_batch: int
    judge_images_per_pair: int
    judge_epochs: int
    clip_steps: int
    vae_lr: float = 1e-3
    t2i_lr: float = 1e-3


BUDGETS = {
    "smoke": Budget(images_per_pair=2, vae_steps=4, vae_batch=8, t2i_steps=4, t2i_batch=8, judge_images_per_pair=2, judge_epochs=1, clip_steps=4),
    "cpu": Budget(images_per_pair=200, vae_steps=1500, vae_batch=32, t2i_steps=5000, t2i_batch=64, judge_images_per_pair=300, judge_epochs=2, clip_steps=2000),
    "gpu": Budget(images_per_pair=400, vae_steps=6000, vae_batch=128, t2i_steps=12000, t2i_batch=256, judge_images_per_pair=600, judge_epochs=3, clip_steps=4000),
}


def _store_fp16(pipe, folder: str) -> None:
    """Save fp16 weights; mark the text encoder's config float32 so plain loading upcasts it.

    transformers 5 loads weights in their stored dtype unless the config names one, which
    would leave an fp16 text encoder beside an fp32 UNet in a plain ``from_pretrained``.
    """
    pipe.to(torch.float16)
    save_pipeline_folder(pipe, folder)
    pipe.to(torch.float32)
    config_path = os.path.join(folder, "text_encoder", "config.json")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    config["dtype"] = "float32"
    config.pop("torch_dtype", None)
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)


def build_mini_canvas(out: str, *, budget: str = "cpu", device: str = "cpu", seed: int = 0, overwrite: bool = False, progress: bool = True) -> dict:
    """Train everything and write the folder atomically; returns the manifest."""
    from diffusers import StableDiffusionPipeline

    from eval.canvas import mini_canvas
    from eval.clip import save_mini_clip, train_mini_clip
    from eval.judges.canvas_judge import train_judge

    plan = BUDGETS[budget]
    world = mini_canvas()
    timings: dict[str, float] = {}
    reports: dict[str, dict] = {}
    with atomic_folder(out, overwrite=overwrite) as tmp:
        start = time.perf_counter()
        data = build_training_set(world, plan.images_per_pair, seed=seed)
        timings["render_seconds"] = time.perf_counter() - start

        start = time.perf_counter()
        vae, reports["vae"] = train_vae(data.images, steps=plan.vae_steps, batch_size=plan.vae_batch, lr=plan.vae_lr, device=device, seed=seed, progress=progress)
        timings["vae_seconds"] = time.perf_counter() - start

        start = time.perf_counter()
        tokenizer = clip_tokenizer()
        unet, text_encoder, reports["text_to_image"] = train_text_to_image(
            vae, tokenizer, data, steps=plan.t2i_steps, batch_size=plan.t2i_batch, lr=plan.t2i_lr, device=device, seed=seed, progress=progress
        )
        timings["text_to_image_seconds"] = time.perf_counter() - start
        pipe = StableDiffusionPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=sampling_scheduler(),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        ).to("cpu")
        os.makedirs(os.path.join(tmp, "pipeline"))
        _store_fp16(pipe, os.path.join(tmp, "pipeline"))

        start = time.perf_counter()
        judge, reports["judge"] = train_judge(world, seed=seed, images_per_pair=plan.judge_images_per_pair, epochs=plan.judge_epochs, device=device, progress=progress)
        judge.save(os.path.join(tmp, "judge.safetensors"))
        timings["judge_seconds"] = time.perf_counter() - start

        start = time.perf_counter()
        clip_model, reports["clip"] = train_mini_clip(world, seed=seed, steps=plan.clip_steps, device=device, progress=progress)
        save_mini_clip(clip_model, os.path.join(tmp, "clip"), reports["clip"], reports["clip"].get("model_cfg"))
        timings["clip_seconds"] = time.perf_counter() - start

        manifest = {
            "schema": 1,
            "budget": budget,
            "budget_settings": asdict(plan),
            "seed": seed,
            "device": torch.cuda.get_device_name() if device.startswith("cuda") else device,
            "timings": {k: round(v, 1) for k, v in timings.items()},
            "reports": reports,
            "sampling": SAMPLING,
            "versions": versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with open(os.path.join(tmp, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, default=str)
    logger.info("mini-canvas built in %s: %s", out, manifest["timings"])
    return manifest
