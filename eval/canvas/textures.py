"""The styles of the mini-canvas world: textures that survive a 32x32 image and a 2x VAE.

A tiny latent-diffusion model sees the image through a 16x16 latent, so every feature is at
least 2-3 pixels wide and the periods are 6-10 pixels. Each style has its own signature that a
blur does not turn into another style's: none (solid), one soft vertical ramp (gradient), one
sharp vertical edge (split), vertical bands (stripes), horizontal chevrons (zigzag), diagonal
alternation (checker), isolated spots (dots), a connected lattice of lines (grid), circles
around the centre (rings), and a hollow shape (outline).

A texture gets pixel-centre coordinates in canvas units and returns the weight of the texture
colour per pixel (0 = foreground colour, 255 = texture colour) and the pixels it paints; the
rest shows the background. All arithmetic is exact or correctly rounded IEEE (add, multiply,
divide, floor, sqrt), so the pattern is identical on every machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from eval.canvas.layout import Layout

BAND = 3.0  # units: width of stripes, zigzag bands and rings (period 6)


@dataclass(frozen=True)
class Surface:
    """What a texture may look at for one image."""

    x: np.ndarray  # (H, W) float64, pixel centres in canvas units
    y: np.ndarray  # (H, W) float64
    layout: Layout
    mask: np.ndarray  # (H, W) bool, the object's silhouette
    pixels_per_unit: float
    border: Callable[[float], np.ndarray]  # width in units -> (H, W) bool band inside the edge

    def centroid(self) -> tuple[float, float]:
        """(x, y) of the silhouette's centre of area, from integer sums (exact on any machine)."""
        rows, columns = np.nonzero(self.mask)
        count = max(len(rows), 1)
        return (
            (int(columns.sum()) / count + 0.5) / self.pixels_per_unit,
            (int(rows.sum()) / count + 0.5) / self.pixels_per_unit,
        )

    def vertical_extent(self) -> tuple[float, float]:
        """(top, bottom) y of the silhouette's outermost pixel centres."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        if len(rows) == 0:
            return 0.0, 1.0
        return (rows[0] + 0.5) / self.pixels_per_unit, (rows[-1] + 0.5) / self.pixels_per_unit

    @property
    def u(self) -> np.ndarray:
        """x shifted by the layout's phase, for periodic textures."""
        return self.x + self.layout.phase[0]

    @property
    def v(self) -> np.ndarray:
        return self.y + self.layout.phase[1]


Texture = tuple[np.ndarray | int, np.ndarray]  # (texture weight 0-255, painted pixels)


def _wrap(coordinate: np.ndarray, period: float) -> np.ndarray:
    """``coordinate`` modulo ``period``, written out because ``np.mod`` on floats is 15x slower."""
    return coordinate - np.floor(coordinate / period) * period


def _alternate(coordinate: np.ndarray, width: float) -> np.ndarray:
    """255 on every other band of ``width`` units along ``coordinate``, else 0."""
    return (np.floor(coordinate / width).astype(np.int64) & 1).astype(np.uint8) * np.uint8(255)


def _where(condition: np.ndarray) -> np.ndarray:
    """255 where ``condition`` holds, else 0."""
    return condition.astype(np.uint8) * np.uint8(255)


def solid(s: Surface) -> Texture:
    return 0, s.mask


def gradient(s: Surface) -> Texture:
    """Foreground on the top quarter of the silhouette, fading linearly to the texture colour on
    its bottom quarter.

    Ramping over the middle half rather than the full height doubles the colour change per
    pixel, so the fade stands out from pixel noise and from the soft edges of a blurred solid
    shape (the one confusion the judge kept making with a full-height ramp).
    """
    top, bottom = s.vertical_extent()
    t = np.clip(2 * (s.y - top) / max(bottom - top, 1e-6) - 0.5, 0.0, 1.0)  # (H, W)
    return np.minimum(np.floor(t * 256), 255).astype(np.uint8), s.mask


def split(s: Surface) -> Texture:
    """Foreground left of the centroid, texture colour right of it: one sharp vertical edge.

    Cutting at the centroid, not the layout's centre, keeps both halves large on lopsided
    silhouettes such as the crescent.
    """
    return _where(s.x >= s.centroid()[0]), s.mask


def stripes(s: Surface) -> Texture:
    """Vertical bands."""
    return _alternate(s.u, BAND), s.mask


def zigzag(s: Surface) -> Texture:
    """Horizontal chevron bands: a triangle wave of period 10 and 4 units peak to peak."""
    wave = np.abs(_wrap(s.u, 10.0) - 5.0) * 0.8  # (H, W), in [0, 4]
    return _alternate(s.v + wave, BAND), s.mask


def checker(s: Surface) -> Texture:
    """4-unit squares alternating in both directions."""
    return _alternate(s.u, 4.0) ^ _alternate(s.v, 4.0), s.mask


def dots(s: Surface) -> Texture:
    """Discs 3.6 units across on a staggered lattice, 6 units apart."""
    odd_row = np.floor(s.v / 6.0).astype(np.int64) & 1  # (H, W), staggers every other row
    dx = _wrap(s.u + 3.0 * odd_row, 6.0) - 3.0
    dy = _wrap(s.v, 6.0) - 3.0
    return _where(dx * dx + dy * dy < 1.8**2), s.mask


def grid(s: Surface) -> Texture:
    """Lines 2 units wide every 8 units in both directions."""
    return _where((_wrap(s.u, 8.0) < 2.0) | (_wrap(s.v, 8.0) < 2.0)), s.mask


def rings(s: Surface) -> Texture:
    """Concentric bands around the silhouette's centroid (not phase-shifted: it is the anchor)."""
    cx, cy = s.centroid()
    distance = np.sqrt((s.x - cx) ** 2 + (s.y - cy) ** 2)
    return _alternate(distance + BAND / 2, BAND), s.mask


def outline(s: Surface) -> Texture:
    """Only a 2.5-unit band along the silhouette's edge, in the foreground colour; hollow inside."""
    return 0, s.border(2.5)


TEXTURES: dict[str, Callable[[Surface], Texture]] = {
    "solid": solid,
    "gradient": gradient,
    "split": split,
    "stripes": stripes,
    "zigzag": zigzag,
    "checker": checker,
    "dots": dots,
    "grid": grid,
    "rings": rings,
    "outline": outline,
}
