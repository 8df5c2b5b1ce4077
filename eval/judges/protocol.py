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
error that names the flag: ``read_state_dict`` is that rule, for judges and metric networks.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from pipelines.errors import EraseError

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


def file_sha256(path: str) -> str:
    """SHA-256 of a file, read in chunks (weights files are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | None, flag: str) -> dict[str, torch.Tensor]:
    """Tensors of a local weights file; a missing file is an error that names ``flag``.

    safetensors files are read as they are; ``.pth``/``.pt``/``.ckpt`` files with
    ``torch.load(weights_only=True)`` (no code runs), unwrapping ``{"model_state_dict": ...}`` or
    ``{"state_dict": ...}`` layouts.
    """
    if not path or not os.path.isfile(path):
        raise EraseError(f"weights file {path!r} not found; pass an existing local file with {flag} "
                         "(nothing is downloaded)")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            tensors: Any = load_file(path)
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors and torch raise many types for damaged or unsafe files
        raise EraseError(f"could not read {path} given with {flag} ({str(error).splitlines()[0][:200]}); pass a "
                         "safetensors file or a torch file of plain tensors") from None
    for key in ("model_state_dict", "state_dict"):
        if isinstance(tensors, dict) and isinstance(tensors.get(key), dict):
            tensors = tensors[key]
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise EraseError(f"{path} given with {flag} does not hold a state dict of tensors")
    return tensors
