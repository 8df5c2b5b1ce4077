"""Turn ``erase attack``'s options into the models, prompts, sampler and judge of a run.

Cheap checks come first (concept, prompt file, seeds, judge files), so that a typo fails in a
second with one line, before any model is loaded.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

from eval.canvas.answers import BENCHMARKS, parse_seeds
from eval.judges.protocol import Judge
from pipelines.backbone import Backbone, backbone_for
from pipelines.errors import ConfigError
from pipelines.generation import SamplerSettings

from .base import PromptItem
from .judges import build_judge, default_kind
from .models import resolve
from .prompts import answer_set_items, csv_items


@dataclass
class Setup:
    model: Backbone
    base: Backbone
    concept: str
    items: list[PromptItem]
    judge: Judge
    judge_info: dict[str, Any]
    sampler: SamplerSettings
    settings: dict[str, Any]  # what the record says about models and prompts


def prepare(args: argparse.Namespace, device: str) -> Setup:
    """Everything ``run_attack`` needs, from the parsed options (see the module docstring)."""
    from pipelines import load_pipeline

    if not args.concept.strip():
        raise ConfigError("no concept: pass --concept NAME (the erased concept)")
    models = resolve(args.model, args.base)
    benchmark = BENCHMARKS[args.benchmark]()
    spec = benchmark.spec
    overrides = {k: v for k, v in (("steps", args.steps), ("guidance", args.guidance)) if v is not None}
    sampling = {**benchmark.sampling, **overrides}
    if sampling["steps"] < 1:
        raise ConfigError(f"--steps {sampling['steps']} must be at least 1")
    sampler = SamplerSettings(steps=int(sampling["steps"]), guidance=float(sampling["guidance"]))
    kind = args.judge_kind or default_kind(args.concept, args.benchmark)
    concept = spec.canonical(args.concept) if kind != "nudenet" else args.concept.strip().lower()
    if args.prompts is not None:
        items = csv_items(args.prompts, sampler.guidance, args.limit)
    elif kind == "nudenet":
        raise ConfigError("nudity has no built-in answer set: pass --prompts FILE.csv (prompt, seed, guidance)")
    else:
        items = answer_set_items(benchmark, concept, parse_seeds(args.seeds, benchmark.seeds), sampler.guidance,
                                 args.limit)
    labels = [s.strip() for s in args.nudenet_labels.split(",")] if args.nudenet_labels else None
    judge, judge_info = build_judge(kind, concept, judge_path=args.judge, style_classifier=args.style_classifier,
                                    object_classifier=args.object_classifier, classifier_arch=args.classifier_arch,
                                    nudenet_labels=labels, nudenet_threshold=args.nudenet_threshold,
                                    nudenet_model=args.nudenet_model, device=device)
    model = backbone_for(load_pipeline(models.model, device=device))
    base = model if models.kind == "base" else backbone_for(load_pipeline(models.base, device=device))
    settings = {
        "model": args.model,
        "model_path": os.path.abspath(models.model) if os.path.exists(models.model) else None,
        "model_kind": models.kind,
        "base_model": models.base,
        "prompts_source": f"csv:{os.path.abspath(args.prompts)}" if args.prompts else f"answer set:{args.benchmark}",
        "benchmark": args.benchmark,
        "limit": args.limit,
    }
    if models.components is not None:  # an artifact's tensor names say what its erasure changed
        settings["attacked_components"] = list(models.components)
    return Setup(model, base, concept, items, judge, judge_info, sampler, settings)
