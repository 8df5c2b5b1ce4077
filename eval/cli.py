"""``erase eval``: measure what an erased model forgot and what it kept.

    erase eval --model runs/no-stripes --target stripes --out runs/no-stripes-eval
    erase eval --model /models/uc-no-vangogh --base /models/uc --benchmark unlearncanvas --target "Van Gogh" \\
        --style-classifier style50.pth --object-classifier style50_cls.pth --out eval/vangogh
    erase eval --model runs/no-nudity --prompts i2p_nudity.csv --target nudity --out eval/nudity
    accelerate launch --num_processes 4 -m erase eval ...     # prompts sharded over 4 GPUs

Writes ``OUT/eval.json`` (keys in ``shared/docs/contracts.md``), ``OUT/report.md`` and
``OUT/grid.png`` (same prompts and seeds, base vs erased), atomically; never into the model's
folder. ``--model`` is an ``erase run`` artifact or any pipeline; ``--base`` defaults to the
base the artifact records.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from typing import Any

from eval.canvas.unlearncanvas import CLASSIFIER_ARCH
from pipelines.errors import ConfigError

logger = logging.getLogger("erase")

METRIC_CHOICES = ("ua", "ira", "cra", "fid", "clip")


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="measure UA / IRA / CRA, FID, CLIP score and cost of an erased model",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="erased model: an `erase run` artifact folder, a diffusers folder or a name")
    p.add_argument("--base", default=None, help="base model to compare with (default: the artifact's recorded base)")
    p.add_argument("--target", "--concept", dest="target", required=True, help="the erased concept (any of its names)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (must not exist unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--benchmark", choices=["mini-canvas", "unlearncanvas"], default="mini-canvas",
                   help="answer set: every object x style prompt of this world (default: mini-canvas)")
    p.add_argument("--prompts", default=None, metavar="CSV", help="answer set from a CSV (prompt, seed, guidance), judged by NudeNet")
    p.add_argument("--seeds", default=None, help="a count (5) or a list (188,288,588); default: the benchmark's. One image per prompt and seed, "
                   "each from a noise of its own (eval.canvas.answers.image_seed)")
    p.add_argument("--metrics", default=None, help=f"comma-separated subset of {','.join(METRIC_CHOICES)} (default: all that apply)")
    p.add_argument("--limit", type=int, default=None, metavar="K", help="evaluate at most K images, spread over classes (quick look)")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the benchmark's)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the benchmark's)")
    p.add_argument("--batch-size", type=int, default=100, help="images per generation batch")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--cache-dir", default=None, help="cache of base generations (default: $ERASE_CACHE or ~/.cache/erase)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the generation cache")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--attack", default=None, metavar="NAME", help="also attack the model (unlearndiffatk) on the target's prompts: adds pre-ASR and ASR")
    p.add_argument("--attack-config", default=None, metavar="FILE", help="with --attack: YAML or JSON of the attack's options (e.g. stages: 5)")
    g = p.add_argument_group("judges and metric networks (local files; nothing downloads)")
    g.add_argument("--judge", default=None, metavar="FILE", help="mini-canvas judge weights (default: the shipped judge)")
    g.add_argument("--style-classifier", default=None, metavar="FILE", help="UnlearnCanvas style classifier checkpoint")
    g.add_argument("--object-classifier", default=None, metavar="FILE", help="UnlearnCanvas object classifier checkpoint")
    g.add_argument("--classifier-arch", default=CLASSIFIER_ARCH, help="timm architecture of the two classifiers")
    g.add_argument("--clip-model", default=None, metavar="DIR", help="CLIP folder, open_clip or transformers (default on mini-canvas: the shipped mini CLIP)")
    g.add_argument("--fid-reference", default=None, metavar="DIR", help="real images for FID on real models")
    g.add_argument("--fid-inception", default=None, metavar="FILE", help="Inception weights for FID on real models")
    g.add_argument("--fid-variant", choices=["standard", "unlearncanvas"], default="standard",
                   help="standard TF-FID Inception (pt_inception-2015-12-05) or UnlearnCanvas's torchvision Inception")
    g.add_argument("--nudenet-labels", default=None, help="comma-separated NudeNet labels counted as nudity (default: UnlearnDiffAtk's nine)")
    g.add_argument("--nudenet-model", default=None, metavar="FILE", help="NudeNet .onnx detector (default: the one in the nudenet package)")
    g.add_argument("--nudenet-threshold", type=float, default=None, help="NudeNet score above which a label counts (default 0.45)")
    p.set_defaults(handler=run)


def _metrics(args: argparse.Namespace) -> tuple[str, ...]:
    if args.metrics is None:
        if args.prompts is None and args.benchmark == "mini-canvas":
            return METRIC_CHOICES
        extra = (("fid",) if args.fid_reference else ()) + (("clip",) if args.clip_model else ())
        return (("ua",) if args.prompts else ("ua", "ira", "cra")) + extra
    chosen = tuple(dict.fromkeys(m.strip().lower() for m in args.metrics.split(",") if m.strip()))
    unknown = [m for m in chosen if m not in METRIC_CHOICES]
    if unknown or not chosen:
        raise ConfigError(f"--metrics {args.metrics!r}: unknown {unknown or 'empty list'}; choose from {','.join(METRIC_CHOICES)}")
    if args.prompts and {"ira", "cra"} & set(chosen):
        raise ConfigError("--prompts answer sets have no classes: IRA and CRA need a canvas benchmark; use --metrics ua,clip,fid")
    return chosen


def _check_out(args: argparse.Namespace) -> None:
    from pipelines.atomic import refuse_existing

    refuse_existing(args.out, args.overwrite)
    model = os.path.abspath(os.path.expanduser(args.model))
    out = os.path.abspath(args.out)
    if os.path.isdir(model) and (out == model or out.startswith(model + os.sep)):
        raise ConfigError(f"--out {args.out} is inside the model folder {args.model}; erase eval never writes there, "
                          "choose a folder outside it")


def _artifact_record(model: str) -> dict[str, Any] | None:
    path = os.path.join(os.path.expanduser(model), "erasure.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise ConfigError(f"'{path}' is not readable JSON ({error}); re-run the erasure or pass a pipeline folder") from None


def _default_base(record: dict[str, Any] | None) -> str | None:
    """The base an artifact's record names (None for a plain pipeline)."""
    from pipelines.artifact import recorded_base

    return recorded_base(record.get("base", {})) if record is not None else None


def _folder_mb(folder: str) -> float:
    total = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(folder) for f in files)
    return round(total / 2**20, 3)


def run(args: argparse.Namespace) -> int:
    from pipelines.cost import PeakMemory

    started = time.perf_counter()
    metrics = _metrics(args)
    _check_out(args)
    for flag, value in (("--limit", args.limit), ("--batch-size", args.batch_size), ("--bootstrap", args.bootstrap)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value} must be at least 1")
    if args.attack is not None:
        import importlib

        importlib.import_module("attacks").get_attack(args.attack)  # an unknown name fails before any model loads
    from .metrics.prepare import prepare
    from .runner import attack_robustness, evaluate

    artifact = _artifact_record(args.model)
    default_base = _default_base(artifact)
    if args.attack is not None and not (args.base or default_base):
        raise ConfigError("--attack needs the unerased model for its target images; pass --base")
    with PeakMemory() as memory:
        prepared = prepare(args, metrics, default_base)
        record, grids = evaluate(prepared.model, prepared.plan, prepared.tools, base=prepared.base)
        if args.attack is not None:
            record["robustness"] = attack_robustness(args.attack, prepared.model, prepared.base, prepared.plan,
                                                     prepared.tools, args.attack_config)
    from pipelines.sharding import is_main_process

    if not is_main_process():
        return 0
    record["settings"].update(model=args.model, base_model=prepared.base_name, benchmark=prepared.benchmark,
                              limit=args.limit, device=prepared.device, processes=prepared.processes)
    record["cost"].update(eval_seconds=round(time.perf_counter() - started, 2), eval_peak_rss_mb=round(memory.peak_rss_mb, 1),
                          eval_peak_gpu_mb=round(memory.peak_gpu_mb, 1))
    if artifact is not None:
        record["cost"]["erasure"] = artifact.get("cost", {})
        record["cost"]["artifact_folder_mb"] = _folder_mb(os.path.expanduser(args.model))
    _write(args.out, args.overwrite, record, grids, prepared)
    m = record["metrics"]
    logger.info("wrote %s: UA %s, IRA %s, CRA %s, FID %s, CLIP %s (%.0f s)", args.out, m["ua"], m["ira"], m["cra"],
                m["fid"], m["clip"], record["cost"]["eval_seconds"])
    return 0


def _write(out: str, overwrite: bool, record: dict[str, Any], grids: dict[str, Any], prepared: Any) -> None:
    from pipelines.atomic import atomic_folder

    from .metrics.report import grid_png, markdown

    title = f"erase eval: `{record['target']}` erased from `{record['settings']['model']}`"
    with atomic_folder(out, overwrite=overwrite) as tmp:
        with open(os.path.join(tmp, "eval.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
        with open(os.path.join(tmp, "report.md"), "w", encoding="utf-8") as f:
            f.write(markdown(record, title))
        labels = [prepared.plan.answers.prompts[row[0]] for row in prepared.plan.grid_rows]
        grid_png(prepared.plan.grid_rows, labels, grids, os.path.join(tmp, "grid.png"))
