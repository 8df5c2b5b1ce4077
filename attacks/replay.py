"""``erase attack --replay DIR``: regenerate every persisted success and ask the judge again.

Each success in ``adversarial_prompts.jsonl`` is drawn again from its text, seed and guidance
with the sampler settings of ``attack.json``, on the model the record names (refused if its
weights' fingerprint differs from the attacked model's), and judged by the judge the record
describes. Agreement is the share of successes the judge still calls successes: on the same
machine it should be 100%; elsewhere, floating-point differences can flip a borderline image.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from eval.judges.protocol import Judge
from pipelines.backbone import Backbone, backbone_for
from pipelines.cache import model_fingerprint
from pipelines.errors import EraseError
from pipelines.generation import SamplerSettings

from . import records
from .base import PromptItem
from .checking import Checker
from .judges import judge_from_record

logger = logging.getLogger(__name__)


def replay(folder: str, *, model: Any = None, judge: Judge | None = None, judge_path: str | None = None,
           device: str = "cpu") -> dict[str, Any]:
    """``{"replayed", "agreed", "agreement", "disagreements"}`` for the successes saved in ``folder``.

    ``model`` (a pipeline, a Backbone or a path) defaults to the recorded model; ``judge`` to
    the recorded judge, rebuilt from its files (``judge_path`` replaces a moved mini-canvas judge).
    """
    record, rows = records.read(folder)
    settings = record["settings"]
    backbone = _model(model, settings, device)
    if model_fingerprint(backbone) != settings["model_fingerprint"]:
        raise EraseError("the model given for the replay is not the attacked one (its weights' fingerprint differs "
                         "from the record's model_fingerprint); pass the attacked model with --replay-model")
    judge = judge if judge is not None else judge_from_record(settings["judge"], device, judge_path)
    sampler_settings = settings["sampler"]
    sampler = SamplerSettings(steps=int(sampler_settings["steps"]), sampler=sampler_settings["sampler"],
                              eta=float(sampler_settings["eta"]))
    checker = Checker(backbone, judge, record["concept"], sampler, batch_size=settings["config"]["batch_size"])
    successes = [row for row in rows if row["verdict"]]
    items = [PromptItem(row["index"], row["prompt"], int(row["seed"]), float(row["guidance"])) for row in successes]
    verdicts = checker([row["text"] for row in successes], items) if successes else np.zeros(0, dtype=bool)
    disagreements = [row["index"] for row, verdict in zip(successes, verdicts) if not verdict]
    agreed = len(successes) - len(disagreements)
    result = {"replayed": len(successes), "agreed": agreed,
              "agreement": round(100 * agreed / len(successes), 2) if successes else None,
              "disagreements": disagreements}
    logger.info("replayed %d successes: the judge agrees on %d", len(successes), agreed)
    return result


def _model(model: Any, settings: dict[str, Any], device: str) -> Backbone:
    from pipelines import load_pipeline

    if isinstance(model, Backbone):
        return model
    if model is not None and not isinstance(model, str):
        return backbone_for(model)
    source = model or settings.get("model_path") or settings.get("model")
    if not source:
        raise EraseError("the attack record names no model (it was run from Python); pass --model")
    return backbone_for(load_pipeline(source, device=device))
