"""On-disk cache of generated images: a sweep pays for a base model's images once.

Used by answer sets (``erase eval``), attack targets and methods' generated forget/retain sets.

An image is fully determined by (model weights, sampler settings, image size, prompt, seed,
guidance) (``pipelines.generation``: one generator per seed). The cache keys a folder by the
first four and, inside it, each image by (prompt, seed, guidance)::

    $ERASE_CACHE (default ~/.cache/erase)/answers/<sha256 of model fingerprint + settings>/
        settings.json              what the key was made of, for humans
        <sha256 of its items>.safetensors
                                   one generated batch: tensor "images" (N, H, W, 3) uint8, and
                                   metadata "items" (JSON list of [prompt, seed, guidance])

Per-image keys let a ``--limit`` run, a full run and a sharded run share images. Writes are
atomic (``pipelines.atomic``); nothing is pickled. Processes sharing a cache write disjoint
batches, so they never race on one file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from .atomic import write_text
from .backbone import Backbone
from .fingerprint import module_sha256
from .generation import SamplerSettings, effective_settings, generate
from .weights import save_safetensors

logger = logging.getLogger(__name__)

FORMAT = "erase.answer-cache/1"
Item = tuple[str, int, float]  # (prompt, seed, guidance)


def default_cache_root() -> str:
    """``$ERASE_CACHE``, else ``~/.cache/erase``."""
    return os.environ.get("ERASE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "erase")


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


class ImageCache:
    """The cached images of one model under one set of settings (see the module docstring)."""

    def __init__(self, root: str, model_fingerprint: str, settings: dict[str, Any]) -> None:
        key = {"format": FORMAT, "model": model_fingerprint, "settings": settings}
        self.folder = os.path.join(root, "answers", _digest(key)[:32])
        self.key = key

    def _chunks(self) -> list[str]:
        if not os.path.isdir(self.folder):
            return []
        return sorted(os.path.join(self.folder, n) for n in os.listdir(self.folder)
                      if n.endswith(".safetensors") and not n.startswith("."))

    def lookup(self, items: Sequence[Item]) -> dict[int, tuple[str, int]]:
        """``{position in items: (chunk file, row)}`` for the items already cached."""
        wanted = {_item_key(item): i for i, item in enumerate(items)}
        found: dict[int, tuple[str, int]] = {}
        for path in self._chunks():
            try:
                with safe_open(path, framework="pt") as f:
                    stored = json.loads((f.metadata() or {}).get("items", "[]"))
            except Exception:  # a damaged chunk is a miss, regenerated and rewritten
                logger.warning("ignoring unreadable cache file %s", path)
                continue
            for row, item in enumerate(stored):
                position = wanted.get(_item_key(tuple(item)))
                if position is not None:
                    found[position] = (path, row)
        return found

    def load(self, found: dict[int, tuple[str, int]]) -> dict[int, np.ndarray]:
        """The images of :meth:`lookup`'s hits, ``{position: (H, W, 3) uint8}``."""
        by_file: dict[str, list[tuple[int, int]]] = {}
        for position, (path, row) in found.items():
            by_file.setdefault(path, []).append((position, row))
        images: dict[int, np.ndarray] = {}
        for path, rows in by_file.items():
            with safe_open(path, framework="pt") as f:
                stored = f.get_tensor("images").numpy()
            images.update({position: stored[row] for position, row in rows})
        return images

    def store(self, items: Sequence[Item], images: np.ndarray) -> None:
        """Add one batch: ``images`` (N, H, W, 3) uint8 for ``items``."""
        if not len(items):
            return
        os.makedirs(self.folder, exist_ok=True)
        settings_path = os.path.join(self.folder, "settings.json")
        if not os.path.exists(settings_path):
            write_text(settings_path, json.dumps(self.key, indent=1) + "\n")
        keys = [[p, int(s), float(g)] for p, s, g in items]
        save_safetensors({"images": torch.from_numpy(np.ascontiguousarray(images))},
                         os.path.join(self.folder, _digest(keys)[:32] + ".safetensors"),
                         metadata={"format": FORMAT, "items": json.dumps(keys)})


def _item_key(item: tuple) -> str:
    prompt, seed, guidance = item
    return json.dumps([prompt, int(seed), float(guidance)])


def model_fingerprint(backbone: Backbone) -> str:
    """SHA-256 of the UNet, text encoder and VAE weights as they are now.

    Computed afresh for each cache, never memoised: weights can be changed in place
    (``ErasureResult.applied``), and a stale key would serve the wrong images.
    """
    return module_sha256({"unet": backbone.unet, "text_encoder": backbone.text_encoder, "vae": backbone.vae})


def image_cache(root: str, backbone: Backbone, sampler: SamplerSettings, fingerprint: str | None = None) -> ImageCache:
    """The cache of one model under one sampler (guidance is per item, so not part of the key).

    The sampler part is what the model is really drawn with: a one-step generator's images are
    keyed by its one step, never under the multi-step settings it ignores. ``fingerprint``: the
    model's :func:`model_fingerprint` when the caller has just computed it (hashing SD's weights
    takes seconds); computed here otherwise.
    """
    import diffusers

    settings = {
        "sampler": {k: v for k, v in effective_settings(backbone, sampler).items() if k != "guidance"},
        "size": backbone.resolution,
        "scheduler": json.loads(json.dumps(dict(backbone.pipe.scheduler.config), default=str)),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__},
    }
    return ImageCache(root, fingerprint or model_fingerprint(backbone), settings)


def generate_cached(backbone: Backbone, items: Sequence[Item], sampler: SamplerSettings,
                    cache: ImageCache | None = None, batch_size: int = 100) -> np.ndarray:
    """Images ``(N, H, W, 3)`` uint8 for ``(prompt, seed, guidance)`` items: cached ones are read,
    the rest generated (grouped by guidance) and stored."""
    found = cache.lookup(items) if cache is not None else {}
    images = cache.load(found) if cache is not None else {}
    missing = [i for i in range(len(items)) if i not in images]
    for g in sorted({items[i][2] for i in missing}):
        group = [i for i in missing if items[i][2] == g]
        for start in range(0, len(group), batch_size):
            chunk = group[start:start + batch_size]
            drawn = generate(backbone, [items[i][0] for i in chunk], [items[i][1] for i in chunk],
                             replace(sampler, guidance=g), batch_size=len(chunk))
            arrays = np.stack([np.asarray(image.convert("RGB")) for image in drawn])  # (b, H, W, 3)
            images.update(zip(chunk, arrays))
            if cache is not None:
                cache.store([items[i] for i in chunk], arrays)
    return np.stack([images[i] for i in range(len(items))]) if items else np.zeros((0, 0, 0, 3), np.uint8)
