"""The one protocol every judge follows (``shared/docs/contracts.md``, "Judges").

A judge looks at images and answers two questions:

* ``predict(images)``: its raw reading. The canvas judges (mini-canvas, UnlearnCanvas) return
  ``(object_index, style_index)`` arrays; NudeNet returns its detections.
* ``verdict(images, concept)``: "does each image show the concept?", a bool array. This is what
  the attack, the eval runners and the few-shot stopping rule use, so any classifier plugs in by
  implementing it.

``AxisJudge`` is the narrower shape UA / IRA / CRA need: a judge of objects *and* styles whose
class names are the world's, in class-index order. ``record()`` is what the eval record writes
down about the judge (name, weights hash, thresholds), so a number can be traced to its judge.

Judge weights for real models come from local paths given by flags, and a missing file is an
error that names the flag: ``pipelines.weights.read_state_dict`` is that rule, for judges and metric networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image


Images = Sequence[Image.Image] | np.ndarray  # PIL images, or (N, H, W, 3) uint8 RGB


@runtime_checkable
class Judge(Protocol):
    """Anything that can say whether images show a concept."""

    def predict(self, images: Images) -> Any: ...

    def verdict(self, images: Images, concept: str) -> np.ndarray: ...


@runtime_checkable
class AxisJudge(Judge, Protocol):
    """A judge of an objects x styles world: ``predict`` returns (object_idx (N,), style_idx (N,))."""

    objects: tuple[str, ...]
    styles: tuple[str, ...]

    def predict(self, images: Images) -> tuple[np.ndarray, np.ndarray]: ...


def judge_record(judge: Judge) -> dict[str, Any]:
    """What to record about a judge: its own ``record()`` if it has one, else its class name."""
    record = getattr(judge, "record", None)
    return record() if callable(record) else {"name": type(judge).__name__}
