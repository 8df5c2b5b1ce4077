"""UnlearnCanvas's style and object classifiers as one judge, loaded from local checkpoint files.

UnlearnCanvas (``evaluation/quantitative/accuracy.py``) classifies with
``timm.create_model("vit_large_patch16_224.augreg_in21k")`` whose head is replaced by
``Linear(1024, classes)``: 51 style classes (``theme_available``, photo domain included) and
20 object classes, each fine-tuned separately and saved as ``{"model_state_dict": ...}``.
Preprocessing: ``Resize((224, 224))``, ``ToTensor``, ``Normalize(0.5, 0.5)``.

Here both checkpoints come from local paths given by flags (``--style-classifier``,
``--object-classifier``); nothing downloads (the architecture is built with
``pretrained=False`` and every weight comes from the checkpoint). Files are read with
``torch.load(weights_only=True)`` or as safetensors, never unpickled. One deviation: their
script re-reads the generated images from JPEG files; we classify the decoded pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from eval.canvas.spec import CanvasSpec
from eval.canvas.unlearncanvas import CLASSIFIER_ARCH
from eval.judges.protocol import Images
from pipelines.fingerprint import file_sha256
from pipelines.weights import read_state_dict
from pipelines.errors import EraseError

STYLE_FLAG = "--style-classifier"
OBJECT_FLAG = "--object-classifier"


def _classifier(path: str | None, flag: str, classes: int, arch: str, arch_kwargs: dict[str, Any]) -> torch.nn.Module:
    """A timm model with ``classes`` outputs and the weights of ``path``."""
    import timm

    tensors = read_state_dict(path, flag)
    model = timm.create_model(arch, pretrained=False, num_classes=classes, **arch_kwargs)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as error:
        raise EraseError(f"{path} given with {flag} does not fit {arch} with {classes} classes "
                         f"({str(error).splitlines()[0][:160]}); pass the matching checkpoint") from None
    return model.eval()


class UnlearnCanvasJudge:
    """``predict(images) -> (object_idx, style_idx)`` with UnlearnCanvas's two classifiers."""

    def __init__(self, style_model: torch.nn.Module, object_model: torch.nn.Module, spec: CanvasSpec,
                 image_size: int = 224, provenance: dict[str, Any] | None = None) -> None:
        self.style_model = style_model.eval()
        self.object_model = object_model.eval()
        self.spec = spec
        self.objects = spec.objects
        self.styles = spec.styles
        self.image_size = image_size
        self.provenance = provenance or {}

    @classmethod
    def load(cls, style_path: str | None, object_path: str | None, spec: CanvasSpec, *,
             arch: str = CLASSIFIER_ARCH, arch_kwargs: dict[str, Any] | None = None,
             image_size: int = 224, device: str | torch.device = "cpu") -> UnlearnCanvasJudge:
        """Both classifiers from local files; a missing file is an error naming its flag."""
        kwargs = dict(arch_kwargs or {})
        style = _classifier(style_path, STYLE_FLAG, len(spec.styles), arch, kwargs).to(device)
        obj = _classifier(object_path, OBJECT_FLAG, len(spec.objects), arch, kwargs).to(device)
        provenance = {"name": "unlearncanvas-vit", "arch": arch, "arch_kwargs": kwargs, "image_size": image_size,
                      "style_sha256": file_sha256(style_path), "object_sha256": file_sha256(object_path)}
        return cls(style, obj, spec, image_size, provenance)

    def _tensor(self, images: Images) -> torch.Tensor:
        """Resize((S, S)) -> ToTensor -> Normalize(0.5, 0.5), as UnlearnCanvas preprocesses."""
        from torchvision import transforms

        transform = transforms.Compose([transforms.Resize((self.image_size, self.image_size)), transforms.ToTensor(),
                                        transforms.Normalize([0.5], [0.5])])
        pil = images if not isinstance(images, np.ndarray) else [Image.fromarray(a) for a in images]
        device = next(self.style_model.parameters()).device
        return torch.stack([transform(image.convert("RGB")) for image in pil]).to(device)  # (N, 3, S, S)

    @torch.inference_mode()
    def predict(self, images: Images, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Predicted object index (N,) and style index (N,) (argmax, as UnlearnCanvas)."""
        objects, styles = [], []
        for start in range(0, len(images), batch_size):
            x = self._tensor(images[start:start + batch_size])
            objects.append(self.object_model(x).argmax(dim=1).cpu())
            styles.append(self.style_model(x).argmax(dim=1).cpu())
        if not objects:
            return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
        return torch.cat(objects).numpy(), torch.cat(styles).numpy()

    def verdict(self, images: Images, concept: str) -> np.ndarray:
        """(N,) bool: is the image classified as ``concept`` (an object or a style, any spelling)?"""
        name = self.spec.canonical(concept)
        objects, styles = self.predict(images)
        if name in self.objects:
            return objects == self.objects.index(name)
        return styles == self.styles.index(name)

    def record(self) -> dict[str, Any]:
        return dict(self.provenance)
