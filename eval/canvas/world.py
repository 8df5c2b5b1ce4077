"""The mini-canvas renderer: ``render(object, style, seed)`` draws one deterministic image.

The world is UnlearnCanvas-shaped (objects x styles) but small enough that a tiny latent
diffusion model learns it on a CPU: see ``shapes.py`` for the objects, ``textures.py`` for the
styles and ``layout.py`` for what the seed decides (colours, size, place). Only numpy and PIL
are used, in integer or correctly rounded arithmetic, so a seed gives the same pixels anywhere.

Drawing: the image is drawn at ``SUPERSAMPLE`` times its size and each block of pixels is
averaged (an exact box filter in integers), which anti-aliases every edge.

Seed scheme: every use of renders draws its seeds from its own block, so that the judge is
never tested on images it trained on and the diffusion model never trains on the judge's test
images. Blocks are 1,000,000 seeds wide; take seeds from the start of a block, e.g.
``seed_range("judge-train")[:25_000]``.

    judge-train         0 ..   999,999   the judge's training renders
    judge-heldout       1,000,000 ..     the judge's accuracy on fresh renders
    diffusion-train     2,000,000 ..     the diffusion model's training images
    diffusion-heldout   3,000,000 ..     reference renders for the diffusion model (FID etc.)

The layout depends on the seed alone, so one seed shows every (object, style) pair in the same
colours and placement. Give each training image its own seed to see many layouts (the judge
does); reuse seeds across pairs where classes must be compared on exactly equal terms.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
from PIL import Image

from eval.canvas.layout import CANVAS_UNITS, draw_layout
from eval.canvas.shapes import SHAPES, border, place, rasterise
from eval.canvas.textures import TEXTURES, Surface
from pipelines.errors import EraseError

OBJECTS: tuple[str, ...] = tuple(SHAPES)
STYLES: tuple[str, ...] = tuple(TEXTURES)
SUPERSAMPLE = 4

_BLOCK = 1_000_000
SEED_PURPOSES: tuple[str, ...] = ("judge-train", "judge-heldout", "diffusion-train", "diffusion-heldout")


def seed_range(purpose: str) -> range:
    """The seeds reserved for ``purpose`` (see the module docstring)."""
    if purpose not in SEED_PURPOSES:
        raise EraseError(f"Unknown seed purpose {purpose!r}; use one of: {', '.join(SEED_PURPOSES)}.")
    start = SEED_PURPOSES.index(purpose) * _BLOCK
    return range(start, start + _BLOCK)


@functools.lru_cache(maxsize=8)
def _pixel_centres(pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of each supersampled pixel's centre in canvas units, each (pixels, pixels)."""
    coordinate = (np.arange(pixels, dtype=np.float64) + 0.5) * (CANVAS_UNITS / pixels)
    y, x = np.meshgrid(coordinate, coordinate, indexing="ij")
    x.flags.writeable = y.flags.writeable = False
    return x, y


def render_array(object: str, style: str, seed: int, size: int = 32) -> np.ndarray:
    """One image as a (size, size, 3) uint8 array; ``object`` and ``style`` are canonical names."""
    if object not in SHAPES:
        raise EraseError(f"Unknown object {object!r}; the mini-canvas objects are: {', '.join(OBJECTS)}.")
    if style not in TEXTURES:
        raise EraseError(f"Unknown style {style!r}; the mini-canvas styles are: {', '.join(STYLES)}.")
    if size < 8:
        raise EraseError(f"Image size {size} is too small to draw a mini-canvas image; use at least 8 (default 32).")
    layout = draw_layout(seed)
    pixels = size * SUPERSAMPLE
    per_unit = pixels / CANVAS_UNITS
    polygons = place(object, layout, per_unit)
    mask = rasterise(polygons, pixels)  # (P, P) bool
    x, y = _pixel_centres(pixels)
    surface = Surface(x, y, layout, mask, per_unit, lambda width: border(polygons, mask, round(width * per_unit)))
    weight, painted = TEXTURES[style](surface)  # (P, P) uint8 or 0, (P, P) bool

    # Colour lookup: entries 0-255 mix foreground into texture colour, entry 256 is background.
    weights = np.arange(256, dtype=np.int32)[:, None]  # (256, 1)
    foreground = np.array(layout.foreground, dtype=np.int32)  # (3,)
    texture = np.array(layout.texture, dtype=np.int32)  # (3,)
    mixes = (foreground * (255 - weights) + texture * weights + 127) // 255  # (256, 3)
    palette = np.vstack([mixes, layout.background]).astype(np.uint16)  # (257, 3)
    index = np.broadcast_to(np.asarray(weight, dtype=np.uint16), painted.shape).copy()  # (P, P)
    index[~painted] = 256
    canvas = np.take(palette, index, axis=0)  # (P, P, 3)

    # Exact box filter: sum each SUPERSAMPLE x SUPERSAMPLE block in integers, then round.
    k = SUPERSAMPLE
    rows = sum(canvas[i::k] for i in range(k))  # (size, P, 3)
    blocks = sum(rows[:, j::k] for j in range(k))  # (size, size, 3), at most 16 * 255: fits uint16
    return ((blocks + k * k // 2) // (k * k)).astype(np.uint8)


def render(object: str, style: str, seed: int, size: int = 32) -> Image.Image:
    """One RGB image of ``object`` drawn in ``style``; the same seed gives the same pixels."""
    return Image.fromarray(render_array(object, style, seed, size), mode="RGB")


def render_batch(items: Iterable[tuple[str, str, int]], size: int = 32) -> np.ndarray:
    """Images for (object, style, seed) triples as one (N, size, size, 3) uint8 array."""
    images = [render_array(object, style, seed, size) for object, style, seed in items]
    if not images:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(images)
