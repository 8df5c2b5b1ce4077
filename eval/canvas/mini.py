"""The mini-canvas world as a ``CanvasSpec`` that can also draw itself and load its judge."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from eval.canvas import world
from eval.canvas.spec import CANONICAL_TEMPLATE, CanvasSpec
from pipelines.shipped import mini_canvas_file

if TYPE_CHECKING:
    from eval.judges.canvas_judge import CanvasJudge

# Every name a caption may use; the canonical name first. No name is a whole word of another
# concept's name, and no template's own words name a concept, so ``mentions`` never confuses
# two concepts.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "disk"),
    "square": ("square", "box"),
    "triangle": ("triangle", "trigon"),
    "star": ("star", "five-pointed star"),
    "cross": ("cross", "plus", "plus sign"),
    "heart": ("heart", "love heart"),
    "crescent": ("crescent", "moon", "crescent moon"),
    "arrow": ("arrow", "pointer"),
    "diamond": ("diamond", "rhombus", "lozenge"),
    "house": ("house", "hut"),
    "solid": ("solid", "plain", "flat"),
    "gradient": ("gradient", "fade", "ombre"),
    "split": ("split", "two-tone", "half-and-half"),
    "stripes": ("stripes", "striped", "stripy"),
    "zigzag": ("zigzag", "zig-zag", "chevron"),
    "checker": ("checker", "checkered", "checkerboard", "chequered"),
    "dots": ("dots", "dotted", "polka dot", "spotted"),
    "grid": ("grid", "lattice", "gridded"),
    "rings": ("rings", "ringed", "concentric", "bullseye"),
    "outline": ("outline", "outlined", "hollow", "line art"),
}

TEMPLATES: tuple[str, ...] = (
    CANONICAL_TEMPLATE,
    "A {style} {object}.",
    "{object} in {style} style",
    "A picture of the {object}, {style} style.",
    "The {object} drawn in {style} style.",
    "{style} style {object} on a pale background",
)


class MiniCanvas(CanvasSpec):
    """The mini-canvas spec plus its renderer and its judge. Build it with ``mini_canvas()``."""

    def render(self, object: str, style: str, seed: int, size: int = 32) -> Image.Image:
        """One deterministic image; names may be any synonym."""
        return world.render(self._as(object, "object"), self._as(style, "style"), seed, size)

    def render_batch(self, items: Iterable[tuple[str, str, int]], size: int = 32) -> np.ndarray:
        """(N, size, size, 3) uint8 images for (object, style, seed) triples."""
        return world.render_batch(((self._as(o, "object"), self._as(s, "style"), seed) for o, s, seed in items), size)

    @staticmethod
    def seed_range(purpose: str) -> range:
        """The seeds reserved for a purpose; see ``eval.canvas.world`` for the scheme."""
        return world.seed_range(purpose)

    def judge(self, path: str | Path | None = None) -> CanvasJudge:
        """The object/style classifier: from ``path``, or the judge shipped with the package."""
        from eval.judges.canvas_judge import CanvasJudge

        if path is None:
            path = _shipped_judge_path()
        return CanvasJudge.load(path, spec=self)


def _shipped_judge_path() -> Path:
    """The judge shipped with the package; ``pipelines`` owns the shipped files and raises a
    clear error (naming `erase mini-canvas train`) while they are not trained yet."""
    return Path(mini_canvas_file("judge.safetensors"))


def mini_canvas() -> MiniCanvas:
    """The mini-canvas world: 10 objects x 10 styles, 32x32 px."""
    return MiniCanvas(name="mini-canvas", objects=world.OBJECTS, styles=world.STYLES,
                      synonyms=SYNONYMS, templates=TEMPLATES)
