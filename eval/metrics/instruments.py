"""Build the judge, FID and CLIP scorer of an evaluation from local paths, with mini-canvas defaults.

On mini-canvas every instrument defaults to the files shipped in ``pipelines/mini_canvas/``
(judge, mini CLIP), and FID uses the judge's features against fresh renders. On real models
every weight file comes from a flag, and a missing one is an error that names the flag.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from eval.canvas.spec import CanvasSpec
from pipelines.errors import EraseError, ModelLoadError
from pipelines.shipped import mini_canvas_file

from .clip import ClipScorer
from .fid import Fid, JudgeFeatures, StandardInception, UnlearnCanvasInception
from .reference import file_batches, folder_images, render_batches, render_items

#: Renders per (object, style) pair in the mini-canvas FID reference set (900+ images, ~3 s).
FID_RENDERS_PER_PAIR = 10


def _shipped(name: str, flag: str) -> str:
    try:
        return mini_canvas_file(name)
    except ModelLoadError as error:
        raise EraseError(f"{error}; or pass {flag}") from None


def mini_canvas_judge(world: CanvasSpec, path: str | None) -> tuple[Any, dict[str, Any]]:
    """The mini-canvas judge (``path`` or the shipped one) and what to record about it."""
    from eval.judges.canvas_judge import CanvasJudge
    from pipelines.fingerprint import file_sha256

    path = path or _shipped("judge.safetensors", "--judge FILE")
    judge = CanvasJudge.load(path, spec=world)
    report = judge.report or {}
    info = {"name": "mini-canvas judge", "path": os.path.abspath(path), "sha256": file_sha256(path),
            "heldout_accuracy": {"object": report.get("object_accuracy"), "style": report.get("style_accuracy")}}
    return judge, info


def clip_scorer(folder: str | None, mini_canvas: bool, device: str) -> ClipScorer:
    """The CLIP scorer: ``folder``, or on mini-canvas the shipped mini CLIP."""
    if folder is None:
        if not mini_canvas:
            raise EraseError("CLIP score on a real model needs a local CLIP: pass --clip-model DIR (an open_clip or "
                             "transformers CLIP folder), or leave clip out of --metrics")
        folder = _shipped("clip", "--clip-model DIR")
    return ClipScorer.load(folder, device=device)


def fid_for(*, world: CanvasSpec | None, judge: Any, target: str | None, variant: str, inception: str | None,
            reference: str | None) -> tuple[Fid, Callable[[int], Iterator[np.ndarray]]]:
    """FID and its reference batches at a given image size (the generated images').

    With a renderable world (mini-canvas) and no ``reference`` folder: the judge's features
    against fresh renders. Otherwise the ``variant`` Inception from ``inception`` against the
    images of the ``reference`` folder.
    """
    if reference is None and world is not None and hasattr(world, "render_batch"):
        items = render_items(world, target or "", FID_RENDERS_PER_PAIR)
        return Fid(JudgeFeatures(judge)), lambda size: render_batches(world, items, size)
    if reference is None:
        raise EraseError("FID on this benchmark needs real images: pass --fid-reference DIR (e.g. the UnlearnCanvas "
                         "dataset folder), or leave fid out of --metrics")
    paths = folder_images(reference, world, target)
    network = UnlearnCanvasInception(inception) if variant == "unlearncanvas" else StandardInception(inception)  # type: ignore[arg-type]
    return Fid(network), lambda size: file_batches(paths, size)
