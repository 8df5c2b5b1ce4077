"""What methods train on: forget and retain image sets, from the world, a folder, or the model.

* **mini-canvas**: renders of the world are its "real images" (as UnlearnCanvas's dataset is for
  its model). The forget set is every render that shows the target (all objects in a target
  style, or a target object in all styles); the retain set is renders of the other pairs, whose
  prompts never mention the target under any of its names.
* **real models**: a folder of images with captions (``--images DIR``), or prompts that the base
  model turns into images (cached by model fingerprint, prompts, seeds and sampler, so a second
  run pays nothing).

Every set records where it came from (``source``), which goes into the artifact's record.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from pipelines.backbone import Backbone
from pipelines.cache import generate_cached, image_cache
from pipelines.errors import ConfigError, EraseError
from pipelines.generation import SamplerSettings

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class ImageSet:
    images: np.ndarray  # (N, H, W, 3) uint8
    prompts: list[str]
    source: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    def tensor(self) -> torch.Tensor:
        """``(N, 3, H, W)`` float in [0, 1]."""
        return torch.from_numpy(self.images).permute(0, 3, 1, 2).float() / 255.0


def canvas_sets(spec, concept: str, per_pair: int, seed_purpose: str = "diffusion-train") -> tuple[ImageSet, ImageSet]:
    """``(forget, retain)`` renders for a mini-canvas concept, ``per_pair`` images per pair.

    Seeds are the first ``per_pair`` of the purpose's block, the same for every pair (so colour
    and placement are balanced across classes); prompts are the canonical captions.
    """
    target = spec.canonical(concept)
    first = spec.seed_range(seed_purpose).start
    pairs = [(o, s) for o in spec.objects for s in spec.styles]
    forget_pairs = [(o, s) for o, s in pairs if target in (o, s)]
    retain_pairs = [(o, s) for o, s in pairs if target not in (o, s)]

    def render(chosen: list[tuple[str, str]]) -> ImageSet:
        items = [(o, s, first + k) for o, s in chosen for k in range(per_pair)]
        prompts = [spec.prompt(o, s) for o, s, _ in items]
        source = {"kind": "renders", "world": spec.name, "seeds": [first, first + per_pair], "pairs": len(chosen)}
        return ImageSet(spec.render_batch(items), prompts, source)

    forget, retain = render(forget_pairs), render(retain_pairs)
    leaked = [p for p in retain.prompts if spec.mentions(p, target)]
    if leaked:  # the world's names are disjoint, so this would be a bug in the spec
        raise EraseError(f"retain prompts mention {target!r}: {leaked[:3]}; fix the world's synonyms")
    return forget, retain


def read_prompts(path: str, flag: str) -> list[str]:
    """The non-blank lines of a prompt file given by ``flag``, stripped.

    Shared by every method that takes ``--*-prompts FILE`` (SalUn, AdvUnlearn, SFD) so that a
    missing, unreadable or empty file gets the same error naming the flag and the fix.
    """
    try:
        with open(path, encoding="utf-8") as f:
            prompts = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{flag} {path!r} is not a readable text file ({e}); write one prompt per line") from None
    if not prompts:
        raise ConfigError(f"{flag} {path!r} has no prompts; write one prompt per line")
    return prompts


def next_class(order: tuple[str, ...], name: str, targets: set[str]) -> str:
    """``name`` itself if it is not a target, else the next class in ``order`` that is not.

    The mini-canvas relabelling of SalUn's and SFD's "next class" pseudo-label: a forget caption
    keeps its structure and names a neighbouring concept of the same axis, never another target.
    """
    if name not in targets:
        return name
    start = order.index(name)
    for step in range(1, len(order)):
        candidate = order[(start + step) % len(order)]
        if candidate not in targets:
            return candidate
    raise ConfigError("every class of an axis is a target, so there is no next class; use --pseudo retain or a prompt")


def relabelled_caption(spec: Any, obj: str, style: str, targets: set[str], fixed: Sequence[str] = ()) -> str:
    """The world's caption of ``(obj, style)`` with its targets swapped for concepts to keep.

    Each concept of ``fixed`` (canonical, not a target, at most one per axis) takes its axis's
    place; an axis without one takes :func:`next_class`. This is the pseudo caption of SalUn's
    relabelling and of SFD's override on a world.
    """
    new_object = next((c for c in fixed if c in spec.objects), None) or next_class(spec.objects, obj, targets)
    new_style = next((c for c in fixed if c in spec.styles), None) or next_class(spec.styles, style, targets)
    return spec.prompt(new_object, new_style)


@torch.no_grad()
def farthest_classes(spec: Any, backbone: Backbone, targets: set[str]) -> tuple[str, ...]:
    """Per axis holding a target, the class whose captions the text encoder puts farthest from the targets'.

    Distance: the L2 norm of the difference of the two conditionings of the same caption with one
    concept swapped, averaged over the other axis's classes; a candidate's score is its distance to
    the nearest target (ties go to the first in the world's order). Why: SalUn relabels the target's
    images to a pseudo class through the weights both share, and its next class for circle, square,
    is circle's nearest object: erasing circle took square with it (``SalUnConfig``'s docstring).
    """
    chosen = []
    for axis, others in ((spec.objects, spec.styles), (spec.styles, spec.objects)):
        if not any(t in targets for t in axis):
            continue
        captions = {c: [spec.prompt(c, o) if axis is spec.objects else spec.prompt(o, c) for o in others] for c in axis}
        conds = {c: backbone.encode(p).float().flatten(1) for c, p in captions.items()}  # (len(others), L * D)
        scores = {c: min((conds[c] - conds[t]).norm(dim=1).mean().item() for t in axis if t in targets)
                  for c in axis if c not in targets}
        if not scores:
            raise ConfigError("every class of an axis is a target, so there is none to relabel to; use --pseudo retain or a prompt")
        chosen.append(max(scores, key=scores.get))
    return tuple(chosen)


def image_files(folder: str, flag: str = "--images") -> list[str]:
    """The image files of ``folder``, sorted; one clear error if it is no folder or holds none."""
    if not os.path.isdir(folder):
        raise EraseError(f"{flag} {folder!r} is not a folder; pass an existing folder of images")
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise EraseError(f"{flag} {folder!r} has no images ({', '.join(IMAGE_SUFFIXES)}); add a few images of the concept")
    return files


def read_image(folder: str, name: str, size: int) -> np.ndarray:
    """``(size, size, 3)`` uint8: one image of ``folder``, resized (bicubic, no crop)."""
    try:
        return np.asarray(Image.open(os.path.join(folder, name)).convert("RGB").resize((size, size), Image.BICUBIC))
    except OSError as e:
        raise EraseError(f"cannot read image {name} in {folder} ({e}); remove or replace it") from None


def folder_set(folder: str, size: int, flag: str = "--images") -> ImageSet:
    """Images of a folder with their captions, resized to ``size``.

    Captions come from ``captions.csv`` (columns ``file,caption``) or, per image, a ``.txt`` file
    of the same name; an image without a caption is an error naming it.
    """
    files = image_files(folder, flag)
    captions: dict[str, str] = {}
    table = os.path.join(folder, "captions.csv")
    if os.path.exists(table):
        try:
            with open(table, newline="", encoding="utf-8") as f:
                captions = {row["file"]: row["caption"] for row in csv.DictReader(f)}
        except (KeyError, csv.Error, UnicodeDecodeError) as e:
            raise EraseError(f"{table} must be a CSV with columns file,caption ({e})") from None
    images, prompts = [], []
    for name in files:
        caption = captions.get(name)
        sidecar = os.path.join(folder, os.path.splitext(name)[0] + ".txt")
        if caption is None and os.path.exists(sidecar):
            with open(sidecar, encoding="utf-8") as f:
                caption = f.read().strip()
        if not caption:
            raise EraseError(f"image {name} in {folder} has no caption: add {os.path.splitext(name)[0]}.txt or a captions.csv row")
        images.append(read_image(folder, name, size))
        prompts.append(caption)
    return ImageSet(np.stack(images), prompts, {"kind": "folder", "path": os.path.abspath(folder), "files": files})


def generated_set(backbone: Backbone, prompts: Sequence[str], seeds: Sequence[int], sampler: SamplerSettings,
                  cache_root: str | None) -> ImageSet:
    """The model's own images of ``prompts`` (one seed each), through the on-disk cache."""
    items = [(p, int(s), float(sampler.guidance)) for p, s in zip(prompts, seeds)]
    cache = image_cache(cache_root, backbone, sampler) if cache_root else None
    images = generate_cached(backbone, items, sampler, cache)
    return ImageSet(images, list(prompts), {"kind": "generated", "sampler": sampler.to_dict(), "seeds": [int(s) for s in seeds]})


@torch.no_grad()
def encode_latents(backbone: Backbone, images: ImageSet, batch_size: int = 64) -> torch.Tensor:
    """VAE posterior means times the scaling factor, ``(N, C, h, w)``, on the model's device."""
    pixels = images.tensor()
    if pixels.shape[-1] != backbone.resolution:
        pixels = torch.nn.functional.interpolate(pixels, size=backbone.resolution, mode="bicubic", antialias=True).clamp(0, 1)
    return torch.cat([backbone.encode_images(pixels[i : i + batch_size]) for i in range(0, len(pixels), batch_size)])
