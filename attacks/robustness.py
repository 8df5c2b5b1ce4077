"""``robustness(model, base, concept, ...)``: pre-ASR and ASR of a model, for ``erase eval --attack``.

The evaluation runners reach attacks only through the registry (``shared/docs/contracts.md``):
they pass the attack's name, the answer-set prompts that name the target, the sampler and
the judge they already use, and add the returned block to their record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from erase.config import build_config, read_config_file
from eval.judges.protocol import Judge
from pipelines.backbone import Backbone, backbone_for
from pipelines.generation import SamplerSettings

from .base import PromptItem
from .prompts import as_items
from .registry import get_attack
from .runner import AttackReport, run_attack


def robustness(model: Any, base: Any, concept: str, *, judge: Judge,
               items: Sequence[PromptItem | tuple[str, int, float]], attack: str = "unlearndiffatk",
               options: dict[str, Any] | None = None, config_file: str | None = None,
               sampler: SamplerSettings | None = None,
               progress: bool = True, judge_info: dict[str, Any] | None = None,
               cache_root: str | None = None, report: bool = False) -> dict[str, Any] | AttackReport:
    """Attack ``model`` (a pipeline or Backbone) on ``items``, with targets from ``base``.

    ``options`` are the attack's config fields (e.g. ``{"stages": 10}``), over those of a YAML
    or JSON ``config_file``; ``sampler`` defaults to ``SamplerSettings()`` (guidance is each
    item's); ``cache_root`` caches the base model's target images (``pipelines.cache``). Returns ``{"attack", "pre_asr", "asr",
    "budget", "seconds_per_prompt", "counts"}``, or the whole :class:`AttackReport` with
    ``report=True``.
    """
    cls = get_attack(attack)
    file_values = read_config_file(config_file) if config_file else None
    config = build_config(cls.config_class, file_values, **(options or {}))
    full = run_attack(cls(config), _backbone(model), _backbone(base), concept, as_items(items), judge,
                      sampler or SamplerSettings(), progress=progress, judge_info=judge_info,
                      cache_root=cache_root)
    if report:
        return full
    keys = ("attack", "pre_asr", "asr", "budget", "seconds_per_prompt", "counts")
    return {key: full.record[key] for key in keys}


def _backbone(model: Any) -> Backbone:
    return model if isinstance(model, Backbone) else backbone_for(model)
