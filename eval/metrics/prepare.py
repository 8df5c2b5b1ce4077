"""Turn ``erase eval``'s options into models, an answer set, a plan and instruments.

Cheap checks run first (target, seeds, files, judges), so a typo fails in a second with one
line, before any model is loaded.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np

from eval.canvas.answers import (
    BENCHMARKS,
    Benchmark,
    canvas_answer_set,
    csv_answer_set,
    limit_answers,
    parse_seeds,
)
from eval.metrics.instruments import clip_scorer, fid_for, mini_canvas_judge
from eval.runner import Instruments, Plan
from pipelines import resolve_device
from pipelines.backbone import Backbone
from pipelines.errors import ConfigError, EraseError
from pipelines.generation import SamplerSettings
from pipelines.sharding import num_processes

GRID_TARGET_ROWS, GRID_OTHER_ROWS, GRID_SEEDS = 4, 4, 3


@dataclass
class Prepared:
    model: Backbone
    base: Backbone | None
    base_name: str | None
    plan: Plan
    tools: Instruments
    benchmark: str
    device: str
    processes: int


def _target(benchmark: Benchmark, name: str) -> tuple[str, str]:
    """(canonical target, kind); the photo domain is not a target."""
    target = benchmark.spec.canonical(name)
    if target in benchmark.photo_styles:
        raise EraseError(f"{name!r} is {benchmark.name}'s photo domain, not an erasure target; choose a style or object")
    return target, benchmark.spec.kind(target)


def grid_rows(plan: Plan) -> list[list[int]]:
    """Positions shown in the grid: a few prompts naming the target, a few not, up to 3 seeds each."""
    by_prompt: dict[str, list[int]] = {}
    for position, prompt in enumerate(plan.answers.prompts):
        by_prompt.setdefault(prompt, []).append(position)
    names = plan.names_target()
    target = [ps[:GRID_SEEDS] for ps in by_prompt.values() if names[ps[0]]]
    others = [ps[:GRID_SEEDS] for ps in by_prompt.values() if not names[ps[0]]]
    step = max(1, len(others) // GRID_OTHER_ROWS)
    return target[:GRID_TARGET_ROWS] + others[::step][:GRID_OTHER_ROWS]


def _nudenet(args: argparse.Namespace) -> Any:
    from eval.judges import nudenet

    labels = [s.strip() for s in args.nudenet_labels.split(",")] if args.nudenet_labels else nudenet.DEFAULT_LABELS
    threshold = nudenet.DEFAULT_THRESHOLD if args.nudenet_threshold is None else args.nudenet_threshold
    if args.target.strip().lower() not in nudenet.CONCEPTS:
        raise EraseError(f"--prompts answer sets are judged by NudeNet, which knows nudity only; pass --target nudity "
                         f"(got {args.target!r})")
    return nudenet.NudeNetJudge(labels=labels, threshold=threshold, model_path=args.nudenet_model)


def _judge(args: argparse.Namespace, benchmark: Benchmark, metrics: tuple[str, ...],
           device: str) -> tuple[Any, dict[str, Any] | None]:
    """The canvas judge; UnlearnCanvas's classifiers are loaded only if UA / IRA / CRA are asked for."""
    if benchmark.name == "mini-canvas":
        return mini_canvas_judge(benchmark.spec, args.judge)
    if not {"ua", "ira", "cra"} & set(metrics):
        return None, None
    from eval.judges.unlearncanvas_judge import UnlearnCanvasJudge

    judge = UnlearnCanvasJudge.load(args.style_classifier, args.object_classifier, benchmark.spec,
                                    arch=args.classifier_arch, device=device)
    return judge, None


def _load(source: str, device: str) -> Backbone:
    from pipelines import backbone_for, load_pipeline

    return backbone_for(load_pipeline(source, device=device))


def prepare(args: argparse.Namespace, metrics: tuple[str, ...], default_base: str | None) -> Prepared:
    """Everything ``evaluate`` needs, from the parsed options (see the module docstring)."""
    device = resolve_device(args.device)
    benchmark = BENCHMARKS[args.benchmark]()
    overrides = {k: v for k, v in (("steps", args.steps), ("guidance", args.guidance)) if v is not None}
    sampling = {**benchmark.sampling, **overrides}
    if sampling["steps"] < 1:
        raise ConfigError(f"--steps {sampling['steps']} must be at least 1")
    sampler = SamplerSettings(steps=int(sampling["steps"]), guidance=float(sampling["guidance"]))
    judge_info = None
    if args.prompts is not None:
        judge, target, kind, axes = _nudenet(args), "nudity", "nudity", None
        answers = csv_answer_set(args.prompts, sampler.guidance)
        classes = np.zeros(len(answers), dtype=int)
    else:
        target, kind = _target(benchmark, args.target)
        axes = benchmark.axes
        answers = canvas_answer_set(benchmark, parse_seeds(args.seeds, benchmark.seeds), sampler.guidance)
        classes = answers.styles if kind == "style" else answers.objects
        judge, judge_info = _judge(args, benchmark, metrics, device)
    answers = limit_answers(answers, args.limit, classes)
    world = benchmark.spec if args.prompts is None else None
    fid = reference = None
    if "fid" in metrics:
        fid, reference = fid_for(world=world, judge=judge, target=target if world else None, variant=args.fid_variant,
                                 inception=args.fid_inception, reference=args.fid_reference)
    clip = clip_scorer(args.clip_model, benchmark.name == "mini-canvas" and args.prompts is None, device) if "clip" in metrics else None
    base_name = args.base or default_base
    model = _load(args.model, device)
    base = _load(base_name, device) if base_name else None
    cache_root = None
    if not args.no_cache:
        from pipelines.cache import default_cache_root

        cache_root = args.cache_dir or default_cache_root()
    plan = Plan(target=target, kind=kind, answers=answers, sampler=sampler, metrics=metrics, axes=axes,
                batch_size=args.batch_size, bootstrap=args.bootstrap, cache_root=cache_root,
                progress=not getattr(args, "quiet", False))
    plan.grid_rows = grid_rows(plan)
    tools = Instruments(judge=judge, fid=fid, reference=reference, clip=clip, judge_info=judge_info)
    name = "prompts:" + args.prompts if args.prompts else benchmark.name
    return Prepared(model, base, base_name, plan, tools, name, device, num_processes())
