"""Build and ship the mini-canvas one-step generator (SFD stage one): ``erase mini-canvas distil``.

The generator is what ``erase run sfd --stage distil`` makes of the folder's pipeline, with every
object x style prompt of the world as its prompts. It lands in ``<folder>/one_step/`` as an
artifact (float16, like the pipeline beside it), where SFD's stage two finds it by default, and
its measured quality and sampling speed go into the manifest's ``one_step`` entry (the same
measurement ``erase mini-canvas check`` repeats). The build checkpoints every
:data:`CHECKPOINT_EVERY` iterations beside the folder, so a killed build resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from pipelines import load_pipeline
from pipelines.atomic import refuse_existing, work_dir, write_text
from pipelines.errors import EraseError
from pipelines.generation import SamplerSettings
from pipelines.shipped import MINI_CANVAS, ONE_STEP_DIR

CHECKPOINT_EVERY = 250


def distil_one_step(folder: str, *, steps: int | None = None, seed: int = 0, device: str = "cpu",
                    overwrite: bool = False, fresh: bool = False, progress: bool = True, timing_repeats: int = 3) -> dict[str, Any]:
    """Distil ``<folder>/pipeline`` into ``<folder>/one_step``; return the manifest's ``one_step`` entry
    (sampling speed: median of ``timing_repeats`` runs). ``fresh`` discards the checkpoint of an
    interrupted build instead of resuming it (one of another configuration is refused otherwise)."""
    from erase.config import build_config
    from erase.method import RunOptions
    from erase.registry import get_method

    from .canvas import mini_canvas
    from .canvas.training.quality import one_step_quality

    out = os.path.join(folder, ONE_STEP_DIR)
    manifest_path = os.path.join(folder, "manifest.json")
    refuse_existing(out, overwrite)
    if not os.path.isfile(manifest_path) or not os.path.isdir(os.path.join(folder, "pipeline")):
        raise EraseError(f"'{folder}' is not a mini-canvas folder (no manifest.json and pipeline/); "
                         "pass --folder a folder built by `erase mini-canvas train`")
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    world = mini_canvas()
    work = work_dir(out, "checkpoints")
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    prompts = os.path.join(work, "prompts.txt")  # every prompt of the world, named as a file so any base folder works
    write_text(prompts, "".join(f"{world.prompt(o, s)}\n" for o in world.objects for s in world.styles))
    method = get_method("sfd")
    options = {"stage": "distil", "seed": seed, "remain_prompts": prompts, **({"steps": steps} if steps else {})}
    config = build_config(method.config_class, **options)
    pipe = load_pipeline(os.path.join(folder, "pipeline"), device=device)
    result = method(config).fit(pipe, RunOptions(model_name=MINI_CANVAS, work_dir=work, checkpoint_every=CHECKPOINT_EVERY,
                                                 progress=progress))
    result.record["config"]["remain_prompts"] = "every object x style prompt of mini-canvas"  # not the work folder's path
    result.save(out, overwrite=overwrite, pipeline=False, half=True)
    shutil.rmtree(work, ignore_errors=True)
    settings = SamplerSettings(**manifest["sampling"])
    quality = one_step_quality(world, world.judge(os.path.join(folder, "judge.safetensors")), pipe.to("cpu"), out, settings,
                               seeds=list(range(4)), repeats=timing_repeats, progress=progress)
    entry = {
        "command": "erase mini-canvas distil" + (f" --steps {steps}" if steps else ""),
        "config": {k: result.record["config"][k] for k in ("steps", "batch_size", "lr", "lr_fake", "t_init", "guidance_real", "seed")},
        "train_seconds": result.record["cost"]["train_seconds"],
        "device": device,
        "quality": {k: quality[k] for k in ("object", "style", "worst_object", "worst_style", "seconds_per_image", "speedup")},
    }
    manifest["one_step"] = entry
    write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    return entry
