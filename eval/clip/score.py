"""CLIP score for any open_clip model, computed by torchmetrics' own ``CLIPScore``.

torchmetrics' ``CLIPScore`` accepts, instead of a Hugging Face model name, a callable returning
``(model, processor)`` "in the shape of" ``transformers.CLIPModel`` and ``CLIPProcessor``. Two
thin adapters give an open_clip model that shape, so the number is torchmetrics' to the last
operation (the mini-canvas CLIP and a real CLIP loaded from local files take the same path):

- ``_OpenClipAsHF`` offers ``get_image_features`` / ``get_text_features`` (open_clip's
  ``encode_image`` / ``encode_text``, returning plain tensors) and the ``config.text_config.
  max_position_embeddings`` that torchmetrics reads to truncate captions;
- ``_OpenClipProcessor`` turns the (3, H, W) uint8 tensors torchmetrics passes back into PIL
  images for the model's own ``preprocess``, and tokenizes captions with its own tokenizer.

What torchmetrics computes (1.9, read from its code): per pair ``100 * cos(E_I, E_T)``, averaged,
and *the average* clamped at 0: ``max(mean(100 cos), 0)``. (Its docstring writes the clamp per
pair; the code clamps the mean. We report what the code does, so that our numbers equal
torchmetrics' on the same backbone.) ``raw_cosine=True`` gives the AdvUnlearn / UnlearnDiffAtk
number: the mean raw cosine, no x100, no clamp, read from the same metric state.

A score is only comparable with scores of the same backbone: record it (``BACKBONE`` for the
mini-canvas CLIP).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchmetrics.multimodal import CLIPScore
from torchvision.transforms.functional import to_pil_image

from pipelines import sharding
from pipelines.errors import EraseError


class _OpenClipAsHF(nn.Module):
    """An open_clip model seen through the two methods torchmetrics calls on a ``CLIPModel``."""

    def __init__(self, model: nn.Module, context_length: int) -> None:
        super().__init__()
        self.model = model
        self.config = SimpleNamespace(text_config=SimpleNamespace(max_position_embeddings=context_length))

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) preprocessed images -> (N, E) image embeddings (not normalised)."""
        dtype = next(self.model.parameters()).dtype  # preprocess gives fp32; a model may run in half precision
        return self.model.encode_image(pixel_values.to(dtype))

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(N, L) token ids -> (N, E) text embeddings; open_clip's text tower needs no attention mask."""
        return self.model.encode_text(input_ids)


class _OpenClipProcessor:
    """An open_clip ``preprocess`` + tokenizer behind the ``CLIPProcessor`` call torchmetrics makes."""

    def __init__(self, preprocess: Callable[[Image.Image], torch.Tensor], tokenizer: Any) -> None:
        self.preprocess = preprocess
        self.tokenizer = tokenizer

    def __call__(self, text: list[str] | None = None, images: list[torch.Tensor] | None = None,
                 **_: Any) -> dict[str, torch.Tensor]:
        """``images``: (3, H, W) uint8 tensors; ``text``: captions. Extra HF arguments are ignored."""
        if images is not None:
            return {"pixel_values": torch.stack([self.preprocess(to_pil_image(image)) for image in images])}
        input_ids = self.tokenizer(text)  # (N, L), zero-padded
        return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long()}


def _as_uint8_tensor(image: Image.Image, device: torch.device) -> torch.Tensor:
    """A PIL image as the (3, H, W) uint8 tensor torchmetrics takes (lossless back to PIL)."""
    return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).to(device)


def clip_score(images: Sequence[Image.Image], prompts: Sequence[str], model: nn.Module,
               preprocess: Callable[[Image.Image], torch.Tensor], tokenizer: Any, *, raw_cosine: bool = False,
               batch_size: int = 64) -> float:
    """CLIP score of ``images[i]`` with ``prompts[i]`` under an open_clip ``model``.

    Default: torchmetrics' ``CLIPScore``, ``max(mean_i 100 * cos(E_I, E_T), 0)``, 0-100.
    ``raw_cosine=True``: ``mean_i cos(E_I, E_T)``, -1..1 (the AdvUnlearn convention).
    The model is used as given (its device, dtype and train/eval mode are left alone).
    """
    if len(images) != len(prompts) or not images:
        raise EraseError(f"clip_score needs one prompt per image and at least one pair "
                         f"(got {len(images)} images and {len(prompts)} prompts).")
    device = next(model.parameters()).device
    context_length = tokenizer(["probe"]).shape[-1]
    adapter = _OpenClipAsHF(model, context_length)
    metric = CLIPScore(model_name_or_path=lambda: (adapter, _OpenClipProcessor(preprocess, tokenizer)),
                       sync_on_compute=sharding.metrics_sync()).to(device)  # alone(): this cell only
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = [_as_uint8_tensor(image, device) for image in images[start:start + batch_size]]
            metric.update(batch, list(prompts[start:start + batch_size]))
        if raw_cosine:
            return (metric.score / metric.n_samples / 100).item()
        return metric.compute().item()
