"""The judge's check: generate with the attacked model, ask whether the concept is in the image.

One :class:`Checker` serves the pre-attack check (the clean prompts), the check after every
stage of a search (the adversarial prompts' text) and the replay of persisted successes, so all
three see images drawn the same way: ``pipelines.cache.generate_cached`` (without a cache: the
attacked model's images are not reused) with the prompt's seed, its guidance, and the sampler
settings of ``erase eval``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from eval.judges.protocol import Judge
from pipelines.backbone import Backbone
from pipelines.cache import generate_cached
from pipelines.generation import SamplerSettings

from .base import PromptItem


class Checker:
    """``checker(texts, items) -> (N,) bool``: the judge's verdict on the attacked model's images."""

    def __init__(self, model: Backbone, judge: Judge, concept: str, sampler: SamplerSettings,
                 batch_size: int = 8) -> None:
        self.model, self.judge, self.concept = model, judge, concept
        self.sampler, self.batch_size = sampler, batch_size
        self.images_generated = 0

    def images(self, texts: Sequence[str], items: Sequence[PromptItem]) -> np.ndarray:
        """``texts[i]`` drawn with ``items[i]``'s seed and guidance: (N, H, W, 3) uint8."""
        triples = [(text, item.seed, item.guidance) for text, item in zip(texts, items)]
        self.images_generated += len(items)
        return generate_cached(self.model, triples, self.sampler, None, batch_size=self.batch_size)

    def __call__(self, texts: Sequence[str], items: Sequence[PromptItem]) -> np.ndarray:
        if not items:
            return np.zeros(0, dtype=bool)
        images = self.images(texts, items)
        return np.asarray(self.judge.verdict(images, self.concept), dtype=bool)

    def describe(self) -> dict[str, Any]:
        """The sampler settings every check used (guidance is each prompt's own)."""
        return {**self.sampler.to_dict(), "guidance": "per prompt", "generated_from": "prompt text, re-tokenized"}
