"""A world's two axes (objects and styles) as the judges and answer sets name them.

Lives with the world, not with the metrics, because answer sets (used by attacks as well as by
``erase eval``) need it, and attacks may import the world but not the eval runners (contracts.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["object", "style"]


@dataclass(frozen=True)
class Axes:
    """The class names of a world and which styles are the photo domain."""

    objects: tuple[str, ...]
    styles: tuple[str, ...]
    photo_styles: tuple[str, ...] = ()

    def names(self, kind: Kind) -> tuple[str, ...]:
        return self.objects if kind == "object" else self.styles

    def averaged(self, kind: Kind) -> np.ndarray:
        """(n_classes,) bool: which classes of an axis may enter an average."""
        names = self.names(kind)
        excluded = set(self.photo_styles) if kind == "style" else set()
        return np.array([name not in excluded for name in names])
