"""Train the mini-canvas CLIP: contrastive (InfoNCE) image-caption learning on renders of the world.

    model, report = train_mini_clip(mini_canvas())  # 10 min on one shared CPU core, 1.5 min on a GPU
    save_mini_clip(model, "/tmp/mini_clip", report, report["model_cfg"])

Data: a pool of renders, one seed per image, from ``seed_range("diffusion-train")``; each batch
takes distinct (object, style) pairs (a random permutation of the pairs; batches larger than the
number of pairs repeat them), one random render of each, augmented like generated images
(``eval.judges.augment``: softness, noise, colour drift, channel order), and one random caption
per image (``captions.py``: every template and synonym; some captions name one concept only).

Loss: CLIP's symmetric cross-entropy over the (B, B) image-caption similarities, times a
learnable temperature (``logit_scale``, clamped at 100 as in CLIP). A caption that also fits
another image of the batch (same pair, or a one-concept caption) would be a false negative:
those entries are masked out of both softmaxes, so every row keeps exactly one positive.

Optimiser: AdamW (no decay on gains, biases and the temperature, as open_clip), linear warm-up
then cosine decay, gradient clipping. ``seed`` fixes the initialisation, the batches, the
augmentation and the captions.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from eval.canvas.mini import MiniCanvas
from eval.clip.captions import OBJECT_PROMPT, STYLE_PROMPT, describes, sample_captions
from eval.clip.mini import BACKBONE, MODEL_CFG, create_mini_clip, normalise
from eval.clip.zeroshot import render_labelled, zero_shot_accuracy
from eval.judges.augment import augment
from pipelines.errors import EraseError, TrainingDiverged

logger = logging.getLogger(__name__)

WARMUP_FRACTION = 0.05  # of the steps
WEIGHT_DECAY = 0.1
GRAD_CLIP = 1.0
MAX_LOGIT_SCALE = math.log(100)  # CLIP's cap on the inverse temperature


def _optimizer(model: open_clip.CLIP, lr: float, steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with decay on weight matrices only, and a warm-up + cosine schedule."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, round(WARMUP_FRACTION * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _batch_pairs(n_pairs: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """(B,) pair indices: a random permutation of the pairs, repeated if B exceeds their number."""
    rounds = -(-batch_size // n_pairs)
    return torch.cat([torch.randperm(n_pairs, generator=generator) for _ in range(rounds)])[:batch_size]


def contrastive_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                     fits: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric InfoNCE with false negatives masked out.

    ``image_features`` and ``text_features`` are (B, E) unit vectors of matching items;
    ``fits[i, j]`` says caption j describes image i (True on the diagonal).
    """
    logits = logit_scale.exp() * image_features @ text_features.T  # (B, B) [image i, caption j]
    false_negatives = fits & ~torch.eye(len(fits), dtype=torch.bool, device=fits.device)  # (B, B)
    logits = logits.masked_fill(false_negatives, float("-inf"))
    target = torch.arange(len(logits), device=logits.device)  # (B,)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def train_mini_clip(world: MiniCanvas, seed: int = 0, steps: int = 2000, batch_size: int = 100, lr: float = 2e-3,
                    images_per_pair: int = 100, partial_rate: float = 0.2, heldout_per_pair: int = 20,
                    model_cfg: dict[str, Any] | None = None, device: str | torch.device = "cpu",
                    progress: bool = True) -> tuple[open_clip.CLIP, dict[str, Any]]:
    """Train a CLIP on ``world`` and measure its zero-shot accuracy on renders it has never seen.

    steps, batch_size, lr: the optimisation (batch_size up to the number of pairs keeps every
        batch free of repeated pairs). images_per_pair: the training pool, in renders per pair.
    partial_rate: fraction of captions naming only the object or only the style.
    heldout_per_pair: fresh renders per pair from ``seed_range("diffusion-heldout")`` for the report.
    model_cfg: the open_clip architecture (default ``MODEL_CFG``).
    Returns the model (eval mode, on ``device``) and a report: settings, held-out zero-shot
    accuracies in percent (``zeroshot.py``), and timings in seconds.
    """
    if steps < 1 or batch_size < 2 or images_per_pair < 1:
        raise EraseError(f"train_mini_clip needs steps >= 1, batch_size >= 2 and images_per_pair >= 1 "
                         f"(got {steps}, {batch_size}, {images_per_pair}).")
    model_cfg = copy.deepcopy(model_cfg or MODEL_CFG)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_pairs = len(world.objects) * len(world.styles)
    size = model_cfg["vision_cfg"]["image_size"]

    started = time.perf_counter()
    train_seeds = world.seed_range("diffusion-train")[:images_per_pair * n_pairs]
    images, objects, styles = render_labelled(world, train_seeds, size)  # image i shows pair i % n_pairs
    pool = torch.from_numpy(images).to(device).permute(0, 3, 1, 2)  # (N, 3, S, S) uint8
    objects_t, styles_t = torch.from_numpy(objects), torch.from_numpy(styles)  # (N,)
    render_seconds = time.perf_counter() - started
    logger.info("Rendered %d training images in %.1f s", len(pool), render_seconds)

    model = create_mini_clip(model_cfg).to(device).train()
    tokenizer = open_clip.SimpleTokenizer(context_length=model_cfg["text_cfg"]["context_length"])
    optimizer, schedule = _optimizer(model, lr, steps)

    started = time.perf_counter()
    bar = tqdm(range(steps), desc="mini CLIP", disable=not progress)
    for step in bar:
        pairs = _batch_pairs(n_pairs, batch_size, generator)  # (B,)
        index = torch.randint(images_per_pair, (batch_size,), generator=generator) * n_pairs + pairs  # (B,)
        x = augment(pool[index.to(device)].float() / 255, generator)  # (B, 3, S, S) in [0, 1]
        batch_objects, batch_styles = objects_t[index], styles_t[index]  # (B,), (B,)
        captions, names_object, names_style = sample_captions(world, batch_objects.numpy(), batch_styles.numpy(),
                                                              partial_rate, rng)
        fits = describes(batch_objects, batch_styles, torch.from_numpy(names_object),
                         torch.from_numpy(names_style)).to(device)  # (B, B)

        image_features = model.encode_image(normalise(x, model), normalize=True)  # (B, E)
        text_features = model.encode_text(tokenizer(captions).to(device), normalize=True)  # (B, E)
        loss = contrastive_loss(image_features, text_features, model.logit_scale, fits)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"The mini CLIP loss became {loss.item()} at step {step}; "
                                   f"lower the learning rate (lr={lr}) or change the seed.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        bar.set_postfix(loss=f"{loss.item():.3f}", scale=f"{model.logit_scale.exp().item():.1f}")
        if (step + 1) % max(1, steps // 10) == 0:
            logger.info("mini CLIP step %d/%d: loss %.4f, logit scale %.1f", step + 1, steps, loss.item(),
                        model.logit_scale.exp().item())
    bar.close()
    train_seconds = time.perf_counter() - started

    model.eval()
    heldout_seeds = world.seed_range("diffusion-heldout")[:heldout_per_pair * n_pairs]
    report: dict[str, Any] = {
        "backbone": BACKBONE,
        "objects": list(world.objects),
        "styles": list(world.styles),
        "zero_shot_prompts": {"object": OBJECT_PROMPT, "style": STYLE_PROMPT},
        "model_cfg": model_cfg,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "images_per_pair": images_per_pair,
        "partial_rate": partial_rate,
        "train_seeds": [train_seeds.start, train_seeds.stop],
        "heldout_seeds": [heldout_seeds.start, heldout_seeds.stop],
        "device": str(device),
        "threads": torch.get_num_threads(),
        "render_seconds": round(render_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        **zero_shot_accuracy(model, tokenizer, world, *render_labelled(world, heldout_seeds, size)),
    }
    logger.info("mini CLIP zero-shot on fresh renders: object %.2f%%, style %.2f%%, pair %.2f%% (%.0f s training)",
                report["object_accuracy"], report["style_accuracy"], report["pair_accuracy"], train_seconds)
    return model, report
