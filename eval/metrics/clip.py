"""CLIP score on torchmetrics' scale, streamed over batches, with the backbone named.

The score is torchmetrics' ``CLIPScore``: ``max(mean_i 100 * cos(E_I, E_T), 0)`` (it clamps the
mean; see ``eval.clip.score``). Answer sets are scored batch by batch (real-model answer sets
do not fit in memory), so each batch contributes its mean raw cosine weighted by its size, and
the clamp is applied once at the end: the same number as one torchmetrics call over all pairs.

Backbones, chosen by what the folder holds:

* the mini-canvas CLIP (default on mini-canvas) and any open_clip folder
  (``open_clip_config.json``): through ``eval.clip.clip_score``;
* a transformers ``CLIPModel`` folder (``config.json``, e.g. a local copy of
  ``openai/clip-vit-large-patch14``): through torchmetrics ``CLIPScore`` with a small adapter,
  because transformers 5 returns a ModelOutput where torchmetrics expects a tensor.

A score is only comparable with scores on the same backbone: ``describe()`` names it, and the
report prints it next to every score.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchmetrics.multimodal import CLIPScore

from pipelines import sharding
from pipelines.fingerprint import file_sha256
from pipelines.errors import EraseError


class _HFClipFeatures(nn.Module):
    """A transformers ``CLIPModel`` whose feature methods return tensors (transformers 5 compatible)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    @staticmethod
    def _tensor(out: Any) -> torch.Tensor:
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def get_image_features(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self._tensor(self.model.get_image_features(*args, **kwargs))

    def get_text_features(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self._tensor(self.model.get_text_features(*args, **kwargs))


class ClipScorer:
    """Mean CLIP score of (image, prompt) pairs fed in batches; ``compute()`` gives the 0-100 score."""

    def __init__(self, folder: str, backbone: str, *, device: str | torch.device = "cpu") -> None:
        self.folder = folder
        self.backbone = backbone
        self.device = device
        self._cosine_sum = 0.0
        self._pairs = 0
        if os.path.isfile(os.path.join(folder, "open_clip_config.json")):
            import open_clip

            source = f"local-dir:{os.path.abspath(folder)}"
            with _root_logger_at_warning():  # open_clip narrates every loading step on the root logger
                model, _, self._preprocess = open_clip.create_model_and_transforms(source, device=device)
                self._open_clip = (model.float().eval(), open_clip.get_tokenizer(source))
            self._weights = os.path.join(folder, "open_clip_model.safetensors")
        else:
            from transformers import CLIPModel, CLIPProcessor

            model = CLIPModel.from_pretrained(folder, local_files_only=True).to(device).eval()
            processor = CLIPProcessor.from_pretrained(folder, local_files_only=True)
            adapter = _HFClipFeatures(model)
            self._metric = CLIPScore(model_name_or_path=lambda: (adapter, processor),
                                     sync_on_compute=sharding.metrics_sync()).to(device)  # alone(): this cell only
            self._weights = os.path.join(folder, "model.safetensors")

    @classmethod
    def load(cls, folder: str | None, flag: str = "--clip-model", *, backbone: str | None = None,
             device: str | torch.device = "cpu") -> "ClipScorer":
        """A scorer from a local folder (open_clip or transformers layout); errors name ``flag``."""
        if not folder or not os.path.isdir(folder):
            raise EraseError(f"CLIP folder {folder!r} not found; pass a local open_clip folder (open_clip_config.json) "
                             f"or transformers CLIPModel folder (config.json) with {flag}")
        layouts = ("open_clip_config.json", "config.json")
        if not any(os.path.isfile(os.path.join(folder, name)) for name in layouts):
            raise EraseError(f"{folder} (given with {flag}) has neither open_clip_config.json nor config.json; "
                             "pass an open_clip or transformers CLIP folder")
        try:
            return cls(folder, backbone or _backbone_name(folder), device=device)
        except EraseError:
            raise
        except Exception as error:  # open_clip / transformers raise many types for a broken folder
            raise EraseError(f"could not load the CLIP model in {folder} given with {flag} "
                             f"({str(error).splitlines()[0][:200]}); check the folder is complete") from None

    @torch.no_grad()
    def update(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> None:
        """Add pairs ``(images[i], prompts[i])``."""
        if not len(images):
            return
        if hasattr(self, "_open_clip"):
            from eval.clip import clip_score

            model, tokenizer = self._open_clip
            cosine = clip_score(list(images), list(prompts), model, self._preprocess, tokenizer, raw_cosine=True)
        else:
            self._metric.reset()
            tensors = [torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1) for im in images]
            self._metric.update(tensors, list(prompts))
            cosine = float(self._metric.score / self._metric.n_samples / 100)
        self._cosine_sum += cosine * len(images)
        self._pairs += len(images)

    def reset(self) -> None:
        """Forget the pairs seen so far (the model stays loaded)."""
        self._cosine_sum, self._pairs = 0.0, 0

    def state(self) -> tuple[float, int]:
        """(sum of raw cosines, number of pairs): what processes add up before ``compute``."""
        return self._cosine_sum, self._pairs

    @staticmethod
    def score(cosine_sum: float, pairs: int) -> float | None:
        """torchmetrics' CLIP score from summed raw cosines: ``max(100 * mean, 0)``."""
        return None if pairs == 0 else round(max(100 * cosine_sum / pairs, 0.0), 3)

    def compute(self) -> float | None:
        return self.score(self._cosine_sum, self._pairs)

    def describe(self) -> dict[str, Any]:
        weights = self._weights if os.path.isfile(self._weights) else None
        return {"backbone": self.backbone, "scale": "torchmetrics CLIPScore: max(100 * mean cosine, 0)",
                "folder": os.path.abspath(self.folder), "weights_sha256": file_sha256(weights) if weights else None}


@contextmanager
def _root_logger_at_warning() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def _backbone_name(folder: str) -> str:
    """The name scores are recorded under: the mini-canvas record's, the model config's, or the folder's."""
    for name, keys in (("open_clip_config.json", ("mini_canvas", "backbone")), ("config.json", ("_name_or_path",))):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                value: Any = json.load(f)
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, str) and value:
                return value
    return os.path.basename(os.path.normpath(folder))
