"""Which model is attacked, which base gives the targets, and which components the erasure changed.

``--model`` is one of

* an ``erase run`` artifact folder: the base defaults to the one its record names, and the
  changed components are the prefixes of its tensor names (``unet.``, ``text_encoder.``);
* a pipeline folder (or single file, or hub id): ``--base`` is required, and the changed
  components are measured by comparing each component's weights with the base's
  (:func:`changed_components`);
* ``mini-canvas`` (or any model given as its own base): the base model attacked, no component
  changed; every prompt the base draws correctly already succeeds.

The attack always runs the whole attacked pipeline (its UNet *and* its text encoder), so the
component list is a record, never a switch guessed from a file name. Which *model* was
attacked is recorded as ``pipelines.cache.model_fingerprint`` (the digest the image cache
keys on), so a replay can refuse a different one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from pipelines import MINI_CANVAS
from pipelines.artifact import ErasureResult, recorded_base
from pipelines.backbone import Backbone
from pipelines.errors import ConfigError, ModelLoadError


@dataclass(frozen=True)
class Models:
    model: str
    base: str
    kind: str  # "artifact", "pipeline" or "base"
    components: tuple[str, ...] | None  # changed components; None until measured (pipeline)


def resolve(model: str, base: str | None) -> Models:
    """The attacked model, its base and what is known of its changed components (see the docstring)."""
    model = os.path.expanduser(model)
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") != 1
    if model != MINI_CANVAS and not os.path.exists(model) and looks_like_path:
        raise ModelLoadError(f"model path {model!r} does not exist; pass an `erase run` artifact folder, a diffusers "
                             "folder, or 'mini-canvas'")
    if os.path.isfile(os.path.join(model, "erasure.json")):
        result = ErasureResult.load(model)
        base = base or recorded_base(result.record.get("base", {}))
        if not base:
            raise ConfigError(f"the artifact {model} records no base model; pass --base")
        return Models(model, base, "artifact", tuple(sorted(result.components)))
    if base is None and model == MINI_CANVAS:
        base = MINI_CANVAS
    if base is None:
        raise ConfigError(f"{model!r} is a plain pipeline, not an `erase run` artifact, so its base is unknown: pass "
                          "--base (the unerased model its target images come from)")
    if os.path.abspath(os.path.expanduser(base)) == os.path.abspath(model) or base == model:
        return Models(model, base, "base", ())
    return Models(model, base, "pipeline", None)


def changed_components(model: Backbone, base: Backbone) -> list[str]:
    """Components (``unet``, ``text_encoder``, ``vae``) whose weights differ between ``model`` and ``base``.

    A direct tensor comparison (no hashing: it stops at the first differing tensor), for
    models that carry no artifact record of what their erasure changed.
    """
    if model is base:
        return []
    changed = []
    for name in ("unet", "text_encoder", "vae"):
        mine, theirs = getattr(model, name).state_dict(), getattr(base, name).state_dict()
        same = mine.keys() == theirs.keys() and all(
            mine[k].shape == theirs[k].shape and torch.equal(mine[k].cpu(), theirs[k].to(mine[k].dtype).cpu())
            for k in mine)
        if not same:
            changed.append(name)
    return changed
