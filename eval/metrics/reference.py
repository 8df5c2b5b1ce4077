"""FID reference sets: what the generated images are compared with.

* mini-canvas: fresh renders of every (object, style) pair except the erased target, from the
  ``diffusion-heldout`` seed block (no model trained on them), ``per_pair`` seeds per pair.
  Renders are the world's "real images", as UnlearnCanvas's dataset is for its model.
* real models: the images in a local folder (``--fid-reference DIR``), e.g. the UnlearnCanvas
  dataset ``DIR/{style}/{object}/{n}.jpg``. Files under a folder that names the target are left
  out, as UnlearnCanvas's ``fid.py`` leaves the forgotten theme out of its real set. Images are
  resized to the generated resolution (it resizes to 512).

Both yield (B, S, S, 3) uint8 batches of this process's share (``sharding.my_share``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
from PIL import Image

from eval.canvas.spec import CanvasSpec
from pipelines.errors import EraseError
from pipelines.sharding import my_share

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def render_items(world: CanvasSpec, target: str, per_pair: int) -> list[tuple[str, str, int]]:
    """(object, style, seed) of every reference render: all pairs without the target."""
    first = world.seed_range("diffusion-heldout").start  # type: ignore[attr-defined]
    return [(o, s, first + k) for o in world.objects for s in world.styles if target not in (o, s)
            for k in range(per_pair)]


def render_batches(world: CanvasSpec, items: list[tuple[str, str, int]], size: int,
                   batch_size: int = 500) -> Iterator[np.ndarray]:
    """This process's share of the renders, ``size`` x ``size`` pixels."""
    share = my_share(items)
    for start in range(0, len(share), batch_size):
        yield world.render_batch(share[start:start + batch_size], size=size)  # type: ignore[attr-defined]


def folder_images(folder: str | None, spec: CanvasSpec | None, target: str | None, flag: str = "--fid-reference") -> list[str]:
    """Image files under ``folder`` (sorted), without those in a sub-folder naming ``target``."""
    if not folder or not os.path.isdir(folder):
        raise EraseError(f"FID reference folder {folder!r} not found; pass a folder of real images with {flag}")
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        parts = os.path.relpath(root, folder).split(os.sep)
        if target is not None and spec is not None and any(_names(spec, part, target) for part in parts):
            continue
        paths += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_SUFFIXES)]
    if len(paths) < 2:
        raise EraseError(f"{folder} (given with {flag}) holds {len(paths)} usable images; FID needs at least 2")
    return paths


def _names(spec: CanvasSpec, folder_name: str, target: str) -> bool:
    try:
        return spec.canonical(folder_name) == target
    except EraseError:
        return False


def file_batches(paths: list[str], size: int, batch_size: int = 64) -> Iterator[np.ndarray]:
    """This process's share of the image files, RGB, resized to ``size`` x ``size``."""
    share = my_share(paths)
    for start in range(0, len(share), batch_size):
        arrays = []
        for path in share[start:start + batch_size]:
            with Image.open(path) as image:
                image = image.convert("RGB")
                if image.size != (size, size):
                    image = image.resize((size, size), Image.Resampling.BICUBIC)
                arrays.append(np.asarray(image))
        yield np.stack(arrays)
