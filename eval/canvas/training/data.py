"""The text-to-image training set: renders of every (object, style) pair with varied captions.

Images come from the world's ``diffusion-train`` seed block (never used by the judge). Each
training example pairs an image with one caption drawn from a pool per pair: full captions
from every template and synonym (``spec.caption``), plus partial ones that name only the object
or only the style. The partial captions teach the model what a bare concept means ("stripes",
"a star"), which is exactly the prompt ESD and the attacks feed it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

OBJECT_ONLY = ("A {object}.", "A {object} image.", "{object}")
STYLE_ONLY = ("An image in {style} style.", "{style} style", "{style}")
PARTIAL_SHARE = 0.2  # of the caption pool: 10% object-only, 10% style-only


@dataclass
class TrainingSet:
    images: torch.Tensor  # (N, 3, 32, 32) float in [0, 1]
    pair: torch.Tensor  # (N,) index into pairs
    pairs: list[tuple[str, str]]  # (object, style) per pair index
    captions: list[list[str]]  # caption pool per pair index


def caption_pool(spec, obj: str, style: str, rng: np.random.Generator, size: int) -> list[str]:
    """``size`` captions for one pair: mostly full captions, some naming one concept only."""
    pool = []
    for i in range(size):
        r = rng.random()
        if r < PARTIAL_SHARE / 2:
            names = spec.names(obj)
            pool.append(OBJECT_ONLY[rng.integers(len(OBJECT_ONLY))].format(object=names[rng.integers(len(names))]))
        elif r < PARTIAL_SHARE:
            names = spec.names(style)
            pool.append(STYLE_ONLY[rng.integers(len(STYLE_ONLY))].format(style=names[rng.integers(len(names))]))
        else:
            pool.append(spec.caption(obj, style, rng))
    return pool


def build_training_set(spec, images_per_pair: int, seed: int = 0, captions_per_pair: int = 64) -> TrainingSet:
    """Render ``images_per_pair`` images of every pair (seeds from the ``diffusion-train`` block)."""
    rng = np.random.default_rng(seed)
    first = spec.seed_range("diffusion-train").start
    pairs = [(o, s) for o in spec.objects for s in spec.styles]
    items = [(o, s, first + i) for o, s in pairs for i in range(images_per_pair)]
    images = torch.from_numpy(spec.render_batch(items)).permute(0, 3, 1, 2).float() / 255.0
    pair = torch.arange(len(pairs)).repeat_interleave(images_per_pair)
    captions = [caption_pool(spec, o, s, rng, captions_per_pair) for o, s in pairs]
    return TrainingSet(images, pair, pairs, captions)
