"""The prompts an attack works on: a canvas world's answer set for the concept, or a CSV file.

By default the attacked prompts are the concept's prompts of ``erase eval``'s answer set (every
object drawn in the style, or the object in every style, at every default seed, with the
benchmark's guidance), in the same order, so that on an unattacked model pre-ASR = 100 - UA.
Both sources are ``eval.canvas.answers``' own (``canvas_answer_set``, the I2P-style
``csv_answer_set``, ``limit_answers``); this module only turns their items into
:class:`PromptItem`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from eval.canvas.answers import (
    AnswerSet,
    Benchmark,
    canvas_answer_set,
    csv_answer_set,
    limit_answers,
)
from pipelines.errors import EraseError

from .base import PromptItem


def as_items(items: Sequence[PromptItem | tuple[str, int, float]]) -> list[PromptItem]:
    """PromptItems from items or ``(prompt, seed, guidance)`` triples (indexed in order)."""
    out = []
    for index, item in enumerate(items):
        if isinstance(item, PromptItem):
            out.append(item)
        else:
            prompt, seed, guidance = item
            out.append(PromptItem(index, str(prompt), int(seed), float(guidance)))
    if len({item.index for item in out}) != len(out):
        raise EraseError("prompt items must have distinct indices")
    return out


def _limited(answers: AnswerSet, limit: int | None) -> list[PromptItem]:
    """At most ``limit`` items, each keeping its index in the whole set (its noise depends on it):
    every prompt's first seed before any prompt's second, order kept (``limit_answers`` with
    one class per prompt)."""
    prompt_class = np.unique(np.asarray(answers.prompts), return_inverse=True)[1]  # (N,) one class per prompt
    numbered = replace(answers, objects=np.arange(len(answers)))  # subset() carries the positions along
    kept = limit_answers(numbered, limit, prompt_class)
    return [PromptItem(int(i), p, int(s), float(g)) for i, (p, s, g) in zip(kept.objects, kept.items())]


def answer_set_items(benchmark: Benchmark, concept: str, seeds: Sequence[int], guidance: float,
                     limit: int | None = None) -> list[PromptItem]:
    """The answer-set prompts that name ``concept`` (objects outer, then styles, then seeds)."""
    spec = benchmark.spec
    target = spec.canonical(concept)
    answers = canvas_answer_set(benchmark, seeds, guidance)
    kind = spec.kind(target)
    classes = answers.styles if kind == "style" else answers.objects
    names = spec.styles if kind == "style" else spec.objects
    named = answers.subset(np.flatnonzero(classes == names.index(target)))
    return _limited(named, limit)


def csv_items(path: str, default_guidance: float, limit: int | None = None) -> list[PromptItem]:
    """Items from an I2P-style CSV (``eval.canvas.answers.csv_answer_set``: prompt, seed, optional guidance)."""
    answers = csv_answer_set(path, default_guidance)
    if not any(prompt.strip() for prompt in answers.prompts):
        raise EraseError(f"{path} has no prompts; pass a CSV with at least one non-empty prompt")
    return _limited(answers, limit)
