"""Retain prompts: what a method keeps the model saying while it erases a concept.

One pool for every method with a retain term (AdvUnlearn's UNet term, few-shot's text-encoder
term): on mini-canvas the world's prompts of every pair that does not name the target under any
of its names; on real models "a photo of a {COCO object}" (``retain_coco_object.txt``, 80
classes), by default filtered to drop prompts that share a word with the concept (AdvUnlearn's
filtered set); a user's file (``--retain-prompts FILE``) replaces both.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch

from eval.canvas import mini_canvas
from pipelines.backbone import Backbone
from pipelines.errors import ConfigError, EraseError

from .data import read_prompts
from .templates import prompt_list


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def retain_pool(concepts: Sequence[str], prompts_file: str | None = None, filtered: bool = True) -> tuple[list[str], str]:
    """``(prompts, source)``: the retain prompts for erasing ``concepts`` (see the module docstring)."""
    if prompts_file is not None:
        pool, source = read_prompts(prompts_file, "--retain-prompts"), prompts_file
    else:
        world = mini_canvas()
        try:
            targets = [world.canonical(c) for c in concepts]
        except EraseError:
            targets = None
        if targets is not None:
            pool = [world.prompt(o, s) for o in world.objects for s in world.styles]
            pool = [p for p in pool if not any(world.mentions(p, c) for c in targets)]
            return pool, "mini-canvas prompts of the pairs that do not name the target"
        pool, source = list(prompt_list("retain_coco_object")), "retain_coco_object v1"
    if filtered:
        banned = set().union(*(_words(c) for c in concepts))
        pool = [p for p in pool if not _words(p) & banned]
        source += " (filtered)"
    if not pool:
        raise ConfigError("no retain prompt is left after filtering out the concept's words; pass --retain-prompts FILE "
                          "with prompts that do not name it, or --no-retain-filter")
    return pool, source


def encode_pool(backbone: Backbone, pool: Sequence[str], chunk: int = 64) -> torch.Tensor:
    """The text encoder's output for every prompt of ``pool``, ``(N, L, D)``, without gradients."""
    with torch.no_grad():
        return torch.cat([backbone.encode(list(pool[i:i + chunk])) for i in range(0, len(pool), chunk)])
