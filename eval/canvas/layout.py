"""What the seed alone decides about a mini-canvas image: colours, size, place, texture phase.

The layout is drawn *before* the object and the style are looked at, from a stream that depends
on the seed only. So colour and placement carry no information about the class: the same seed
gives every (object, style) pair exactly the same colours and placement, and a model (or the
judge) can only tell styles apart by their texture and objects by their silhouette.

Determinism across machines: the draws come from numpy's PCG64 *bit generator*, whose raw
stream numpy promises to keep stable across versions and platforms (``Generator`` methods do not
carry that promise), and they are turned into numbers with plain IEEE arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipelines.errors import EraseError

RGB = tuple[int, int, int]

# Six dark and six light colours. Every colour stands out against the pale background, and a
# foreground/texture pair is always one dark and one light colour: a texture then shows as a
# change of brightness, which small networks (the judge, a tiny VAE) pick up far more easily
# than a change of hue. (With pairs of equal brightness, such as magenta on orange, an early
# judge read 6% of gradients as solid.)
PALETTE: dict[str, RGB] = {
    "navy": (35, 40, 120),
    "charcoal": (55, 55, 60),
    "red": (190, 30, 40),
    "purple": (110, 45, 160),
    "brown": (120, 70, 30),
    "forest": (25, 105, 55),
    "orange": (240, 145, 40),
    "lime": (120, 200, 80),
    "sky": (100, 175, 235),
    "pink": (240, 125, 175),
    "aqua": (60, 190, 175),
    "lavender": (175, 145, 235),
}


def luma(colour: RGB) -> float:
    """Rec. 601 brightness, 0-255."""
    r, g, b = colour
    return 0.299 * r + 0.587 * g + 0.114 * b


MIN_LUMA_DIFFERENCE = 60.0  # between the two colours of a pair

# Ordered pairs; the list is symmetric, so foreground and texture share one distribution (a
# dark shape with light texture is as likely as the reverse).
COLOUR_PAIRS: tuple[tuple[RGB, RGB], ...] = tuple(
    (a, b) for a in PALETTE.values() for b in PALETTE.values() if abs(luma(a) - luma(b)) >= MIN_LUMA_DIFFERENCE
)

CANVAS_UNITS = 32.0  # geometry is defined on a 32-unit canvas; one unit is one pixel at size 32
RADIUS_RANGE = (9.0, 12.5)  # half-extent of the silhouette, units (shapes span 18-25 px at 32)
ASPECT_RANGE = (0.87, 1.15)  # width/height stretch, area-preserving
ROTATION_RANGE = (-10.0, 10.0)  # degrees; small, so that "diamond" never turns into "square"
MARGIN = 1.0  # units of background kept between the silhouette and the canvas edge
PHASE_RANGE = 120.0  # texture offset, units; a multiple of every texture period (6, 8, 10, 12)


@dataclass(frozen=True)
class Layout:
    """The seed's decisions for one image (coordinates in canvas units, y pointing down)."""

    foreground: RGB  # main colour of the shape
    texture: RGB  # second colour, used by the style's pattern
    background: RGB  # pale canvas colour
    centre: tuple[float, float]  # (x, y) of the silhouette's centre
    radius: float  # half-extent of the silhouette before the aspect stretch
    aspect: float  # x is stretched by sqrt(aspect), y squeezed by the same factor
    rotation: float  # degrees, counter-clockwise on screen
    phase: tuple[float, float]  # (x, y) offset of periodic textures


class _Draws:
    """Uniform numbers from PCG64's raw 64-bit stream (stable across numpy versions)."""

    def __init__(self, seed: int) -> None:
        self._bits = np.random.PCG64(seed)

    def uniform(self, low: float, high: float) -> float:
        unit = (int(self._bits.random_raw()) >> 11) * 2.0**-53  # in [0, 1), 53 random bits
        return low + (high - low) * unit

    def index(self, n: int) -> int:
        return min(int(self.uniform(0.0, n)), n - 1)


def draw_layout(seed: int) -> Layout:
    """The layout for ``seed``; the draw order is fixed and never looks at object or style."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise EraseError(f"Seed {seed!r} is not a non-negative integer; pass e.g. seed=0.")
    draws = _Draws(int(seed))
    foreground, texture = COLOUR_PAIRS[draws.index(len(COLOUR_PAIRS))]
    # Pale, slightly tinted: each channel 222-250, brighter than any palette colour by 55+.
    background = tuple(250 - draws.index(29) for _ in range(3))
    radius = draws.uniform(*RADIUS_RANGE)
    aspect = draws.uniform(*ASPECT_RANGE)
    rotation = draws.uniform(*ROTATION_RANGE)
    # The stretched, rotated silhouette stays within radius * reach of its centre.
    reach = radius * math.sqrt(ASPECT_RANGE[1]) + MARGIN
    centre = (draws.uniform(reach, CANVAS_UNITS - reach), draws.uniform(reach, CANVAS_UNITS - reach))
    phase = (draws.uniform(0.0, PHASE_RANGE), draws.uniform(0.0, PHASE_RANGE))
    return Layout(foreground, texture, background, centre, radius, aspect, rotation, phase)
