"""Build every shipped mini-canvas model from scratch into one folder (``erase mini-canvas train``).

The folder (by default the package's own ``pipelines/mini_canvas/``) holds::

    pipeline/            stock StableDiffusionPipeline (fp16 weights, loaded as fp32)
    judge.safetensors    the object/style classifier
    clip/                the mini CLIP (open_clip) for CLIP score
    manifest.json        budget, seed, device, timings, training reports, sampling defaults

Budgets: ``cpu`` fits two CPU cores (about an hour for everything), ``gpu`` trains longer on a
CUDA device (the shipped weights, see manifest.json), ``smoke`` is a seconds-long run for tests.
Same budget, seed and device: same weights. Finished stages wait in ``.<out>.build/`` beside
the output, so a killed build resumes where it stopped (rerun the same command).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass

import torch

from pipelines.artifact import save_pipeline_folder, versions
from pipelines.atomic import atomic_folder, refuse_existing, write_text
from pipelines.errors import ConfigError
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


def store_fp16(pipe, folder: str) -> None:
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


def work_folder(out: str) -> str:
    """Where finished stages wait until the whole build is done: a dot-folder beside ``out``."""
    out = os.path.abspath(out)
    return os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.build")


class _Stages:
    """Each stage (vae, pipeline, judge, clip) lands atomically in the work folder with a report.

    A killed build resumes at the first unfinished stage: the hour of text-to-image training is
    never redone because the judge, trained after it, was interrupted.
    """

    def __init__(self, folder: str, settings: dict) -> None:
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        settings_path = os.path.join(folder, "settings.json")
        if os.path.exists(settings_path):
            with open(settings_path, encoding="utf-8") as f:
                previous = json.load(f)
            if previous != settings:
                raise ConfigError(
                    f"the unfinished build in {folder} used {previous}, not {settings}; rerun with those "
                    "settings to resume it, or delete that folder to start over"
                )
        else:
            write_text(settings_path, json.dumps(settings, indent=2))

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def done(self, name: str) -> bool:
        return os.path.exists(os.path.join(self.path(name), "report.json"))

    def report(self, name: str) -> dict:
        with open(os.path.join(self.path(name), "report.json"), encoding="utf-8") as f:
            return json.load(f)

    def run(self, name: str, train) -> dict:
        """Run ``train(tmp_folder) -> report`` unless the stage is done; return its report."""
        if self.done(name):
            logger.info("mini-canvas: stage '%s' already built in %s, reusing it", name, self.path(name))
            return self.report(name)
        start = time.perf_counter()
        with atomic_folder(self.path(name), overwrite=True) as tmp:
            report = train(tmp)
            report["seconds"] = round(time.perf_counter() - start, 1)
            write_text(os.path.join(tmp, "report.json"), json.dumps(report, indent=2, default=str))
        return report


def build_mini_canvas(out: str, *, budget: str = "cpu", device: str = "cpu", seed: int = 0, overwrite: bool = False, progress: bool = True) -> dict:
    """Train everything (resuming finished stages) and write the folder atomically; returns the manifest."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline

    from eval.canvas import mini_canvas
    from eval.clip import save_mini_clip, train_mini_clip
    from eval.judges.canvas_judge import train_judge

    refuse_existing(out, overwrite)  # before an hour of training, not after
    plan = BUDGETS[budget]
    world = mini_canvas()
    device_name = torch.cuda.get_device_name() if device.startswith("cuda") else device
    stages = _Stages(work_folder(out), {"budget": budget, "seed": seed, "device": device_name})
    data = None

    def training_set():
        nonlocal data
        if data is None:
            data = build_training_set(world, plan.images_per_pair, seed=seed)
        return data

    def vae_stage(tmp: str) -> dict:
        vae, report = train_vae(training_set().images, steps=plan.vae_steps, batch_size=plan.vae_batch, lr=plan.vae_lr, device=device, seed=seed, progress=progress)
        vae.to("cpu").save_pretrained(tmp)
        return report

    def pipeline_stage(tmp: str) -> dict:
        stages.run("vae", vae_stage)
        vae = AutoencoderKL.from_pretrained(stages.path("vae")).to(device)
        unet, text_encoder, report = train_text_to_image(
            vae, clip_tokenizer(), training_set(), steps=plan.t2i_steps, batch_size=plan.t2i_batch, lr=plan.t2i_lr, device=device, seed=seed, progress=progress
        )
        pipe = StableDiffusionPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(), unet=unet, scheduler=sampling_scheduler(),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        ).to("cpu")
        store_fp16(pipe, tmp)
        return report

    def judge_stage(tmp: str) -> dict:
        judge, report = train_judge(world, seed=seed, images_per_pair=plan.judge_images_per_pair, epochs=plan.judge_epochs, device=device, progress=progress)
        judge.save(os.path.join(tmp, "judge.safetensors"))
        return report

    def clip_stage(tmp: str) -> dict:
        model, report = train_mini_clip(world, seed=seed, steps=plan.clip_steps, device=device, progress=progress)
        save_mini_clip(model, tmp, report, report.get("model_cfg"), overwrite=True)
        return report

    reports = {
        "text_to_image": stages.run("pipeline", pipeline_stage),
        "vae": stages.report("vae"),
        "judge": stages.run("judge", judge_stage),
        "clip": stages.run("clip", clip_stage),
    }
    manifest = {
        "schema": 1,
        "budget": budget,
        "budget_settings": asdict(plan),
        "seed": seed,
        "device": device_name,
        "timings": {f"{name}_seconds": report.get("seconds") for name, report in reports.items()},
        "reports": reports,
        "sampling": SAMPLING,
        "versions": versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with atomic_folder(out, overwrite=overwrite) as tmp:
        shutil.copytree(stages.path("pipeline"), os.path.join(tmp, "pipeline"), ignore=shutil.ignore_patterns("report.json"))
        shutil.copy2(os.path.join(stages.path("judge"), "judge.safetensors"), os.path.join(tmp, "judge.safetensors"))
        shutil.copytree(stages.path("clip"), os.path.join(tmp, "clip"), ignore=shutil.ignore_patterns("report.json"))
        write_text(os.path.join(tmp, "manifest.json"), json.dumps(manifest, indent=2, default=str))
    shutil.rmtree(stages.folder, ignore_errors=True)
    logger.info("mini-canvas built in %s: %s", out, manifest["timings"])
    return manifest
