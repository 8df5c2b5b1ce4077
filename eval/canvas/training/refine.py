"""Go on training a built mini-canvas model (``erase mini-canvas refine``): a further, shorter phase.

The cpu budget stops the UNet and text encoder at 5000 steps, where some styles are still drawn
poorly (rings, dots, split: ``erase mini-canvas check``) although the VAE keeps them legible. A
second phase of the same loss from the built weights, at a lower learning rate with its own warm-up
and cosine decay (a warm restart) and a fresh EMA, is how those styles are reached without
retraining from scratch. Phases chain: each starts from the folder the last one wrote, and its default
seed is the number of phases before it (1 for the first refine, 2 for the next, after the build's 0), so
each draws batches no earlier phase drew.

The judge and the mini CLIP are copied unchanged; a ``one_step/`` generator is not, because it was
distilled from the old UNet (``erase mini-canvas distil --folder OUT`` makes a new one). Every phase
is recorded in the manifest's ``refined`` list, with the SHA-256 of the weights it started from.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time

from pipelines import load_pipeline
from pipelines.atomic import atomic_folder, refuse_existing, write_text
from pipelines.errors import ConfigError
from pipelines.fingerprint import weights_sha256
from pipelines.shipped import ONE_STEP_DIR
from pipelines.tokenizer import clip_tokenizer

from .build import store_fp16
from .data import build_training_set
from .text_to_image import train_text_to_image

logger = logging.getLogger(__name__)


def refine_mini_canvas(folder: str, out: str, *, steps: int, lr: float, seed: int | None = None, device: str = "cpu",
                       overwrite: bool = False, progress: bool = True) -> dict:
    """Train ``folder``'s UNet and text encoder ``steps`` more steps into ``out``; returns the new manifest.

    ``seed`` defaults to one more than the number of refine phases ``folder`` already went through."""
    from eval.canvas import mini_canvas

    manifest_path = os.path.join(folder, "manifest.json")
    if not os.path.isfile(manifest_path):
        raise ConfigError(f"{folder} is not a built mini-canvas folder (no manifest.json); pass --folder with one "
                          "(`erase mini-canvas train` builds one)")
    if steps < 1 or lr <= 0:
        raise ConfigError(f"--steps {steps} and --lr {lr} must be positive")
    if os.path.abspath(out) == os.path.abspath(folder):
        raise ConfigError("--out must differ from --folder: the refined model is written beside the one it starts from")
    refuse_existing(out, overwrite)  # before half an hour of training, not after
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    plan = manifest.get("budget_settings")
    if not plan:
        raise ConfigError(f"{manifest_path} has no budget_settings (how its model was trained); refine a folder built "
                          "by `erase mini-canvas train`")
    pipe = load_pipeline(os.path.join(folder, "pipeline"))
    started_from = weights_sha256(os.path.join(folder, "pipeline"))
    if seed is None:
        seed = 1 + len(manifest.get("refined", []))
    data = build_training_set(mini_canvas(), plan["images_per_pair"], seed=manifest["seed"])
    start = time.perf_counter()
    unet, text_encoder, report = train_text_to_image(
        pipe.vae.to(device), clip_tokenizer(), data, steps=steps, batch_size=plan["t2i_batch"], lr=lr, device=device,
        seed=seed, init=(pipe.unet, pipe.text_encoder), progress=progress,
    )
    report.update(seconds=round(time.perf_counter() - start, 1), started_from_sha256=started_from, device=device)
    pipe.unet, pipe.text_encoder = unet.to("cpu"), text_encoder.to("cpu")
    pipe.to("cpu")
    refined = {key: value for key, value in manifest.items() if key != "one_step"}
    refined["refined"] = [*manifest.get("refined", []), report]
    refined["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with atomic_folder(out, overwrite=overwrite) as tmp:
        store_fp16(pipe, os.path.join(tmp, "pipeline"))
        shutil.copy2(os.path.join(folder, "judge.safetensors"), os.path.join(tmp, "judge.safetensors"))
        shutil.copytree(os.path.join(folder, "clip"), os.path.join(tmp, "clip"))
        write_text(os.path.join(tmp, "manifest.json"), json.dumps(refined, indent=2, default=str))
    if os.path.isdir(os.path.join(folder, ONE_STEP_DIR)):
        logger.warning("%s/%s was distilled from the old UNet and is not copied; `erase mini-canvas distil --folder %s` "
                       "distils one from the refined model", folder, ONE_STEP_DIR, out)
    logger.info("mini-canvas refined into %s: %d steps at lr %g in %.0f s", out, steps, lr, report["seconds"])
    return refined
