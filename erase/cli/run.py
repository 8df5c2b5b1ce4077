"""``erase run METHOD``: erase concepts from a model and write an artifact folder."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time

from pipelines import MINI_CANVAS, resolve_device
from pipelines.atomic import refuse_existing, work_dir
from pipelines.errors import ConfigError, TrainingDiverged

from ..config import build_config, read_config_file
from .options import add_config_options, explicit_config_values

logger = logging.getLogger("erase")


def add_parser(sub) -> None:
    from ..registry import available

    p = sub.add_parser(
        "run",
        help="erase concepts with a method and write an artifact",
        description="Erase concepts with METHOD and write DIR/erasure.safetensors, erasure.json, README.md "
        "and pipeline/ (a stock diffusers folder).",
    )
    methods = p.add_subparsers(dest="method", metavar="METHOD", required=True)
    for name, cls in available().items():
        m = methods.add_parser(name, help=cls.summary, description=f"{name}: {cls.summary}.")
        _add_common(m)
        add_config_options(m, cls.config_class)
        m.set_defaults(handler=run, method_class=cls)


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run options")
    g.add_argument("--model", default=MINI_CANVAS, help="base model: 'mini-canvas' (default), a diffusers folder, a .safetensors file, or a hub id")
    g.add_argument("--model-config", default=None, metavar="DIR", help="local diffusers folder with the configs of a single-file checkpoint")
    g.add_argument("--out", default=None, metavar="DIR", help="artifact folder to write (must not exist unless --overwrite)")
    g.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    g.add_argument("--config", default=None, metavar="FILE", help="YAML or JSON file of method options (flags override it)")
    g.add_argument("--dry-run", action="store_true", help="load and validate everything, print what would be trained, exit")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    g.add_argument("--fresh", action="store_true", help="ignore a checkpoint left by an interrupted run and start over")
    g.add_argument("--no-pipeline", action="store_true", help="skip exporting the full pipeline/ folder")
    g.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], default="no", help="autocast precision (weights stay fp32)")
    g.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for memory on large models")
    g.add_argument("--checkpoint-every", type=int, default=100, metavar="N", help="save a resumable checkpoint every N steps (0: never)")


def checkpoint_dir(out: str) -> str:
    """Where an interrupted run's checkpoints wait, beside (never inside) the output folder."""
    return work_dir(out, "checkpoints")


def diverged_dir(out: str) -> str:
    """Where a run stopped by a guard writes its last good state: ``OUT.diverged``, beside ``--out``.

    Never ``--out`` itself, so a diverged run is never mistaken for a finished erasure; and never
    the state an earlier diverged run left (``OUT.diverged.2``, ``.3``, ... then), so that a retry
    with other settings does not erase the evidence of the first.
    """
    base = os.path.abspath(out).rstrip(os.sep) + ".diverged"
    where, n = base, 1
    while os.path.exists(where):
        n += 1
        where = f"{base}.{n}"
    return where


def run(args: argparse.Namespace) -> int:
    from pipelines import load_pipeline

    from ..method import RunOptions

    started = time.perf_counter()
    cls = args.method_class
    if args.out is None and not args.dry_run:
        raise ConfigError("no output folder: pass --out DIR (or --dry-run to only validate)")
    if args.out is not None:
        refuse_existing(args.out, args.overwrite)
    file_values = read_config_file(args.config) if args.config else {}
    config = build_config(cls.config_class, file_values, **explicit_config_values(args, cls.config_class))
    method = cls(config)
    if args.checkpoint_every < 0:
        raise ConfigError("--checkpoint-every must be 0 (never) or a positive number of steps")
    device = resolve_device(args.device)
    pipe = load_pipeline(args.model, device=device, config=args.model_config)
    if args.dry_run:
        plan = method.plan(pipe)
        plan.update(model=args.model, device=device, config=config.to_dict())
        print(json.dumps(plan, indent=2))
        return 0
    work_dir = checkpoint_dir(args.out)
    if args.fresh and os.path.exists(work_dir):
        shutil.rmtree(work_dir)
    run_options = RunOptions(
        model_name=args.model,
        work_dir=work_dir,
        checkpoint_every=args.checkpoint_every,
        mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing,
        progress=not args.quiet,
    )
    from accelerate import PartialState

    fit_started = time.perf_counter()
    try:
        result = method.fit(pipe, run_options)
    except TrainingDiverged as e:
        if e.result is not None and PartialState().is_main_process:
            where = diverged_dir(args.out)
            e.result.save(where, pipeline=False)
            e.args = ((f"{e.args[0]} The trained tensors of the last good state (after step {e.last_good_step}) are written "
                       f"as {where}: a partial artifact, not a finished erasure (erase eval --model {where} judges it)."),)
        raise
    if not PartialState().is_main_process:
        return 0
    # What fit counted (with --unet-from, the UNet's training too) plus this command's loading and setup.
    result.record["cost"]["wall_seconds"] = round(result.record["cost"]["wall_seconds"] + fit_started - started, 3)
    result.save(args.out, overwrite=args.overwrite, pipeline=not args.no_pipeline)
    shutil.rmtree(work_dir, ignore_errors=True)
    cost = result.record["cost"]
    logger.info(
        "wrote %s: %d tensors (%.2f MB) changed; %.1f s training, %.1f s in all",
        args.out, len(result.tensors), cost["artifact_mb"], cost["train_seconds"], time.perf_counter() - started,
    )
    return 0
