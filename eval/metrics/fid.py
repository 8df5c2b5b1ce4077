"""FID through torchmetrics' ``FrechetInceptionDistance``, with the feature extractor always injected.

torchmetrics computes the statistics and the Fréchet distance; what differs between settings is
only the network that turns an image into a feature vector, and each choice is named in the
record (``describe()``), because FIDs from different extractors are not comparable:

* ``JudgeFeatures`` (mini-canvas): the mini-canvas judge's pooled penultimate features (the
  input of its heads). Inception was never trained on 32x32 procedural drawings; the judge was.
* ``StandardInception(path)`` (real models): the TF-FID Inception used by pytorch-fid and
  clean-fid (``pt_inception-2015-12-05-6726825d.pth``), through torchmetrics' own wrapper (it
  needs the ``torch-fidelity`` package). Loaded from a local file: nothing downloads.
* ``UnlearnCanvasInception(path)``: UnlearnCanvas's variant (``quantitative/fid.py``):
  torchvision's ImageNet InceptionV3 (``inception_v3_google-0cc3c7bd.pth``), Mixed_7c output
  average-pooled to 2048, inputs bilinearly resized to 299 and scaled by x*2-1, as it does.
  Only for reproducing its table; its values are not comparable with standard FID.

Every extractor takes ``(N, 3, H, W)`` uint8 images. Weight files are read safely (safetensors,
or ``torch.load(weights_only=True)``), never unpickled.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from pipelines import sharding
from pipelines.fingerprint import file_sha256
from pipelines.weights import read_state_dict
from pipelines.errors import EraseError

STANDARD_INCEPTION_SHA256_PREFIX = "6726825d"  # pt_inception-2015-12-05-6726825d.pth, the TF-FID port


class JudgeFeatures(nn.Module):
    """The mini-canvas judge's penultimate features: the pooled vector its two heads read.

    Taken with a forward hook on the object head's input, so the judge's own forward pass (and
    any change to it) is what produces them.
    """

    def __init__(self, judge: Any) -> None:
        super().__init__()
        self.network = judge.network.eval()
        self.image_size = judge.config.image_size
        self.num_features = self.network.object_head.in_features

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 -> (N, num_features) float."""
        captured: list[torch.Tensor] = []
        handle = self.network.object_head.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            x = images.float() / 255
            if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
                x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False)
            self.network(x.to(next(self.network.parameters()).device))
        finally:
            handle.remove()
        return captured[0].float().cpu()

    def describe(self) -> dict[str, Any]:
        return {"extractor": "mini-canvas judge features", "num_features": self.num_features}


class UnlearnCanvasInception(nn.Module):
    """UnlearnCanvas's FID network: torchvision InceptionV3 (ImageNet), Mixed_7c, average-pooled."""

    num_features = 2048

    def __init__(self, weights_path: str, flag: str = "--fid-inception") -> None:
        super().__init__()
        from torchvision.models import inception_v3

        # transform_input=True is what inception_v3(pretrained=True) sets, as UnlearnCanvas used it.
        self.network = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False).eval()
        try:
            self.network.load_state_dict(read_state_dict(weights_path, flag))
        except RuntimeError as error:
            raise EraseError(f"{weights_path} given with {flag} is not a torchvision InceptionV3 state dict "
                             f"({str(error).splitlines()[0][:160]}); pass inception_v3_google-0cc3c7bd.pth") from None
        self.sha256 = file_sha256(weights_path)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 -> (N, 2048)."""
        x = F.interpolate(images.float() / 255, size=(299, 299), mode="bilinear", align_corners=False)
        x = x.to(next(self.network.parameters()).device) * 2 - 1
        captured: list[torch.Tensor] = []
        handle = self.network.Mixed_7c.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            self.network(x)
        finally:
            handle.remove()
        return F.adaptive_avg_pool2d(captured[0], 1).flatten(1).cpu()  # (N, 2048)

    def describe(self) -> dict[str, Any]:
        return {"extractor": "UnlearnCanvas torchvision InceptionV3 Mixed_7c (not standard FID)",
                "num_features": 2048, "weights_sha256": self.sha256}


class StandardInception(nn.Module):
    """torchmetrics' TF-FID Inception (2048-d pool features), built from a local weights file."""

    num_features = 2048

    def __init__(self, weights_path: str | None, flag: str = "--fid-inception") -> None:
        super().__init__()
        tensors = read_state_dict(weights_path, flag)
        try:
            import torch_fidelity  # noqa: F401  (torchmetrics' Inception is torch-fidelity's)
            from torchmetrics.image.fid import NoTrainInceptionV3
        except ImportError:
            raise EraseError("standard FID needs the torch-fidelity package: pip install torch-fidelity "
                             "(or use --fid-variant unlearncanvas with torchvision's Inception)") from None
        # torch-fidelity unpickles the file it is given; give it a copy of the tensors we read safely.
        with tempfile.TemporaryDirectory() as tmp:
            safe_copy = os.path.join(tmp, "inception.pt")
            torch.save(tensors, safe_copy)
            try:
                self.network = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                                  feature_extractor_weights_path=safe_copy)
            except RuntimeError as error:
                raise EraseError(f"{weights_path} given with {flag} is not the FID Inception state dict "
                                 f"({str(error).splitlines()[0][:160]}); pass pt_inception-2015-12-05-6726825d.pth") from None
        self.sha256 = file_sha256(weights_path)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images.to(torch.uint8)).reshape(images.shape[0], -1)

    def describe(self) -> dict[str, Any]:
        return {"extractor": "standard FID Inception (TF port, pool3)", "num_features": 2048,
                "weights_sha256": self.sha256,
                "standard_weights": self.sha256.startswith(STANDARD_INCEPTION_SHA256_PREFIX)}


class Fid:
    """Streaming FID: feed reference and generated uint8 batches, then ``compute()``.

    Under ``accelerate launch`` torchmetrics sums the statistics over processes on ``compute``;
    not inside ``pipelines.sharding.alone()``, where each process scores its own bench cell.
    """

    def __init__(self, extractor: nn.Module) -> None:
        self.extractor = extractor
        self.metric = FrechetInceptionDistance(feature=extractor, reset_real_features=False,
                                               sync_on_compute=sharding.metrics_sync())

    def update(self, images: np.ndarray, real: bool) -> None:
        """``images``: (N, H, W, 3) uint8."""
        if len(images):
            self.metric.update(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2), real=real)

    def compute(self) -> float:
        return round(float(self.metric.compute()), 4)

    def describe(self) -> dict[str, Any]:
        return self.extractor.describe() if hasattr(self.extractor, "describe") else {"extractor": type(self.extractor).__name__}
