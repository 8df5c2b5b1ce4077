"""Evaluate a model (and its base, for comparison) on one answer set: the ``eval.json`` record.

    record, grids = evaluate(model, plan, instruments, base=base)

Each model's answer set is streamed batch by batch (``eval.canvas.answers.answer_batches``): the judge
reads every image, FID and CLIP score see the images whose prompt does not name the target
(UnlearnCanvas excludes the erased target from FID's generated set), and the few images of
the before/after grid are kept. Only the base model's images are cached on disk: it is the
one a sweep evaluates again and again. Under ``accelerate launch`` every process scores its
share and the per-image results are gathered; FID's statistics are summed by torchmetrics.

Metrics: UA / IRA / CRA with bootstrap intervals for a canvas benchmark
(``eval.metrics.accuracy``); for a prompt list judged by NudeNet, UA = 100 - nudity rate.
Keys follow ``shared/docs/contracts.md``; ``base`` holds the same block for the base model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from eval.canvas.answers import NOISE_RULE, AnswerSet, answer_batches
from eval.judges.protocol import Judge, judge_record
from eval.metrics import accuracy
from eval.metrics.clip import ClipScorer
from eval.metrics.fid import Fid
from pipelines.backbone import Backbone
from pipelines.cache import image_cache
from pipelines.generation import SamplerSettings, effective_settings
from pipelines.sharding import gather

METRICS = ("ua", "ira", "cra", "fid", "clip")


@dataclass
class Plan:
    """What to evaluate: the target, the answer set, how to draw it and how to summarise it."""

    target: str  # canonical name (a canvas concept) or "nudity"
    kind: str  # "style", "object" or "nudity"
    answers: AnswerSet
    sampler: SamplerSettings
    metrics: tuple[str, ...] = METRICS
    axes: accuracy.Axes | None = None  # the canvas classes; None for a prompt list
    batch_size: int = 100
    bootstrap: int = 1000
    bootstrap_seed: int = 0
    cache_root: str | None = None  # where base generations are cached; None: no cache
    progress: bool = True
    grid_rows: list[list[int]] = field(default_factory=list)  # answer positions shown, one row each

    def names_target(self) -> np.ndarray:
        """(N,) bool: does item i's prompt name the target? (Everything, for a prompt list.)"""
        if self.axes is None:
            return np.ones(len(self.answers), dtype=bool)
        classes = self.answers.styles if self.kind == "style" else self.answers.objects
        return classes == self.axes.names(self.kind).index(self.target)  # type: ignore[arg-type]


@dataclass
class Instruments:
    """The judge and the metric networks (each injected, so nothing downloads)."""

    judge: Judge | None
    fid: Fid | None = None
    reference: Callable[[int], Iterator[np.ndarray]] | None = None  # FID's real images at a size, this process's share
    clip: ClipScorer | None = None
    judge_info: dict[str, Any] | None = None  # what to record about the judge, if it has no record()

    def judge_record(self) -> dict[str, Any] | None:
        if self.judge is None:
            return None
        return self.judge_info or judge_record(self.judge)


def _stream(backbone: Backbone, plan: Plan, tools: Instruments, cached: bool, desc: str) -> dict[str, Any]:
    """One pass over this process's share of the answer set; returns what to gather."""
    outside = ~plan.names_target() if plan.axes is not None else np.ones(len(plan.answers), dtype=bool)
    shown = {p for row in plan.grid_rows for p in row}
    judging = any(m in plan.metrics for m in ("ua", "ira", "cra"))
    cache = image_cache(plan.cache_root, backbone, plan.sampler) if cached and plan.cache_root else None
    local: dict[str, Any] = {"positions": [], "objects": [], "styles": [], "verdicts": [], "grid": {}}
    for positions, images in answer_batches(backbone, plan.answers, plan.sampler, batch_size=plan.batch_size,
                                            cache=cache, progress=plan.progress, desc=desc):
        local["positions"] += positions
        if judging and plan.axes is not None:
            objects, styles = tools.judge.predict(images)
            local["objects"] += list(objects)
            local["styles"] += list(styles)
        elif judging:
            local["verdicts"] += list(tools.judge.verdict(images, plan.target))
        keep = [i for i, p in enumerate(positions) if outside[p]]
        if tools.fid is not None and "fid" in plan.metrics:
            tools.fid.update(images[keep], real=False)
        if tools.clip is not None and "clip" in plan.metrics:
            tools.clip.update([Image.fromarray(images[i]) for i in keep], [plan.answers.prompts[positions[i]] for i in keep])
        local["grid"].update({p: images[i] for i, p in enumerate(positions) if p in shown})
    local["clip"] = tools.clip.state() if tools.clip is not None else (0.0, 0)
    return local


def _merge(parts: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """All processes' results as full (N,) arrays (positions are disjoint shares)."""
    merged = {"objects": np.full(n, -1), "styles": np.full(n, -1), "verdicts": np.zeros(n, dtype=bool), "grid": {}}
    for part in parts:
        positions = np.asarray(part["positions"], dtype=int)
        for key in ("objects", "styles", "verdicts"):
            if part[key]:
                merged[key][positions] = part[key]
        merged["grid"].update(part["grid"])
    merged["clip"] = (sum(p["clip"][0] for p in parts), sum(p["clip"][1] for p in parts))
    return merged


def score_model(backbone: Backbone, plan: Plan, tools: Instruments, *, cached: bool = False,
                desc: str = "answers") -> tuple[dict[str, Any], dict[int, np.ndarray]]:
    """``({"metrics", "ci", "per_class", "seconds"}, grid images)`` for one model."""
    started = time.perf_counter()
    if tools.clip is not None:
        tools.clip.reset()
    if tools.fid is not None:
        tools.fid.metric.reset()  # generated side only: the reference statistics stay
    merged = _merge(gather(_stream(backbone, plan, tools, cached, desc)), len(plan.answers))
    metrics: dict[str, Any] = dict.fromkeys(METRICS)
    ci: dict[str, Any] = {}
    per_class: dict[str, Any] = {}
    if any(m in plan.metrics for m in ("ua", "ira", "cra")):
        if plan.axes is not None:
            judged = accuracy.Judged(plan.answers.objects, plan.answers.styles, merged["objects"], merged["styles"])
            kind = plan.kind  # type: ignore[assignment]
            metrics.update(accuracy.unlearning_metrics(judged, plan.target, kind, plan.axes))
            ci = accuracy.bootstrap_intervals(judged, plan.target, kind, plan.axes, resamples=plan.bootstrap,
                                              seed=plan.bootstrap_seed)
            per_class = accuracy.per_class(judged, plan.axes)
            per_class["target_predicted_as"] = accuracy.target_predictions(judged, plan.target, kind, plan.axes)
        else:
            rate, interval = accuracy.rate_with_interval(merged["verdicts"], resamples=plan.bootstrap,
                                                         seed=plan.bootstrap_seed)
            metrics["ua"] = None if rate is None else round(100 - rate, 2)
            ci = {"ua": None if interval is None else [round(100 - interval[1], 2), round(100 - interval[0], 2)]}
            per_class = {"nudity_rate": rate}
        metrics = {k: (v if k in plan.metrics else None) for k, v in metrics.items()}
        ci = {k: v for k, v in ci.items() if k in plan.metrics}
    if tools.fid is not None and "fid" in plan.metrics:
        metrics["fid"] = tools.fid.compute()
    if tools.clip is not None and "clip" in plan.metrics:
        metrics["clip"] = ClipScorer.score(*merged["clip"])
    result = {"metrics": metrics, "ci": ci, "per_class": per_class, "seconds": round(time.perf_counter() - started, 2)}
    return result, merged["grid"]


def evaluate(model: Backbone, plan: Plan, tools: Instruments, *, base: Backbone | None = None
             ) -> tuple[dict[str, Any], dict[str, dict[int, np.ndarray]]]:
    """The eval record (without ``cost`` and model names, which the caller knows) and the grids."""
    if tools.fid is not None and tools.reference is not None and "fid" in plan.metrics:
        for images in tools.reference(model.resolution):
            tools.fid.update(images, real=True)
    grids: dict[str, dict[int, np.ndarray]] = {}
    base_block = None
    if base is not None:
        base_block, grids["base"] = score_model(base, plan, tools, cached=True, desc="base answers")
    scored, grids["model"] = score_model(model, plan, tools, desc="model answers")
    answers = plan.answers
    record = {
        "schema": 1,
        "target": plan.target,
        "kind": plan.kind,
        "metrics": scored["metrics"],
        "ci": scored["ci"],
        "per_class": scored["per_class"],
        "base": base_block,
        "settings": {
            "prompts": list(dict.fromkeys(answers.prompts)),
            "seeds": list(dict.fromkeys(answers.runs)),
            "noise": NOISE_RULE if plan.axes is not None else "the seed of each prompt",
            "images": len(answers),
            "sampler": plan.sampler.sampler,
            "steps": plan.sampler.steps,
            "guidance": sorted(set(answers.guidance)) if len(set(answers.guidance)) > 1 else answers.guidance[0],
            "eta": plan.sampler.eta,
            "metrics": list(plan.metrics),
            "judge": tools.judge_record(),
            "clip": tools.clip.describe() if tools.clip is not None and "clip" in plan.metrics else None,
            "fid": _fid_settings(tools) if "fid" in plan.metrics else None,
            "bootstrap": {"resamples": plan.bootstrap, "seed": plan.bootstrap_seed, "level": 0.95,
                          "scheme": "percentile; images resampled with replacement within each class of the axis"},
            "target_excluded_from": ["fid", "clip"] if plan.axes is not None else [],
            **_one_step_settings(model, plan),
        },
        "cost": {"model_seconds": scored["seconds"], "base_seconds": base_block["seconds"] if base_block else None},
    }
    return record, grids


def _one_step_settings(model: Backbone, plan: Plan) -> dict[str, Any]:
    """A one-step generator ignores the steps and guidance above (they are the base's): say how it was drawn."""
    drawn = effective_settings(model, plan.sampler)
    return {"model_sampling": drawn} if drawn["sampler"] == "one-step" else {}


def _fid_settings(tools: Instruments) -> dict[str, Any] | None:
    if tools.fid is None:
        return None
    metric = tools.fid.metric  # counts are per process: add them up
    return {**tools.fid.describe(), "reference_images": sum(gather(int(metric.real_features_num_samples))),
            "generated_images": sum(gather(int(metric.fake_features_num_samples)))}


def attack_robustness(attack: str, model: Backbone, base: Backbone | None, plan: Plan, tools: Instruments,
                      config_file: str | None = None) -> dict[str, Any]:
    """The robustness column of ``erase eval --attack NAME``: pre-ASR and ASR of ``model``.

    The attack runs on the answer-set images whose prompt names the target (the same prompts,
    seeds and sampler as UA, so pre-ASR = 100 - UA), judged by the eval's own judge, with
    target images from ``base``. The attack is reached by name through its registry
    (``shared/docs/contracts.md``), never imported from here.
    """
    import importlib

    from pipelines.errors import ConfigError

    if base is None:
        raise ConfigError("--attack needs the unerased model for its target images; pass --base")
    positions = np.flatnonzero(plan.names_target())
    items = [(plan.answers.prompts[p], plan.answers.seeds[p], plan.answers.guidance[p]) for p in positions]
    return importlib.import_module("attacks").robustness(
        model, base, plan.target, judge=tools.judge, items=items, attack=attack, config_file=config_file,
        sampler=plan.sampler, progress=plan.progress, judge_info=tools.judge_record(), cache_root=plan.cache_root)
