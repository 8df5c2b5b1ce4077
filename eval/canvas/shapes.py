"""The objects of the mini-canvas world: silhouettes that stay distinct at 32x32 pixels.

Each object is a list of unit polygons (coordinates in [-1, 1], y pointing down), painted in
order: a filled polygon adds to the silhouette, a cut polygon removes from it (the crescent is
a disc with a disc cut out). Placing scales, stretches, rotates and moves them as the layout
says and rounds to whole pixels of the supersampled canvas, so PIL's integer rasteriser gives the
same mask on every machine.

The set avoids pairs that blur into each other at 32 px: no hexagon (a soft circle), no ring (an
outlined circle), a diamond narrower than it is tall (never a rotated square) and rotations of
at most 10 degrees.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from eval.canvas.layout import Layout

Polygon = tuple[tuple[float, float], ...]
Placed = list[tuple[list[tuple[int, int]], bool]]  # (pixel vertices, filled) in painting order


def _ellipse(cx: float, cy: float, r: float, n: int = 72) -> Polygon:
    return tuple((cx + r * math.cos(2 * math.pi * k / n), cy + r * math.sin(2 * math.pi * k / n)) for k in range(n))


def _star(points: int = 5, inner: float = 0.5) -> Polygon:
    """A fat star (inner radius half the outer) so its arms still hold a texture at 32 px."""
    vertices = []
    for k in range(2 * points):
        r = 1.0 if k % 2 == 0 else inner
        angle = math.pi * k / points - math.pi / 2  # first point straight up
        vertices.append((r * math.cos(angle), r * math.sin(angle) + 0.1))  # + 0.1: centre the bbox
    return tuple(vertices)


def _heart(n: int = 64) -> Polygon:
    """The classic parametric heart, scaled into [-1, 1]."""
    vertices = []
    for k in range(n):
        t = 2 * math.pi * k / n
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        vertices.append((x / 16.5, -(y + 2.5) / 14.5))
    return tuple(vertices)


_SQUARE: Polygon = ((-0.82, -0.82), (0.82, -0.82), (0.82, 0.82), (-0.82, 0.82))
_TRIANGLE: Polygon = ((0, -1), (1, 0.8), (-1, 0.8))
_CROSS: Polygon = (
    (-0.32, -1), (0.32, -1), (0.32, -0.32), (1, -0.32), (1, 0.32), (0.32, 0.32),
    (0.32, 1), (-0.32, 1), (-0.32, 0.32), (-1, 0.32), (-1, -0.32), (-0.32, -0.32),
)
# Pointing right: a shaft and a wide head, so it is neither a triangle nor a house.
_ARROW: Polygon = ((-1, -0.3), (0.05, -0.3), (0.05, -0.85), (1, 0), (0.05, 0.85), (0.05, 0.3), (-1, 0.3))
# Narrower than tall, so that no rotation makes it a square.
_DIAMOND: Polygon = ((0, -1), (0.72, 0), (0, 1), (-0.72, 0))
# Walls under a roof with eaves: the overhang is what tells it from a pentagon or an arrow.
_HOUSE: Polygon = ((-0.7, 1), (0.7, 1), (0.7, -0.1), (0.95, -0.1), (0, -1), (-0.95, -0.1), (-0.7, -0.1))

FILL, CUT = True, False
SHAPES: dict[str, tuple[tuple[Polygon, bool], ...]] = {
    "circle": ((_ellipse(0, 0, 1), FILL),),
    "square": ((_SQUARE, FILL),),
    "triangle": ((_TRIANGLE, FILL),),
    "star": ((_star(), FILL),),
    "cross": ((_CROSS, FILL),),
    "heart": ((_heart(), FILL),),
    # A disc with an offset disc cut away; the left rim stays 0.7 radius thick.
    "crescent": ((_ellipse(0, 0, 1), FILL), (_ellipse(0.5, -0.2, 0.8), CUT)),
    "arrow": ((_ARROW, FILL),),
    "diamond": ((_DIAMOND, FILL),),
    "house": ((_HOUSE, FILL),),
}


def place(object: str, layout: Layout, pixels_per_unit: float) -> Placed:
    """The object's polygons in supersampled pixel coordinates, as the layout places them."""
    stretch = math.sqrt(layout.aspect)
    sx, sy = layout.radius * stretch, layout.radius / stretch
    angle = math.radians(layout.rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    cx, cy = layout.centre
    placed: Placed = []
    for polygon, filled in SHAPES[object]:
        vertices = []
        for ux, uy in polygon:
            x, y = ux * sx, uy * sy
            # Counter-clockwise on screen, where y points down.
            rx, ry = x * cos + y * sin, -x * sin + y * cos
            vertices.append((round((cx + rx) * pixels_per_unit), round((cy + ry) * pixels_per_unit)))
        placed.append((vertices, filled))
    return placed


def rasterise(placed: Placed, pixels: int) -> np.ndarray:
    """The silhouette as a (pixels, pixels) bool mask."""
    image = Image.new("L", (pixels, pixels), 0)
    draw = ImageDraw.Draw(image)
    for vertices, filled in placed:
        draw.polygon(vertices, fill=255 if filled else 0)
    return np.asarray(image) > 0


def border(placed: Placed, mask: np.ndarray, width: int) -> np.ndarray:
    """The part of ``mask`` within ``width`` pixels of any polygon edge, as a bool mask.

    Drawing every edge as a line 2 * width thick with round joints sweeps a disc along the
    boundary, so the band has the same thickness on curves, corners and cuts alike.
    """
    image = Image.new("L", mask.shape[::-1], 0)
    draw = ImageDraw.Draw(image)
    for vertices, _ in placed:
        # Repeating the first two vertices puts a round joint on the closing corner too.
        draw.line(vertices + vertices[:2], fill=255, width=2 * width, joint="curve")
    return mask & (np.asarray(image) > 0)
