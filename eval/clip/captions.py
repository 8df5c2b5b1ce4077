"""Training captions for the mini-canvas CLIP, and which captions describe which images.

Most captions name both concepts (``spec.caption``: every template, every synonym). Some name
only the object ("a star") or only the style ("striped style"), so that a prompt about one
concept alone means something to the model: zero-shot classification of objects alone and of
styles alone works, and so does the CLIP score of a prompt such as "A star image."

A caption that names only "star" describes every star in the batch, and two items with the same
(object, style) have equivalent captions. ``describes`` says exactly which caption fits which
image, so the contrastive loss can leave those false negatives out.
"""

from __future__ import annotations

import numpy as np
import torch

from eval.canvas.spec import CanvasSpec

# The zero-shot prompts: the canonical caption "A {object} image in {style} style." cut in two.
OBJECT_PROMPT = "A {object} image."
STYLE_PROMPT = "An image in {style} style."

OBJECT_TEMPLATES: tuple[str, ...] = (OBJECT_PROMPT, "a {object}", "A picture of the {object}.", "The {object} drawn.")
STYLE_TEMPLATES: tuple[str, ...] = (STYLE_PROMPT, "{style} style", "Something drawn in {style} style.",
                                    "A {style} pattern.")


def sample_captions(spec: CanvasSpec, objects: np.ndarray, styles: np.ndarray, partial_rate: float,
                    rng: np.random.Generator) -> tuple[list[str], np.ndarray, np.ndarray]:
    """One random caption per item, given its object and style indices (each (B,)).

    With probability ``partial_rate`` a caption names one concept only (object or style, even
    odds). Returns the captions and, per caption, whether it names the object (B,) and the
    style (B,).
    """
    captions, names_object, names_style = [], [], []
    for o, s in zip(objects, styles):
        object_name, style_name = spec.objects[o], spec.styles[s]
        kind = "both" if rng.random() >= partial_rate else "object" if rng.random() < 0.5 else "style"
        if kind == "both":
            captions.append(spec.caption(object_name, style_name, rng))
        elif kind == "object":
            captions.append(_fill(OBJECT_TEMPLATES, "object", spec.names(object_name), rng))
        else:
            captions.append(_fill(STYLE_TEMPLATES, "style", spec.names(style_name), rng))
        names_object.append(kind != "style")
        names_style.append(kind != "object")
    return captions, np.array(names_object), np.array(names_style)


def _fill(templates: tuple[str, ...], placeholder: str, names: tuple[str, ...], rng: np.random.Generator) -> str:
    """A random template with a random one of ``names`` in its ``{placeholder}``."""
    template = templates[rng.integers(len(templates))]
    return template.format(**{placeholder: names[rng.integers(len(names))]})


def describes(objects: torch.Tensor, styles: torch.Tensor, names_object: torch.Tensor,
              names_style: torch.Tensor) -> torch.Tensor:
    """(B, B) bool: does caption j (of item j) describe image i?

    Caption j describes image i when every concept it names is the one image i shows:
    (j names no object or o_j == o_i) and (j names no style or s_j == s_i). The diagonal is True.
    """
    same_object = objects[:, None] == objects[None, :]  # (B, B) [i, j]: o_i == o_j
    same_style = styles[:, None] == styles[None, :]  # (B, B)
    return (same_object | ~names_object[None, :]) & (same_style | ~names_style[None, :])  # (B, B)
