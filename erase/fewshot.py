"""Few-shot text-encoder erasure (fmp453/few-shot-erasing, BMVC 2024): a concept gone in seconds.

The UNet is never touched. The text encoder is pushed away from a handful of images of the
concept by gradient *ascent* on the ordinary denoising loss (``shared/docs/algorithms.md`` §4)::

    loss = - MSE(model(x_t, t, text_encoder(p)), target),   x_t = add_noise(x0, eps, t),  t ~ U[0, 1000)

with ``target = eps`` (or ``v`` for a v-prediction model), ``x0`` the VAE latents of the few
images (``latent_dist.sample() * scale``, encoded once, after a random horizontal flip drawn
once per image: the augmentation is static, as in the original; mini-canvas renders are not
flipped, see ``FewShot._flips``), and ``p`` a textual-inversion
template filled with the concept (27 object or 19 style templates, shipped in
``erase/templates``; mini-canvas has templates in its own vocabulary). Adam with the official
betas (0.9, 0.98), eps 1e-6 and weight decay 1e-8; batches of 2, reshuffled every epoch; one
epoch is ``ceil(N / 2)`` optimiser steps, and ``--steps`` counts epochs.

Images: on mini-canvas ``num_images`` renders of the concept (the world's "real images", its
partner on the other axis drawn at random, seeds recorded); on a real model ``--images DIR``.
``zero_shot`` replaces the latents by uniform noise, ``batch_size`` of them, as the original.

Beyond the original, two things, both measured on mini-canvas (``FewShotConfig``'s docstring):

* a retain term: ``retain_weight x MSE(TE(c_r), TE_o(c_r))`` over ``retain_batch`` retain prompts
  per step (:mod:`erase.retain`: the world's prompts that do not name the concept; on real models
  "a photo of a {COCO object}" filtered by the concept's words), text-encoder forwards only. The
  ascent alone moves the weights every prompt shares, so the other concepts went first (10 of 20
  targets at the issue's bar); anchored, the text encoder has to move the concept's prompts alone.
  ``--retain-weight 0`` is the original objective.
* a stopping rule (:mod:`erase.stopping`): every epoch's text-encoder tensors are kept (only
  the trained ones, ``DIR/epochs/``), each epoch's probe images are judged, and the epoch that
  erases the concept while moving the others least is the one applied; the scores of every epoch,
  and what the judge sees instead of the concept, go into the record. ``--epoch N`` overrides;
  :func:`erase.epochs.load_epoch` picks another one later, no retraining. On a real model (no
  judge yet, see the issue) the last epoch is kept, as the original does.

Faithfulness notes:
  * The official code meant to train only ``params`` (``mlp-final-attn``) but writes
    ``param.require_grad = False`` (sic), which freezes nothing, and gives the optimiser every
    text-encoder parameter: as run, it trains the whole text encoder, token and position
    embeddings and layer norms included. That behaviour is ``--params "text_encoder:."``; the
    default is the preset the paper describes and analyses.
  * The official epochs are 0-based checkpoints ``epoch-0..4``; here epoch ``n`` is the state
    after ``n`` epochs, so official ``epoch-k`` is our ``k + 1``.
  * The original's zero-shot latents are ``(1, 4, 64, 64)`` per item, which its DataLoader stacks
    to five dimensions; here they are ``(C, h, w)`` per item, the shape the UNet takes.
  * The learning rate 1e-5 is the official one for SD 1.x's CLIP-L; the mini-canvas text encoder
    is tiny and trained from scratch, and needs a much larger one (the default).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from eval.canvas import MiniCanvas, mini_canvas
from eval.judges.protocol import Judge
from pipelines.backbone import Backbone
from pipelines.errors import ConfigError, EraseError

from .config import MethodConfig, option
from .data import ImageSet, image_files, read_image
from .epochs import EpochedResult, snapshot
from .method import ErasureMethod, RunOptions
from .official import OfficialSchedule
from .registry import register
from .retain import encode_pool, retain_pool
from .stopping import StoppingRuleOptions, judged_choice, kept_result
from .templates import templates

logger = logging.getLogger(__name__)



@dataclass
class FewShotConfig(StoppingRuleOptions, MethodConfig):
    """Few-shot settings. Defaults erase a mini-canvas style or object in about a second of
    training on a CPU; for SD 1.x use ``lr=1e-5, steps=5`` (official) with ``--images DIR``, and
    ``retain_weight=0`` for the original objective (the retain term's weight is measured on
    mini-canvas only: no SD weights here).

    Why the retain term (version 4). The original objective alone left 10 of the 20 targets at
    the issue's bar (UA 70, IRA and CRA 75): the ascent moves the weights every prompt shares, so
    the other concepts went first (stripes, split, cross and star: CRA 67-70; crescent: IRA 48.9),
    or nothing was erased before they went (arrow, diamond: UA 0). Anchoring the text encoder's
    output on the retain prompts, bench ``erase bench --methods fewshot --targets all --seeds 2
    --variant orig=fewshot:retain_weight=0,steps=5 --variant rw1=fewshot:retain_weight=1,steps=10 --variant
    rw03=fewshot:retain_weight=0.3,steps=10`` (seed 0, 2-core CPU, 2026-11-28; UA / IRA / CRA, mean over the
    10 styles and the 10 objects; the ``original`` row was measured as version 3's default, the same
    computation as ``orig``: with weight 0 no retain prompt is drawn and the random stream is unchanged):

    ==============================  =====  ==================  ==================  ==================================
    objective                       bar    styles              objects             misses
    ==============================  =====  ==================  ==================  ==================================
    original (weight 0), 5 epochs   10/20  74.5 / 86.9 / 90.8  69.5 / 87.8 / 83.9  arrow, diamond, dots, grid, checker
                                                                                   UA; stripes, split, cross, star,
                                                                                   crescent retention
    weight 1, 10 epochs             16/20  100 / 94.4 / 98.2   65.5 / 99.6 / 93.4  arrow, house UA 0, square 50,
                                                                                   circle 60
    **weight 0.3, 10 epochs**       18/20  95.5 / 91.1 / 98.2  81.0 / 95.7 / 87.5  arrow UA 0, cross CRA 71.5
    ==============================  =====  ==================  ==================  ==================================

    Weight 1 keeps everything else almost untouched but is too strong for objects: the ascent
    stalls (house: 100 % of its probes still house at every epoch). Doubling the learning rate
    instead (``--variant rw1lr6=fewshot:retain_weight=1,steps=10,lr=0.006`` on arrow, house,
    circle, square, triangle, star, diamond) erased circle (75 / 100 / 76.5) but left house at 60
    and square at 65; weight 0.3 at the default rate passes all of them but arrow. The lowest
    margins of the default: rings and circle at UA 70.

    Arrow resists every objective: its probes stay arrow at every epoch of the original (10
    epochs; ``--lr 1e-2``; ``te-attn``, ``te-ffn``; the whole text encoder with its embeddings,
    ``--params "text_encoder:."``, with and without the retain term) while, without the retain
    term, the other objects fall to 0-33 %. More images did not help on the original objective
    (``--variant n10=fewshot:num_images=10``: arrow 0 / 100 / 89).

    Version 5: the renders are no longer flipped (``FewShot._flips``). The world never mirrors a
    shape, so three of arrow's four training images were arrows pointing the way the model never
    draws: the ascent pushed the text encoder away from images it would not make. Unflipped, its
    probes leave arrow (``erase run fewshot --concept arrow --no-flip`` against ``--flip``: 75 % at
    epoch 10 against 100 % at every epoch; with ``--lr 6e-3``, 0 % at epoch 10). The README's bench command
    with ``--methods fewshot`` (all 20 targets, 2026-11-28, same protocol) then passes **19 of 20**:
    styles 98.5 / 93.1 / 100 (10 of 10), objects 80.0 / 96.3 / 88.5; cross's CRA 71.5 is now 88.5,
    and the attack's success rate falls from 35.7 to 27.1 %. Thinnest margins: crescent and square
    at UA 70. Arrow still misses (UA 5 / IRA 91.1 / CRA 75): what the text encoder says for arrow is
    what it says for the styles. ``--variant lr6=fewshot:lr=0.006`` erases it (UA 95) but takes
    the styles with it (CRA 49.5, FID 107.5), and a retain weight of 1 holds it at UA 0 even at lr
    6e-3 and 1e-2 (``rw1lr6``, ``rw1lr10``): a limit of text-encoder-only ascent on that concept,
    which the record's stopping-rule line states ("no epoch brought the concept's own probes to
    15 %")."""

    steps: int = option(10, "epochs, i.e. passes over the images (official 5, its README 4; mini-canvas 10: the retain term slows "
                        "the ascent, and the stopping rule chooses among them); optimiser steps = epochs x ceil(images / batch size)")
    params: str = option("te-mlp-final-attn", "text-encoder weights to train: te-mlp-final-attn (every MLP + the last self-attention), "
                         "te-full, te-ffn, te-attn, te-mlp-attn (official names all, mlp-only, attn-only, mlp-attn, mlp-final-attn)")
    lr: float = option(3e-3, "Adam learning rate; official 1e-5 for SD 1.x; mini-canvas's tiny text encoder needs 3e-3 "
                       "(stripes on the first-phase model: gone at epoch 4; 1e-3 left it after 5 epochs, 1e-2 harmed the other styles more)")
    beta1: float = option(0.9, "Adam beta1 (official)")
    beta2: float = option(0.98, "Adam beta2 (official)")
    adam_eps: float = option(1e-6, "Adam epsilon (official)")
    weight_decay: float = option(1e-8, "Adam (L2) weight decay (official)")
    batch_size: int = option(2, "images per optimiser step (official 2)")
    images: str | None = option(None, "folder of a few images of the concept (real models); default: mini-canvas renders of it")
    num_images: int = option(4, "how many mini-canvas renders of the concept to learn from")
    concept_type: Literal["object", "style"] | None = option(None, "template set: object or style (default: the world's kind on mini-canvas, else object)")
    zero_shot: bool = option(False, "the zero-shot variant: batch-size uniform-noise latents instead of images")
    flip: bool | None = option(None, "flip each image horizontally with probability 1/2, once at load (the original's static "
                               "augmentation; default: on for --images, off for mini-canvas renders: the world never mirrors "
                               "its shapes, and a mirrored arrow is one the model never draws)")
    epoch: int | None = option(None, "keep this epoch (1..steps) instead of the stopping rule's choice")
    retain_weight: float = option(0.3, "weight of the retain term (beyond the original; 0: the original objective): MSE between "
                                  "the text encoder's output on retain prompts and the original's (mini-canvas 0.3, see above)")
    retain_batch: int = option(16, "retain prompts per optimiser step (text-encoder forwards only: no UNet, no images)")
    retain_prompts: str | None = option(None, "text file of retain prompts, one per line (default: mini-canvas: the world's "
                                        "prompts that do not name the concept; else 'a photo of a {COCO object}')")
    retain_filter: bool = option(True, "drop retain prompts that share a word with the concept")

    def validate(self) -> None:
        super().validate()
        if len(self.concepts) != 1:
            raise ConfigError(f"few-shot erases one concept per run (as the original); got {len(self.concepts)}: run it once per concept")
        for name in ("lr", "batch_size", "num_images", "retain_batch"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.epoch is not None and not 1 <= self.epoch <= self.steps:
            raise ConfigError(f"--epoch {self.epoch} is not one of the trained epochs 1..{self.steps} (--steps)")
        if self.retain_weight < 0:
            raise ConfigError(f"--retain-weight must be non-negative (0 turns the retain term off), got {self.retain_weight}")
        if self.zero_shot and self.images is not None:
            raise ConfigError("--zero-shot uses no images; drop --images or --zero-shot")


def _world_of(config: FewShotConfig) -> MiniCanvas | None:
    """The mini-canvas world when it supplies the images (no ``--images``, a concept it knows)."""
    if config.images is not None or not config.concepts:
        return None
    world = mini_canvas()
    try:
        world.canonical(config.concepts[0])
    except EraseError:
        return None
    return world


@register
class FewShot(ErasureMethod):
    name = "fewshot"
    version = "5"  # 5: no flip of mini-canvas renders; 4: a retain term (weight 0.3) and 10 epochs (3: threshold 15 %, ties to the epoch that erased more, a balanced fallback)
    summary = "Few-shot text-encoder erasure: gradient ascent from a few images in seconds, epoch chosen by a judge"
    config_class = FewShotConfig
    #: The official code's default, 5 epochs of 4 images at batch 2: 5 x ceil(4/2) = 10 optimiser steps.
    official = OfficialSchedule(
        iterations=10,
        options={"params": "te-mlp-final-attn", "batch_size": 2, "lr": 1e-5, "retain_weight": 0.0},
        # Zero-shot noise latents and a concept outside mini-canvas: no renders and no judged
        # stopping rule; a step's work (UNet forward, text-encoder backward) is the same.
        timing={"zero_shot": True, "concepts": ["Van Gogh"]},
        note="the paper's timer, like ours, starts after loading and VAE encoding",
        source="algorithms.md §4 Data and defaults",
    )
    config: FewShotConfig

    def __init__(self, config: FewShotConfig, judge: Judge | None = None) -> None:
        """``judge`` replaces the shipped mini-canvas judge in the stopping rule."""
        super().__init__(config)
        self.judge = judge
        self.epochs = config.steps
        self.world = _world_of(config)

    # --- data ----------------------------------------------------------------------------
    def dataset_size(self) -> int:
        cfg = self.config
        if cfg.zero_shot:
            return cfg.batch_size
        return len(image_files(cfg.images)) if cfg.images is not None else cfg.num_images

    def steps_per_epoch(self) -> int:
        return math.ceil(self.dataset_size() / self.config.batch_size)

    def _kind(self) -> str:
        if self.config.concept_type is not None:
            return self.config.concept_type
        return self.world.kind(self.concept) if self.world is not None else "object"

    @property
    def concept(self) -> str:
        return self.config.concepts[0]

    def _renders(self, size: int, generator: torch.Generator) -> ImageSet:
        """``num_images`` renders of the concept, each with a random partner on the other axis."""
        world = self.world
        target = world.canonical(self.concept)
        is_object = world.kind(target) == "object"
        partners = world.styles if is_object else world.objects
        order = torch.randperm(len(partners), generator=generator).tolist()
        first = world.seed_range("diffusion-train").start
        pairs = [(target, partners[order[i % len(order)]]) if is_object else (partners[order[i % len(order)]], target)
                 for i in range(self.config.num_images)]
        seeds = [first + i for i in range(len(pairs))]
        images = world.render_batch([(o, s, seed) for (o, s), seed in zip(pairs, seeds)], size=size)  # (N, S, S, 3) uint8
        return ImageSet(images, [world.prompt(o, s) for o, s in pairs],
                        {"source": "mini-canvas renders", "pairs": [list(p) for p in pairs], "seeds": seeds})

    def _images(self, size: int, generator: torch.Generator) -> ImageSet:
        """The few images of the concept: ``--images DIR``, or mini-canvas renders."""
        cfg = self.config
        if cfg.images is not None:
            files = image_files(cfg.images)
            images = np.stack([read_image(cfg.images, name, size) for name in files])
            return ImageSet(images, [self.concept] * len(files), {"source": "folder", "path": os.path.abspath(cfg.images), "files": files})
        if self.world is None:
            raise ConfigError(f"few-shot needs images of {self.concept!r}: pass --images DIR (a folder of a few images "
                              "of it), or --zero-shot; without them the concept must be a mini-canvas object or style")
        if size > 64:
            raise ConfigError(f"this model draws {size}px images: pass --images DIR with a few images of "
                              f"{self.concept!r} (mini-canvas renders are only for the mini-canvas model)")
        return self._renders(size, generator)

    def _latents(self, backbone: Backbone, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        """The x0 of every step, encoded once, and the record of where they came from."""
        cfg = self.config
        if cfg.zero_shot:
            latents = torch.rand(backbone.latent_shape(cfg.batch_size), generator=generator)  # (B, C, h, w) in [0, 1)
            return latents.to(backbone.device, backbone.dtype), {"source": "zero-shot uniform noise", "count": cfg.batch_size}
        found = self._images(backbone.resolution, generator)
        pixels = found.tensor()  # (N, 3, S, S) in [0, 1]
        flipped = torch.rand(len(pixels), generator=generator) < 0.5 if self._flips() else torch.zeros(len(pixels), dtype=torch.bool)
        pixels = torch.where(flipped[:, None, None, None], pixels.flip(-1), pixels)
        with torch.no_grad():
            latents = backbone.encode_images(pixels, generator=generator, sample=True)  # (N, C, h, w)
        return latents, {**found.source, "flipped": flipped.tolist(), "latents": "VAE posterior sample x scale", "seed": cfg.seed}

    def _flips(self) -> bool:
        """The original's static flip, except on mini-canvas renders (``--flip`` decides when given).

        The world draws every shape unmirrored (rotations of at most 10 degrees), so a flipped
        arrow or crescent is a shape the model never draws: the ascent then pushes the text
        encoder away from images it would not make, and the concept stays (arrow: 100 % of its
        probes at every epoch with the flip, 0 % at epoch 10 without it and lr 6e-3)."""
        if self.config.flip is not None:
            return self.config.flip
        return self.config.images is not None or self.world is None

    # --- training ------------------------------------------------------------------------
    def prepare(self, backbone, params, originals) -> None:
        self.backbone: Backbone = backbone
        self.params = params
        generator = torch.Generator().manual_seed(self.config.seed)
        self.latents, self.data = self._latents(backbone, generator)
        vocabulary = "canvas_" if self.world is not None else ""
        self.template_set = f"fewshot_{vocabulary}{self._kind()}"
        self.templates = templates(self.template_set)
        self.data["templates"] = self.template_set
        self.per_epoch = math.ceil(len(self.latents) / self.config.batch_size)
        # One shuffle per epoch, drawn now (the original's DataLoader(shuffle=True)).
        self.orders = [torch.randperm(len(self.latents), generator=generator) for _ in range(self.epochs)]
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}
        self.pool, self.data["retain_source"] = self._retain_pool()
        self.data["retain_prompts"] = len(self.pool)
        # What the original text encoder says for every retain prompt, once (params are still the base's).
        self.frozen_retain = encode_pool(backbone, self.pool) if self.pool else None  # (N, L, D)

    def _retain_pool(self) -> tuple[list[str], str]:
        cfg = self.config
        if cfg.retain_weight == 0:
            return [], "none (retain weight 0: the original objective)"
        return retain_pool(cfg.concepts, cfg.retain_prompts, cfg.retain_filter)

    def optimizer(self, params):
        cfg = self.config
        return torch.optim.Adam(params.values(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps, weight_decay=cfg.weight_decay)

    def loss(self, step: int, generator: torch.Generator) -> torch.Tensor:
        epoch, index = divmod(step, self.per_epoch)
        if index == 0 and epoch > 0:  # the state after `epoch` epochs, before this step changes it
            self.snapshots[epoch] = snapshot(self.params)
        bb, size = self.backbone, self.config.batch_size
        x0 = self.latents[self.orders[epoch][index * size:(index + 1) * size]]  # (B, C, h, w)
        picks = torch.randint(len(self.templates), (len(x0),), generator=generator)
        prompts = [self.templates[int(i)].format(self.concept) for i in picks]
        t = torch.randint(0, bb.schedule.num_train_timesteps, (len(x0),), generator=generator)  # (B,)
        noise = torch.randn(x0.shape, generator=generator).to(x0)  # (B, C, h, w)
        x_t = bb.schedule.add_noise(x0, noise, t)
        target = bb.schedule.target(x0, noise, t)  # eps, or v for a v-prediction model
        prediction = bb.predict(x_t, t.to(bb.device), bb.encode(prompts))
        loss = -F.mse_loss(prediction.float(), target.float())
        if self.pool:
            picks = torch.randperm(len(self.pool), generator=generator)[:self.config.retain_batch]
            student = bb.encode([self.pool[int(i)] for i in picks])  # (R, L, D)
            loss = loss + self.config.retain_weight * F.mse_loss(student.float(), self.frozen_retain[picks].float())
        return loss

    # --- fit: the shared template, then the epoch ----------------------------------------
    def plan(self, pipe: Any) -> dict[str, Any]:
        pool, source = self._retain_pool()
        return {**super().plan(pipe), "epochs": self.epochs, "optimizer_steps": self.epochs * self.steps_per_epoch(),
                "retain_prompts": len(pool), "retain_source": source}

    def fit(self, pipe: Any, run: RunOptions | None = None) -> EpochedResult:
        """The shared fit for ``epochs x steps_per_epoch`` optimiser steps, then the epoch choice.

        ``--steps`` counts epochs, the shared loop optimiser steps: the loop runs on a copy of
        the config holding the step count, and the record keeps the user's. No checkpoints: a
        run of seconds has nothing to resume, and the epoch snapshots live in memory.
        """
        run = replace(run or RunOptions(), work_dir=None)
        user_config = self.config
        self.config = replace(user_config, steps=self.epochs * self.steps_per_epoch())
        try:
            result = super().fit(pipe, run)
        finally:
            self.config = user_config
        epochs = {**self.snapshots, self.epochs: result.tensors}
        started = time.perf_counter()
        scores, chosen, why = self._choose(pipe, result, epochs)
        result.record.update(config=user_config.to_dict(), data=self.data)
        logger.info("few-shot %s: kept %s", self.concept, why)
        return kept_result(result, pipe, epochs, chosen, why, scores, time.perf_counter() - started, user_config.stop_below,
                           count=self.epochs, steps_per_epoch=self.per_epoch)

    def _choose(self, pipe: Any, result, epochs: dict[int, dict[str, torch.Tensor]]) -> tuple[list, int, str]:
        """``(scores, epoch, why)``: the user's epoch, the stopping rule's, or the last one."""
        cfg = self.config
        if cfg.epoch is not None:
            return [], cfg.epoch, f"epoch {cfg.epoch}: given by --epoch"
        world = self.world
        if world is None:
            return [], self.epochs, f"epoch {self.epochs}: the last (no judge for real models yet; the original's behaviour)"
        return judged_choice(pipe, result, epochs, cfg, world, self.concept, self.judge)
