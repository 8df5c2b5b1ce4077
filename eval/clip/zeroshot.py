"""Zero-shot classification with a CLIP on mini-canvas renders: how we know the mini CLIP reads the world.

An image is classified by the class whose text embedding is nearest (cosine). Two ways of
making one text embedding per class are measured:

- single prompt (the headline numbers): "A {object} image." per object and
  "An image in {style} style." per style, canonical names, i.e. the canonical caption
  "A {object} image in {style} style." cut in two;
- ensemble: for each object, the mean embedding of the canonical captions of that object in
  every style (and likewise per style), as in CLIP's prompt ensembling.

Pair accuracy is the 100-way choice among every canonical caption ``spec.prompt(object, style)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from eval.canvas.mini import MiniCanvas
from eval.canvas.spec import CanvasSpec
from eval.clip.captions import OBJECT_PROMPT, STYLE_PROMPT
from eval.clip.mini import normalise
from eval.judges.augment import vae_like


def render_labelled(world: MiniCanvas, seeds: range, size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image per seed, cycling through the (object, style) pairs, so image i shows pair i % pairs.

    Returns images (N, S, S, 3) uint8, object indices (N,) and style indices (N,).
    """
    n_styles = len(world.styles)
    pairs = np.arange(len(seeds)) % (len(world.objects) * n_styles)  # (N,)
    objects, styles = pairs // n_styles, pairs % n_styles
    images = world.render_batch(
        [(world.objects[o], world.styles[s], seed) for o, s, seed in zip(objects, styles, seeds)], size=size)
    return images, objects, styles


@torch.inference_mode()
def encode_images(model: open_clip.CLIP, images: np.ndarray, batch_size: int = 500) -> torch.Tensor:
    """(N, S, S, 3) uint8 images -> (N, E) unit image embeddings, on the CPU."""
    device = next(model.parameters()).device
    features = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start:start + batch_size]).to(device)  # (B, S, S, 3) uint8
        x = normalise(batch.permute(0, 3, 1, 2).float() / 255, model)  # (B, 3, S, S)
        features.append(model.encode_image(x, normalize=True).float().cpu())
    return torch.cat(features)


@torch.inference_mode()
def encode_texts(model: open_clip.CLIP, tokenizer: Any, texts: list[str]) -> torch.Tensor:
    """(T,) prompts -> (T, E) unit text embeddings, on the CPU."""
    device = next(model.parameters()).device
    return model.encode_text(tokenizer(texts).to(device), normalize=True).float().cpu()


def class_embeddings(model: open_clip.CLIP, tokenizer: Any, spec: CanvasSpec) -> dict[str, torch.Tensor]:
    """Unit text embeddings per class: "object", "style" (single prompt), "object_ensemble",
    "style_ensemble" (mean over the other concept) and "pair" (every canonical caption, object-major)."""
    single_objects = encode_texts(model, tokenizer, [OBJECT_PROMPT.format(object=o) for o in spec.objects])
    single_styles = encode_texts(model, tokenizer, [STYLE_PROMPT.format(style=s) for s in spec.styles])
    pairs = encode_texts(model, tokenizer, [spec.prompt(o, s) for o in spec.objects for s in spec.styles])
    grid = pairs.reshape(len(spec.objects), len(spec.styles), -1)  # (O, S, E)
    return {
        "object": single_objects,  # (O, E)
        "style": single_styles,  # (S, E)
        "object_ensemble": F.normalize(grid.mean(dim=1), dim=-1),  # (O, E)
        "style_ensemble": F.normalize(grid.mean(dim=0), dim=-1),  # (S, E)
        "pair": pairs,  # (O * S, E)
    }


def _percent(correct: torch.Tensor) -> float:
    return round(100 * correct.float().mean().item(), 2)


def zero_shot_accuracy(model: open_clip.CLIP, tokenizer: Any, spec: CanvasSpec, images: np.ndarray,
                       objects: np.ndarray, styles: np.ndarray) -> dict[str, Any]:
    """Zero-shot accuracies (percent) on labelled images (see the module docstring).

    Keys: object_accuracy, style_accuracy (single prompt), object_accuracy_ensemble,
    style_accuracy_ensemble, pair_accuracy, per_class (single prompt), and the same accuracies
    with a ``soft_`` prefix on VAE-like softened copies of the images (a proxy for generated ones).
    """
    classes = class_embeddings(model, tokenizer, spec)
    object_truth, style_truth = torch.from_numpy(objects), torch.from_numpy(styles)
    pair_truth = object_truth * len(spec.styles) + style_truth  # (N,)
    soft = vae_like(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)  # (N, 3, S, S)
    soft_images = (soft * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()  # (N, S, S, 3)
    result: dict[str, Any] = {}
    for prefix, batch in (("", images), ("soft_", soft_images)):
        features = encode_images(model, batch)  # (N, E)
        object_guess = (features @ classes["object"].T).argmax(dim=1)  # (N,)
        style_guess = (features @ classes["style"].T).argmax(dim=1)  # (N,)
        result[f"{prefix}object_accuracy"] = _percent(object_guess == object_truth)
        result[f"{prefix}style_accuracy"] = _percent(style_guess == style_truth)
        result[f"{prefix}object_accuracy_ensemble"] = _percent(
            (features @ classes["object_ensemble"].T).argmax(dim=1) == object_truth)
        result[f"{prefix}style_accuracy_ensemble"] = _percent(
            (features @ classes["style_ensemble"].T).argmax(dim=1) == style_truth)
        result[f"{prefix}pair_accuracy"] = _percent((features @ classes["pair"].T).argmax(dim=1) == pair_truth)
        if not prefix:
            result["per_class"] = {
                "object": {name: _percent(object_guess[object_truth == i] == i) for i, name in enumerate(spec.objects)},
                "style": {name: _percent(style_guess[style_truth == i] == i) for i, name in enumerate(spec.styles)},
            }
    return result
