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

# Mid and dark colours: every one stands out against a pale background, so thin texture
# features (dots, outlines) stay visible whatever colour they are drawn in.
PALETTE: dict[str, RGB] = {
    "red": (205, 40, 45),
    "orange": (225, 110, 20),
    "green": (40, 150, 60),
    "teal": (0, 135, 135),
    "blue": (40, 90, 210),
    "navy": (35, 40, 120),
    "purple": (125, 55, 175),
    "magenta": (200, 40, 150),
    "brown": (125, 75, 35),
    "charcoal": (55, 55, 60),
}

# Foreground and texture colours must differ this much (Euclidean RGB distance) so that a
# texture never fades into its own background: with too similar a pair a gradient would look
# solid, which is the one confusion the prototype world had.
MIN_PAIR_DISTANCE = 110.0

# Ordered pairs; the list is symmetric, so foreground and texture share one distribution and
# the average colour of a shape does not depend on how much of it a style paints in which.
COLOUR_PAIRS: tuple[tuple[RGB, RGB], ...] = tuple(
    (a, b)
    for a in PALETTE.values()
    for b in PALETTE.values()
    if a != b and math.dist(a, b) >= MIN_PAIR_DISTANCE
)

CANVAS_UNITS = 32.0  # geometry is defined on a 32-unit canvas; one unit is one pixel at size 32
RADIUS_RANGE = (9.0, 12.5)  # half-extent of the silhouette, units (shapes span 18-25 px at 32)
ASPECT_RANGE = (0.87, 1.15)  # width/height stretch, area-preserving
ROTATION_RANGE = (-10.0, 10.0)  # degrees; small, so that "diamond" never turns into "square"
MARGIN = 1.0  # units of background kept between the silhouette and the canvas edge
PHASE_RANGE = 24.0  # texture offset, units; a common multiple of every texture period


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
    # Pale, slightly tinted: each channel 210-249.
    background = tuple(249 - draws.index(40) for _ in range(3))
    radius = draws.uniform(*RADIUS_RANGE)
    aspect = draws.uniform(*ASPECT_RANGE)
    rotation = draws.uniform(*ROTATION_RANGE)
    # The stretched, rotated silhouette stays within radius * reach of its centre.
    reach = radius * math.sqrt(ASPECT_RANGE[1]) + MARGIN
    centre = (draws.uniform(reach, CANVAS_UNITS - reach), draws.uniform(reach, CANVAS_UNITS - reach))
    phase = (draws.uniform(0.0, PHASE_RANGE), draws.uniform(0.0, PHASE_RANGE))
    return Layout(foreground, texture, background, centre, radius, aspect, rotation, phase)
