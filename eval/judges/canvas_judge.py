"""The mini-canvas judge: a small two-head CNN that says which object and which style an image shows.

It is the independent oracle of every efficacy measurement on the mini-canvas world: after
erasing "stripes", the fraction of images it still calls "stripes" is what is left of the
concept. Fit it with ``train_judge(world)``; the result is a frozen ``CanvasJudge`` that
predicts, saves and reloads without the training code.

File format: one safetensors file, weights stored fp16 (half the size; fp16 is slow on CPUs,
so they are loaded back as fp32), with the class names, the architecture and the training
report as JSON in the file's metadata, so loading needs nothing else and unpickles nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from torch import nn
from tqdm.auto import tqdm

from eval.canvas.spec import CanvasSpec
from eval.judges.augment import augment, vae_like
from pipelines.weights import save_safetensors
from pipelines.errors import EraseError

if TYPE_CHECKING:
    from eval.canvas.mini import MiniCanvas

logger = logging.getLogger(__name__)

FORMAT = "erase.canvas-judge/1"
TRAIN_COMMAND = "erase mini-canvas train"

Images = Sequence[Image.Image] | np.ndarray  # PIL images of any size, or (N, H, W, 3) uint8


@dataclass(frozen=True)
class JudgeConfig:
    """Architecture hyper-parameters (stored in the weights file)."""

    image_size: int = 32  # inputs are resized to image_size x image_size
    # Width of each stage; every stage but the last halves H, W, so four stages end at 4x4, where
    # one 3x3 convolution spans the whole shape and can compare its top with its bottom (what
    # tells "gradient" from "solid", the hardest pair).
    channels: tuple[int, ...] = (24, 48, 64, 96)


class JudgeNet(nn.Module):
    """Stages of two 3x3 conv-BN-ReLU layers, global average+max pooling, one linear head per task.

    Average pooling tells how much of each texture there is, max pooling whether a feature
    (a corner, a tip) occurs anywhere; the heads share everything below them. Global pooling
    makes the verdict independent of where the shape sits.
    """

    def __init__(self, config: JudgeConfig, n_objects: int, n_styles: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 3
        for i, channels in enumerate(config.channels):
            for _ in range(2):
                layers += [nn.Conv2d(width, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()]
                width = channels
            if i < len(config.channels) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.object_head = nn.Linear(2 * width, n_objects)
        self.style_head = nn.Linear(2 * width, n_styles)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, S, S) images in [0, 1] -> object logits (N, n_objects), style logits (N, n_styles)."""
        h = self.features(images * 2 - 1)  # (N, C, S', S')
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)  # (N, 2C)
        return self.object_head(pooled), self.style_head(pooled)


class CanvasJudge:
    """A trained judge: the network, its class names, and (optionally) the spec for synonyms."""

    def __init__(self, network: JudgeNet, config: JudgeConfig, objects: Sequence[str], styles: Sequence[str],
                 spec: CanvasSpec | None = None, report: dict[str, Any] | None = None) -> None:
        self.network = network.eval()
        self.config = config
        self.objects = tuple(objects)
        self.styles = tuple(styles)
        self.report = report or {}
        self.spec: CanvasSpec | None = None
        if spec is not None:
            self.use_spec(spec)

    def use_spec(self, spec: CanvasSpec, source: str = "this judge") -> None:
        """Resolve concept synonyms through ``spec``; its classes must be the judge's classes."""
        if spec.objects != self.objects or spec.styles != self.styles:
            raise EraseError(
                f"{source} was trained on objects {list(self.objects)} and styles {list(self.styles)}, but the "
                f"world {spec.name!r} has objects {list(spec.objects)} and styles {list(spec.styles)}; "
                f"train a judge for this world (`{TRAIN_COMMAND}`) or load the matching file.")
        self.spec = spec

    # -- predicting -------------------------------------------------------------------------

    def _tensor(self, images: Images) -> torch.Tensor:
        """(N, 3, S, S) float tensor in [0, 1] on the network's device."""
        size = self.config.image_size
        if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[1:] == (size, size, 3):
            batch = images
        else:
            resized = []
            for image in images:
                image = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
                image = image.convert("RGB")
                if image.size != (size, size):
                    image = image.resize((size, size), Image.Resampling.LANCZOS)
                resized.append(np.asarray(image))
            batch = np.stack(resized) if resized else np.zeros((0, size, size, 3), np.uint8)
        device = next(self.network.parameters()).device
        return torch.from_numpy(np.ascontiguousarray(batch)).to(device).permute(0, 3, 1, 2).float() / 255

    @torch.inference_mode()
    def predict_proba(self, images: Images, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Softmax over objects (N, n_objects) and over styles (N, n_styles)."""
        x = self._tensor(images)  # (N, 3, S, S)
        object_probs, style_probs = [], []
        for start in range(0, len(x), batch_size):
            object_logits, style_logits = self.network(x[start:start + batch_size])
            object_probs.append(object_logits.softmax(dim=1).cpu())
            style_probs.append(style_logits.softmax(dim=1).cpu())
        if not object_probs:
            return np.zeros((0, len(self.objects)), np.float32), np.zeros((0, len(self.styles)), np.float32)
        return torch.cat(object_probs).numpy(), torch.cat(style_probs).numpy()

    def predict(self, images: Images) -> tuple[np.ndarray, np.ndarray]:
        """Predicted object index (N,) and style index (N,), into ``objects`` and ``styles``."""
        object_probs, style_probs = self.predict_proba(images)
        return object_probs.argmax(axis=1), style_probs.argmax(axis=1)

    def verdict(self, images: Images, concept: str) -> np.ndarray:
        """(N,) bool: does each image show ``concept`` (an object or a style, any of its names)?"""
        kind, index = self._class_of(concept)
        objects, styles = self.predict(images)
        return (objects if kind == "object" else styles) == index

    def _class_of(self, concept: str) -> tuple[str, int]:
        """("object" | "style", class index) of a concept name."""
        name = self.spec.canonical(concept) if self.spec is not None else concept.strip()
        for kind, names in (("object", self.objects), ("style", self.styles)):
            lowered = [n.lower() for n in names]
            if name.lower() in lowered:
                return kind, lowered.index(name.lower())
        raise EraseError(f"This judge does not know {concept!r}; it knows the objects {', '.join(self.objects)} "
                         f"and the styles {', '.join(self.styles)}.")

    # -- saving and loading -----------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the judge to ``path`` (fp16 safetensors), atomically."""
        path = Path(path)
        # BatchNorm's integer step counters are only needed for training; everything else is float.
        tensors = {name: t.detach().to("cpu", torch.float16).contiguous()
                   for name, t in self.network.state_dict().items() if t.is_floating_point()}
        metadata = {
            "format": FORMAT,
            "config": json.dumps(asdict(self.config)),
            "objects": json.dumps(self.objects),
            "styles": json.dumps(self.styles),
            "report": json.dumps(self.report),
        }
        save_safetensors(tensors, str(path), metadata=metadata)
        return path

    @classmethod
    def load(cls, path: str | Path, spec: CanvasSpec | None = None) -> CanvasJudge:
        """Read a judge written by ``save`` (weights come back as fp32, on the CPU)."""
        path = Path(path)
        if not path.is_file():
            raise EraseError(f"No judge weights at {path}; pass the path of a judge .safetensors file, "
                             f"or train one with `{TRAIN_COMMAND}`.")
        try:
            with safe_open(str(path), framework="pt") as file:
                metadata = file.metadata() or {}
                tensors = {name: file.get_tensor(name).float() for name in file.keys()}
        except Exception as error:  # safetensors raises its own types for a damaged header
            raise EraseError(f"{path} is not a readable safetensors file ({error}); "
                             f"train a new judge with `{TRAIN_COMMAND}`.") from None
        if metadata.get("format") != FORMAT:
            raise EraseError(f"{path} is not a mini-canvas judge (format {metadata.get('format')!r}, "
                             f"expected {FORMAT!r}); pass a file written by CanvasJudge.save.")
        raw = json.loads(metadata["config"])
        config = JudgeConfig(**{**raw, "channels": tuple(raw["channels"])})
        objects, styles = json.loads(metadata["objects"]), json.loads(metadata["styles"])
        network = JudgeNet(config, len(objects), len(styles))
        missing, unexpected = network.load_state_dict(tensors, strict=False)
        if unexpected or any(not name.endswith("num_batches_tracked") for name in missing):
            raise EraseError(f"The weights in {path} do not fit its recorded architecture "
                             f"(missing {missing}, unexpected {unexpected}); retrain with `{TRAIN_COMMAND}`.")
        judge = cls(network, config, objects, styles, report=json.loads(metadata.get("report", "{}")))
        if spec is not None:
            judge.use_spec(spec, source=f"The judge in {path}")
        return judge


# -- training -----------------------------------------------------------------------------


def _render_set(world: MiniCanvas, seeds: range, size: int) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """One image per seed, cycling through the (object, style) pairs.

    Every image has its own seed, hence its own colours and placement: the judge sees as many
    layouts as images, instead of the same few layouts repeated for each pair.
    Returns images (N, S, S, 3) uint8, object labels (N,) and style labels (N,).
    """
    pairs = [(o, s) for o in range(len(world.objects)) for s in range(len(world.styles))]
    labels = [pairs[i % len(pairs)] for i in range(len(seeds))]
    images = world.render_batch(
        [(world.objects[o], world.styles[s], seed) for (o, s), seed in zip(labels, seeds)], size=size)
    return images, torch.tensor([o for o, _ in labels]), torch.tensor([s for _, s in labels])


def _accuracy(predicted: np.ndarray, truth: torch.Tensor, names: Sequence[str]) -> tuple[float, dict[str, float]]:
    """Overall and per-class accuracy, in percent."""
    truth_np = truth.numpy()
    correct = predicted == truth_np
    per_class = {name: round(100 * float(correct[truth_np == i].mean()), 2) for i, name in enumerate(names)}
    return round(100 * float(correct.mean()), 2), per_class


def _confusions(predicted: np.ndarray, truth: torch.Tensor, names: Sequence[str], top: int = 5) -> list[str]:
    """The most frequent mistakes as "truth -> predicted: count"."""
    counts: dict[tuple[int, int], int] = {}
    for t, p in zip(truth.numpy(), predicted):
        if t != p:
            counts[(int(t), int(p))] = counts.get((int(t), int(p)), 0) + 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
    return [f"{names[t]} -> {names[p]}: {n}" for (t, p), n in ranked]


def evaluate(judge: CanvasJudge, images: np.ndarray, objects: torch.Tensor, styles: torch.Tensor) -> dict[str, Any]:
    """Accuracies (percent) on clean images and on VAE-like softened copies of them.

    The softened copies are what a perfect 2x-downsampling VAE would return: the sharpest a
    generated image can be. Training softens at random strengths up to exactly this one.
    """
    soft = vae_like(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)  # (N, 3, S, S)
    soft_images = (soft * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()  # (N, S, S, 3)
    result: dict[str, Any] = {}
    for prefix, batch in (("", images), ("soft_", soft_images)):
        predicted_objects, predicted_styles = judge.predict(batch)
        result[f"{prefix}object_accuracy"], object_classes = _accuracy(predicted_objects, objects, judge.objects)
        result[f"{prefix}style_accuracy"], style_classes = _accuracy(predicted_styles, styles, judge.styles)
        result[f"{prefix}per_class"] = {"object": object_classes, "style": style_classes}
        result[f"{prefix}confusions"] = (_confusions(predicted_objects, objects, judge.objects)
                                         + _confusions(predicted_styles, styles, judge.styles))
    return result


def train_judge(world: MiniCanvas, seed: int = 0, images_per_pair: int = 300, epochs: int = 2,
                heldout_per_pair: int = 30, batch_size: int = 128, lr: float = 3e-3,
                config: JudgeConfig = JudgeConfig(), device: str = "cpu",
                progress: bool = True) -> tuple[CanvasJudge, dict[str, Any]]:
    """Train a judge on renders of ``world`` and measure it on renders it has never seen.

    Training renders take the first ``images_per_pair * pairs`` seeds of
    ``world.seed_range("judge-train")``, one per image, and held-out renders the first
    ``heldout_per_pair * pairs`` of ``world.seed_range("judge-heldout")``.
    Batches are augmented (``augment.py``) so the judge also reads generated images. Many
    distinct renders seen twice work better than few renders seen often: with 60 images per
    pair and 8 epochs the judge read several percent of gradients as solid, failing mostly on
    colour pairs it had rarely seen. AdamW with a one-cycle schedule; ``seed`` fixes the
    initialisation, the batch order and the augmentation (bit-identical results on one machine
    and thread count).
    Returns the judge and a report with held-out accuracies (percent) and timings (seconds).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    size = config.image_size

    started = time.perf_counter()
    pairs = len(world.objects) * len(world.styles)
    train_seeds = world.seed_range("judge-train")[:images_per_pair * pairs]
    heldout_seeds = world.seed_range("judge-heldout")[:heldout_per_pair * pairs]
    images, objects, styles = _render_set(world, train_seeds, size)
    train_x = torch.from_numpy(images).to(device)  # (N, S, S, 3) uint8: a quarter of the memory of floats
    objects, styles = objects.to(device), styles.to(device)
    render_seconds = time.perf_counter() - started
    logger.info("Rendered %d training images in %.1f s", len(train_x), render_seconds)

    network = JudgeNet(config, len(world.objects), len(world.styles)).to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=5e-4)
    steps_per_epoch = -(-len(train_x) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                   pct_start=0.15)

    started, cpu_started = time.perf_counter(), time.process_time()
    network.train()
    bar = tqdm(total=epochs * steps_per_epoch, desc="judge", disable=not progress)
    for epoch in range(epochs):
        order = torch.randperm(len(train_x), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(train_x), batch_size):
            batch = order[start:start + batch_size]
            x = augment(train_x[batch].permute(0, 3, 1, 2).float() / 255, generator)  # (B, 3, S, S)
            object_logits, style_logits = network(x)
            loss = F.cross_entropy(object_logits, objects[batch]) + F.cross_entropy(style_logits, styles[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
            bar.update()
        logger.info("judge epoch %d/%d: loss %.4f", epoch + 1, epochs, total / len(train_x))
    bar.close()
    train_seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started

    judge = CanvasJudge(network.cpu().eval(), config, world.objects, world.styles, spec=world)
    heldout = _render_set(world, heldout_seeds, size)
    report = {
        "seed": seed,
        "images_per_pair": images_per_pair,
        "epochs": epochs,
        "train_seeds": [train_seeds.start, train_seeds.stop],
        "heldout_seeds": [heldout_seeds.start, heldout_seeds.stop],
        "parameters": sum(p.numel() for p in network.parameters()),
        "render_seconds": round(render_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),  # all threads; wall time also counts other processes
        **evaluate(judge, *heldout),
    }
    judge.report = report
    logger.info("judge held-out accuracy: object %.2f%%, style %.2f%% (soft: %.2f%%, %.2f%%)",
                report["object_accuracy"], report["style_accuracy"],
                report["soft_object_accuracy"], report["soft_style_accuracy"])
    return judge, report
