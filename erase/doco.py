"""DoCo: concept domain correction with a concept-preserving gradient (Wu et al., AAAI 2025), ``erase run doco``.

The model's outputs for the target are made to look, to a discriminator, like the frozen model's
outputs for an anchor concept (``shared/docs/algorithms.md`` §6). Per step, on a batch of anchor
latents x0 (an instance half and a prior half), t ~ U[0, T), x_t = q(x0, t, eps)::

    x0_tgt = x0_hat(model (x_t, t, instance prompt))     trainable; the anchor caption with the target in it
    x0_anc = x0_hat(frozen(x_t, t, anchor prompt))       the base weights, same x_t
    L_D = BCE(D(sg x0_anc), 0) + BCE(D(sg x0_tgt), 1)     D steps every step (Adam, betas 0.5, 0.999)
    L_u = BCE(D(x0_tgt), 0)                               the target's outputs move into the anchor's domain
    L_r = MSE(model(x_t', t', anchor prompt), eps')       plain denoising on the prior half

x0_hat is the closed form (:meth:`pipelines.noise.NoiseSchedule.x0_from_output`; no patched
scheduler). The first ``warm_up`` steps train D alone; the UNet does not change. After that, with
``surgery`` ``doco`` (the official ``--gradient_clip``) or ``pcgrad``, the step is the two-backward
concept-preserving gradient of :class:`erase.surgery.ConceptPreservingGradient`: g_r from L_r
clipped and stored, g_u from L_u clipped, each tensor's g_u corrected against its g_r, and the
optimiser steps with g_u alone. ``surgery=off`` is the official path without the flag: one
backward of ``L_u + 0.1 * prior_loss_weight * L_r``, clipped.

Data: anchor images are the base model's own generations of the anchor prompts (cached like
every generated set, ``pipelines.cache``), each also used mirrored (``hflip``; not on mini-canvas,
whose world never mirrors a shape: ``DoCo._hflips``). On mini-canvas the
anchor is, by default, every other class of the target's axis together (``--anchor others``): a
generic domain, as the official "painting" anchor of styles, which is also the prior batch, so
it rehearses every concept that must stay. ``--anchor NAME`` takes one class instead (the
official object setting); a single neighbour as the anchor left the flat styles next to it
half-erased (``DoCoConfig``'s docstring). Anchor prompts are the world's captions of the
anchors with every class of the other axis, and the instance prompt is the same caption with
the target in the anchor's place (the official object pattern, and on mini-canvas also the
style one, since its captions name the style in one slot). On real models pass
``--anchor-prompts FILE`` (and ``--anchor WORD`` for objects): style instance prompts are
``"{p}, in the style of {target}"`` or ``"in {target}'s style, {p}"`` (drawn per image), object
prompts replace the anchor word, nudity prompts are ``"{target}, {p}"`` (``--concept-type``).

The discriminator (:class:`PatchDiscriminator`) is the official PatchGAN on latents: stride-2 4x4
conv blocks (64-128-256-512, BatchNorm except the first, LeakyReLU 0.2), then a 4x4 conv to a
1-channel patch map. The official four blocks take 64x64 SD latents to 4x4; smaller latents get
``log2(size / 4)`` blocks so the last conv still sees a 4x4 map (mini-canvas's 16x16 latents: two
blocks, 64-128).

Defaults fit a CPU on mini-canvas; the SD 1.x README settings are ``steps=2000, warm_up=1000,
lr=9.6e-5`` (6e-6 scaled by batch 8 x 2 for prior preservation), ``d_lr=5e-4`` (style) or
``1e-4`` (object, nudity), ``anchor_images=200..1000, generation_steps=50, generation_guidance=6``.

The run never diverges silently (:mod:`erase.gan_guard`): a non-finite L_D, L_u, L_r or (corrected)
gradient, or a discriminator that wins the game (its smoothed loss below ``collapse_floor`` for
``collapse_patience`` UNet steps in a row; a floor of 0 turns that rule off), stops it with a message that names what went wrong,
where and the fix, keeping the last good trained tensors (``erase run`` writes them as
``OUT.diverged``, a partial artifact; the checkpoint folder keeps the resumable state of a NaN).

Which state is kept (beyond the official code; mini-canvas only): a GAN does not settle. One run
erases a flat style at step 300 and lets it back by step 450, while a textured style or an object
needs the 450 (``DoCoConfig``'s docstring). So the trained tensors are kept every
``snapshot_every`` steps from ``snapshot_from`` and at the last step, and the judged stopping rule
of :mod:`erase.stopping` (shared with few-shot; ``rank="balance"``) draws probe images from each,
on seeds disjoint from the evaluation's, and applies the state that erases while keeping the
others best (the base is not probed: the evaluation reads it, and the time counts against the
3-minute bar). Every state is saved as ``DIR/epochs/epoch_<step>.safetensors`` (the record's
``epochs.unit`` is ``step``; :func:`erase.epochs.load_epoch` applies another later), ``--snapshot
N`` picks one, ``--snapshot-every 0`` keeps the last step as the official code does. On real models
(``--anchor-prompts``) there is no judge yet and the last step is kept.

Not implemented from the official code: the random-resize augmentation with its valid-region
mask and "far away"/"zoomed in" prompt prefixes (mini-canvas images are 32 px; hflip is kept for real models).
A resumed run restores the discriminator and its optimiser from the checkpoint with the UNet's
tensors (:meth:`DoCo.auxiliary_state`); the collapse guard's running average starts afresh.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from eval.judges.protocol import Judge
from pipelines import ErasureResult, sharding
from pipelines.backbone import Backbone
from pipelines.errors import ConfigError, EraseError, TrainingDiverged
from pipelines.generation import SamplerSettings
from pipelines.params import preset_components, swapped

from .config import MethodConfig, option
from .data import ImageSet, encode_latents, generated_set
from .gan_guard import CollapseGuard, require_finite
from .method import ErasureMethod, RunOptions
from .official import OfficialSchedule
from .registry import register
from .stopping import StoppingRuleOptions, judged_choice, kept_result
from .surgery import MODES, ConceptPreservingGradient, clip_global_norm_
from .training import AuxiliaryState

logger = logging.getLogger(__name__)

#: ``--anchor others``: every other class of the target's axis together, a generic domain.
OTHERS = "others"
FIX = "Lower --lr (the UNet's) or --d-lr, or lengthen --warm-up."


@dataclass
class DoCoConfig(StoppingRuleOptions, MethodConfig):
    """DoCo settings. Defaults fit two CPU cores on mini-canvas; SD 1.x: see the module docstring
    (``steps=2000, warm_up=1000, lr=9.6e-5, d_lr=5e-4`` style / ``1e-4`` object).

    The UNet's learning rate is tuned on the shipped mini-canvas model (``erase bench --methods doco
    --targets stripes,dots,star,cross --seeds 2 --variant doco-lr1e-3=doco:lr=1e-3 --variant
    doco-lr1e-4=doco:lr=1e-4 --out DIR``, seed 0), UA / IRA / CRA:

    =======  =================  =================  =================  =================
    lr       stripes            dots               star               cross
    =======  =================  =================  =================  =================
    1e-3     100 / 77.8 / 94.5  100 / 71.7 / 93.5  100 / 67.2 / 85.5  100 / 76.7 / 84.0
    3e-4     100 / 82.8 / 98.5   95 / 82.8 / 99.5  100 / 85.6 / 84.5  100 / 98.3 / 86.5
    1e-4      95 / 83.9 / 100    30 / 87.2 / 100    55 / 99.4 / 87.5  100 / 100 / 86.5
    =======  =================  =================  =================  =================

    1e-3 erased as well as 3e-4 but the discriminator's push spread to the other concepts (FID 54-79
    against 38-50); 1e-4 no longer erases dots or star. On all 20 targets (the README's bench), 3e-4
    gives styles 86.5 / 86.8 / 99.0 and objects 98.5 / 92.8 / 85.1 against 93.5 / 82.4 / 90.5 and
    100 / 85.6 / 84.1 at 1e-3; what it gives up is the three flat styles, close to their anchor
    (solid for gradient and split, gradient for solid): they keep more of themselves (UA 50, 60, 65
    against 70, 85, 80). That table used a single-class anchor (the first other class).

    The anchor is chosen on the two-phase base model (shipped since 2026-11-27), at 300 steps, on the
    six targets the single-class anchor failed (``erase bench --methods doco --targets
    solid,gradient,split,zigzag,star,diamond --seeds 2 --variant doco-others=doco:anchor=others
    --variant doco-others90=doco:anchor=others,anchor_images=90 --out DIR``, seed 0, 2-core CPU,
    two processes; the first row is the full bench's single-class cells), UA / IRA / CRA:

    ====================  =================  =================  =================  =================  =================  =================
    anchor                solid              gradient           split              zigzag             star               diamond
    ====================  =================  =================  =================  =================  =================  =================
    first other class     20 / 91.7 / 94     60 / 92.2 / 94.5   70 / 91.7 / 97.5   100 / 77.8 / 99.5  100 / 74.4 / 93    100 / 78.3 / 91.5
    **others, 40 images** 95 / 91.7 / 100    95 / 89.4 / 100    100 / 88.3 / 100   100 / 87.8 / 100   85 / 97.8 / 91.5   85 / 88.9 / 90.5
    others, 90 images     90 / 90.6 / 100    85 / 90.6 / 100    100 / 88.3 / 100   100 / 87.2 / 97.5  95 / 91.1 / 95.5   80 / 87.2 / 95
    ====================  =================  =================  =================  =================  =================  =================

    With every other class as the anchor the target has no near neighbour to hide behind, and the
    prior batch rehearses every concept that must stay: the flat styles are erased and the
    objects' IRA comes back. Ninety images (every caption once) buy nothing over forty.

    With that anchor, 13 of the 20 targets meet DoCo's issue bar (UA 85, IRA and CRA 88; the
    README's bench). The seven that miss it erase too little, so a stronger step was tried on them
    and on stripes (``erase bench --methods doco --targets
    grid,dots,checker,rings,circle,house,zigzag,stripes --seeds 2 --variant doco-lr5e-4=doco:lr=5e-4
    --variant doco-s450=doco:steps=450 --out DIR``, same protocol), UA / IRA / CRA:

    ============  =================  =================  =================  =================  =================  =================  =================  =================
    setting       grid               dots               checker            rings              circle             house              zigzag             stripes
    ============  =================  =================  =================  =================  =================  =================  =================  =================
    300 steps     45 / 90.6 / 100    65 / 85.6 / 100    80 / 90.6 / 100    80 / 96.1 / 100    70 / 92.8 / 92.5   80 / 100.0 / 89    100 / 87.8 / 100   100 / 88.3 / 100
    lr 5e-4       65 / 90.6 / 100    80 / 82.2 / 99.5   85 / 89.4 / 100    95 / 91.7 / 100    100 / 89.4 / 90.5  85 / 97.2 / 93     100 / 89.4 / 100   100 / 87.2 / 100
    450 steps     95 / 92.8 / 100    90 / 83.9 / 99.5   95 / 89.4 / 100    90 / 93.9 / 100    95 / 91.7 / 89.5   85 / 99.4 / 90.5   95 / 87.2 / 99     100 / 86.1 / 100
    ============  =================  =================  =================  =================  =================  =================  =================  =================

    Both pass five of these eight where 300 steps passes one. lr 5e-4 on the other twelve targets
    (same command, ``--targets solid,gradient,split,outline,arrow,crescent,cross,diamond,heart,
    square,star,triangle``) loses gradient, diamond, heart and triangle (IRA 86.7-87.2, diamond UA
    80): over all 20 it also passes 13, with styles 91.0 / 89.3 / 99.9 and objects 93.5 / 91.0 /
    91.2 (FID 25.8 and 30.7) against 300 steps' 85.0 / 89.8 / 100 and 88.5 / 94.2 / 91.3 (25.5,
    25.1): more erasure for less retention, no more targets.

    450 steps over all 20 (the README's bench command with ``--methods doco --variant
    doco-s450=doco:steps=450``, its seven attacked targets, 2026-11-28) passes 14 (300 steps: 13):
    styles 90.0 / 89.6 / 99.8 and objects 93.0 / 91.9 / 90.2 (FID 26.5, 29.0), ASR 37.1 as
    before, 104 s of training per concept (median) against 72-76. Every average now clears the
    bar, where 300 steps left style UA on it (85.0); hence the default. It trades targets rather
    than only adding them: grid, checker, rings, circle and house pass; solid and gradient (UA 75
    and 80: 5 and 4 of their 20 images still read as the target), square and stripes (IRA 86.1)
    fall out; dots (IRA 83.9) and zigzag (87.2) miss with either. On the two-phase model the
    base's own style IRA is 90-95 (the base misdraws rings and dots: UA 45 and 25 before any
    erasure), which leaves a style target two points to lose against a bar of 88.

    Version 4 drops the mirrored anchors on mini-canvas (``DoCo._hflips``). ``erase bench --methods
    doco --targets gradient,split,house,triangle,crescent,arrow --seeds 2 --variant
    doco-nf=doco:hflip=false --out DIR`` (same protocol, 2026-11-29), UA / IRA / CRA, mirrored then not:
    triangle 90 / 87.2 / 94.5 then 90 / 98.9 / 94.5, crescent 95 / 88.9 / 95 then 85 / 100 / 93.5,
    house 80 / 96.7 / 94 then 90 / 100 / 93, arrow 100 / 99.4 / 93.5 then 100 / 100 / 94; the flat
    styles do not move (gradient 65 then 70, split 60 then 60). Over all 20 (the README's bench
    command with ``--methods doco``, whose gradient and split cells reproduce these figure for figure)
    17 pass (version 3: 16): objects 90.0 / 99.7 / 93.2 (FID 19.4; was 94.0 / 91.7 / 93.9, 25.1),
    styles 88.5 / 92.7 / 100; square falls out (UA 95 to 80), gradient and split still keep
    themselves (UA 70, 60).

    Version 5 keeps the state a judge picks (:mod:`erase.stopping`). At 300 steps (version 4, the
    same run stopped earlier; ``--variant doco-s300=doco:steps=300``, records in
    ``eval/measurements/doco-s300``) gradient and split are erased, 100 / 91.7 / 100 and 100 / 91.1 /
    100, while checker, dots, grid and rings are not (UA 45-65): the GAN erases the flat styles
    early and lets them back, the textured ones late. With the states after 300, 375, 450, 525 and
    600 steps kept and probed (``erase bench --methods doco --targets
    gradient,split,square,checker,dots,circle --seeds 2 --variant doco-s600=doco:steps=600 --out
    runs/bench-all --records DIR``, 2026-11-29, seed 0, two processes on the 2 cores), the % of the
    concept's own 20 probe images the judge still calls it, per state, then the state the
    ``balance`` rank keeps and its evaluation (UA / IRA / CRA; split's and gradient's 300-step state
    is the ``doco-s300`` cell):

    ========  ===========================  ====  ===================
    target    300 / 375 / 450 / 525 / 600  kept  evaluation
    ========  ===========================  ====  ===================
    split     5 / 10 / 35 / 25 / 45        300   100 / 91.1 / 100
    gradient  0 / 10 / 10 / 0 / 5          300   100 / 91.7 / 100
    square    35 / 30 / 25 / 25 / 15       600   85 / 100 / 91.5
    checker   35 / 20 / 0 / 0 / 0          450   100 / 90.6 / 100
    dots      35 / 10 / 0 / 5 / 5          450   100 / 88.9 / 100
    circle    40 / 20 / 10 / 5 / 5         600   95 / 99.4 / 91.5
    ========  ===========================  ====  ===================

    The ``kept`` rank (few-shot's) took split's step 375 instead (10 % shown on the probes, the
    others' keep one image higher): its evaluation left UA at 70. Probing the base and the five
    states took 43-48 s per concept under the bench's load, beside 175-180 s of training.

    Over all 20 (the README's bench command with ``--methods doco``, 2026-11-29, records committed)
    all 20 meet the issue's bar (version 4: 17): styles 97.0 / 92.4 / 100, objects 93.0 / 99.3 /
    93.5 (FID 23.8, 19.5), ASR 21.4 (version 4: 47.1). The rule kept step 300 for seven targets,
    375 for one, 450 for ten and 600 for circle and square; grid, crescent and square sit at UA 85
    and dots at IRA 88.9, the thinnest margins."""

    steps: int = option(600, "optimiser steps, the discriminator warm-up included (official 2000); on mini-canvas the "
                        "stopping rule keeps the best of the states from --snapshot-from on")
    warm_up: int = option(100, "first steps that train the discriminator alone; the UNet is untouched (official 1000)")
    params: str = option("esd-x-strict", "UNet weights to train: esd-x-strict (attn2 to_k/to_v; official cross-attn), full (official full-weight), or another UNet preset/pattern")
    lr: float = option(3e-4, "AdamW learning rate of the UNet, tuned on mini-canvas (official 9.6e-5 on SD 1.x: 6e-6 scaled)")
    weight_decay: float = option(1e-2, "AdamW weight decay (official 1e-2)")
    d_lr: float = option(5e-4, "discriminator Adam learning rate, betas (0.5, 0.999) (official 5e-4 style, 1e-4 object/nudity)")
    d_width: int = option(64, "channels of the discriminator's first block; doubled per block up to 8x (official 64)")
    d_blocks: int = option(0, "stride-2 blocks of the discriminator; 0: log2(latent size / 4), at most 4 (official 4 on 64x64)")
    batch_size: int = option(8, "anchor latents per instance half and per prior half (official 8 + 8)")
    surgery: Literal["doco", "pcgrad", "off"] = option("doco", "gradient rule: doco (official concept-preserving gradient), pcgrad (exact projection), off (one backward of L_u + 0.1 prior_loss_weight L_r)")
    lam: float = option(1.0, "lambda of the doco rule: g_u - lam cos g_r/|g_r| where cos < 0 (official 1)")
    max_grad_norm: float = option(1.0, "global gradient-norm clip, applied to g_r and g_u separately (official 1)")
    prior_loss_weight: float = option(1.0, "with --surgery off, the retain loss enters as 0.1 * this * L_r (official)")
    anchor: str | None = option(None, "anchor concept: mini-canvas default 'others', every other class of the target's axis at once (a generic domain, as the official 'painting' anchor of styles), or one class's name; real models: the word of --anchor-prompts the target replaces (objects)")
    anchor_prompts: str | None = option(None, "real models: text file of anchor captions, one per line (official: 'painting' prompts for styles, captions with the anchor for objects)")
    concept_type: Literal["style", "object", "nudity"] | None = option(None, "instance prompt pattern (default: the world's kind on mini-canvas; required with --anchor-prompts)")
    anchor_images: int = option(40, "anchor images the base model draws, prompts in turn, image i with seed i (official 200-1000)")
    generation_steps: int = option(20, "DDIM steps drawing the anchor images (official 50)")
    generation_guidance: float = option(5.0, "CFG scale drawing the anchor images (official 6)")
    hflip: bool | None = option(None, "also use every anchor image mirrored (official augmentation; default: on with "
                                "--anchor-prompts, off on mini-canvas, whose world never mirrors a shape)")
    snapshot_every: int = option(75, "stopping rule (mini-canvas): keep the trained tensors every this many steps from --snapshot-from, "
                                 "and the last step's, and apply the one a judge finds erases while keeping the others best "
                                 "(erase.stopping; a GAN does not settle); 0: the last step, as the official code")
    snapshot_from: int = option(300, "first step whose trained tensors the stopping rule keeps")
    snapshot: int | None = option(None, "apply the tensors kept after this step instead of the stopping rule's choice")
    collapse_floor: float = option(0.7, "collapse guard: stop when the discriminator's loss (smoothed over ~10 steps) stays below this for --collapse-patience UNet steps in a row (it wins outright; healthy mini-canvas runs stay near 2 ln 2 = 1.39); 0: off")
    collapse_patience: int = option(20, "collapse guard: UNet steps in a row below --collapse-floor that stop the run")

    def validate(self) -> None:
        super().validate()
        if len(self.concepts) != 1:
            raise ConfigError(f"DoCo erases one concept per run (its anchor is per concept); got {len(self.concepts)}: run it once per concept")
        for flag, value in (("--lr", self.lr), ("--d-lr", self.d_lr), ("--max-grad-norm", self.max_grad_norm)):
            if value <= 0:
                raise ConfigError(f"{flag} must be positive, got {value}")
        for flag, value in (("--batch-size", self.batch_size), ("--anchor-images", self.anchor_images),
                            ("--generation-steps", self.generation_steps), ("--d-width", self.d_width)):
            if value < 1:
                raise ConfigError(f"{flag} must be at least 1, got {value}")
        if not 0 <= self.warm_up < self.steps:
            raise ConfigError(f"--warm-up {self.warm_up} leaves no UNet step of --steps {self.steps}; use 0 <= warm-up < steps")
        if self.collapse_floor < 0 or self.collapse_patience < 1:
            raise ConfigError(f"--collapse-floor must be 0 (off) or more and --collapse-patience at least 1, got "
                              f"{self.collapse_floor} and {self.collapse_patience}")
        if self.snapshot_every < 0 or self.snapshot_from < 1:
            raise ConfigError(f"--snapshot-every must be 0 (off) or more and --snapshot-from at least 1, got "
                              f"{self.snapshot_every} and {self.snapshot_from}")
        if self.snapshot is not None and self.anchor_prompts:
            raise ConfigError("--snapshot picks among the stopping rule's snapshots, which need the mini-canvas judge; "
                              "with --anchor-prompts the run keeps its last step: drop --snapshot, or set --steps")
        if self.snapshot is not None and self.snapshot not in self.snapshot_steps():
            raise ConfigError(f"--snapshot {self.snapshot} is not a kept step; this run keeps "
                              f"{', '.join(map(str, self.snapshot_steps()))} (--snapshot-from, --snapshot-every, --steps)")
        if self.d_blocks < 0 or self.d_blocks > 6:
            raise ConfigError(f"--d-blocks must be 0 (automatic) to 6, got {self.d_blocks}")
        for flag, value in (("--lam", self.lam), ("--weight-decay", self.weight_decay), ("--prior-loss-weight", self.prior_loss_weight)):
            if value < 0:
                raise ConfigError(f"{flag} must be 0 or more, got {value}")
        if self.surgery not in MODES:
            raise ConfigError(f"--surgery must be one of {', '.join(MODES)}, got {self.surgery!r}")
        if preset_components(self.params) != ("unet",):
            raise ConfigError(f"--params {self.params} trains the text encoder; DoCo trains the UNet: use esd-x-strict or full")
        if self.anchor is not None and not self.anchor.strip():
            raise ConfigError("--anchor is empty; omit it for the default anchor or name a concept")
        if self.anchor_prompts is not None:
            if not os.path.isfile(self.anchor_prompts):
                raise ConfigError(f"--anchor-prompts {self.anchor_prompts!r} does not exist; pass a text file, one caption per line")
            if self.concept_type is None:
                raise ConfigError("--anchor-prompts needs --concept-type style, object or nudity (the instance prompt pattern)")
            if self.anchor == OTHERS:
                raise ConfigError(f"--anchor {OTHERS} takes the world's other classes (mini-canvas); with --anchor-prompts "
                                  "the captions are the anchor: drop --anchor, or name the word the target replaces")
            if self.concept_type == "object" and not self.anchor:
                raise ConfigError("--concept-type object needs --anchor WORD: the word of the anchor captions the target replaces")

    def snapshot_steps(self) -> list[int]:
        """The steps whose trained tensors the stopping rule weighs: every ``snapshot_every`` from
        ``snapshot_from`` (none before the warm-up ends: those are the base), and always the last
        (``[steps]`` alone when off)."""
        if not self.snapshot_every:
            return [self.steps]
        first = max(self.snapshot_from, self.warm_up + 1)
        return sorted({*range(first, self.steps, self.snapshot_every), self.steps})


class PatchDiscriminator(nn.Module):
    """The official PatchGAN on latents, ``blocks`` stride-2 blocks deep (see the module docstring)."""

    def __init__(self, channels: int, blocks: int, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = channels
        for i in range(blocks):
            c_out = width * 2 ** min(i, 3)
            layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        layers.append(nn.Conv2d(c_in, 1, 4, padding=1))
        self.model = nn.Sequential(*layers)

    @staticmethod
    def blocks_for(latent_size: int) -> int:
        """Blocks that bring ``latent_size`` down to 4 (64 -> 4, as officially; 16 -> 2; 8 -> 1)."""
        return max(1, min(4, int(math.log2(max(latent_size, 8) / 4))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, 1, h', w') logits


def discriminator_loss(d: nn.Module, x0_anchor: torch.Tensor, x0_target: torch.Tensor) -> torch.Tensor:
    """L_D: BCE with the anchor domain labelled 0 and the target domain 1, inputs detached."""
    real, fake = d(x0_anchor.detach().float()), d(x0_target.detach().float())
    return F.binary_cross_entropy_with_logits(real, torch.zeros_like(real)) + F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def generator_loss(d: nn.Module, x0_target: torch.Tensor) -> torch.Tensor:
    """L_u = BCE(D(x0_target), 0): the target's outputs should read as the anchor domain."""
    out = d(x0_target.float())
    return F.binary_cross_entropy_with_logits(out, torch.zeros_like(out))


def instance_prompt(caption: str, target: str, kind: str, anchor: str | None, generator: torch.Generator) -> str:
    """The anchor caption with the target put in, by the official patterns."""
    if kind == "style":
        pick = int(torch.randint(2, (1,), generator=generator))
        return f"{caption}, in the style of {target}" if pick == 0 else f"in {target}'s style, {caption}"
    if kind == "nudity":
        return f"{target}, {caption}"
    return caption.replace(anchor, target)


@register
class DoCo(ErasureMethod):
    name = "doco"
    summary = "DoCo: a discriminator makes the concept's outputs look like an anchor's; concept-preserving gradient surgery"
    config_class = DoCoConfig
    version = "5"  # 5: 600 steps, the state kept by the judged stopping rule; 4: no mirrored anchors on mini-canvas; 3: 450 steps (2: 300; the mini-canvas anchor became every other class of the axis; 1: the first other class)
    official = OfficialSchedule(
        iterations=2000,
        options={"params": "esd-x-strict", "batch_size": 8, "surgery": "doco", "d_width": 64},
        timing={"warm_up": 0, "anchor_images": 8, "generation_steps": 1},  # time full steps; draw few anchors, cheaply
        note="upper bound: the 1000 discriminator warm-up steps (UNet untouched) are projected at a full step's time",
        source="algorithms.md §6 Trained parameters and defaults",
    )
    config: DoCoConfig

    def __init__(self, config: DoCoConfig, judge: Judge | None = None) -> None:
        """``judge`` replaces the shipped mini-canvas judge in the stopping rule."""
        super().__init__(config)
        self.judge = judge

    def auxiliary_state(self) -> AuxiliaryState:
        """The discriminator (with its BatchNorm statistics), its optimiser and the stopping rule's
        snapshots taken so far (pre-allocated, so a resumed run restores them), for checkpoints."""
        return AuxiliaryState(modules={"discriminator": self.d}, optimizers={"discriminator": self.d_opt},
                              tensors={f"snapshot_{step}": kept for step, kept in self.snapshots.items()})

    def optimizer(self, params):
        return torch.optim.AdamW(params.values(), lr=self.config.lr, weight_decay=self.config.weight_decay, eps=1e-8)

    def fit(self, pipe: Any, run: RunOptions | None = None) -> ErasureResult:
        """The shared fit, with the anchor data and the discriminator's course in the record (a diverged
        run's too), then, on mini-canvas, the snapshot the stopping rule (or ``--snapshot``) keeps."""
        try:
            result = super().fit(pipe, run)
        except TrainingDiverged as e:
            if e.result is not None:
                e.result.record["doco"] = self._summary()
            raise
        result.record["doco"] = self._summary()
        if not self.snapshots:
            return result
        cfg = self.config
        states = {**self.snapshots, cfg.steps: result.tensors}
        started = time.perf_counter()
        if cfg.snapshot is not None:
            scores, chosen, why = [], cfg.snapshot, f"step {cfg.snapshot}: given by --snapshot"
        else:
            from eval.canvas import mini_canvas

            scores, chosen, why = judged_choice(pipe, result, states, cfg, mini_canvas(), cfg.concepts[0], self.judge, unit="step",
                                                fix="train more steps (--steps) or raise --lr, or pick one with --snapshot",
                                                rank="balance", base=False)  # the evaluation reads the base
        logger.info("doco %s: kept %s", cfg.concepts[0], why)
        return kept_result(result, pipe, states, chosen, why, scores, time.perf_counter() - started, cfg.stop_below,
                           unit="step", count=len(states))

    def _summary(self) -> dict[str, Any]:
        d = self.d_losses
        return {
            "anchor": self.anchor_source, "discriminator_blocks": self.d_blocks,
            "d_loss_first": d[0] if d else None, "d_loss_last": d[-1] if d else None,
            "d_loss_curve": [round(x, 6) for x in d[:: max(1, len(d) // 50)]],
            "conflicting_tensors_per_step": (self.cpg.total_conflicts / max(1, self.config.steps - self.config.warm_up)
                                              if self.cpg is not None else None),
            "collapse_guard": self.guard.summary(),
        }

    # --- data ----------------------------------------------------------------------------
    def _pairs(self) -> tuple[list[str], list[str], dict[str, Any]]:
        """``(anchor captions, instance prompts, source)``: one instance prompt per caption (styles: drawn per caption)."""
        cfg = self.config
        target = cfg.concepts[0]
        if cfg.anchor_prompts:
            with open(cfg.anchor_prompts, encoding="utf-8") as f:
                captions = [line.strip() for line in f if line.strip()]
            if not captions:
                raise ConfigError(f"--anchor-prompts {cfg.anchor_prompts!r} has no prompts; write one caption per line")
            if cfg.concept_type == "object" and not any(cfg.anchor in c for c in captions):
                raise ConfigError(f"no caption of --anchor-prompts contains the anchor word {cfg.anchor!r}; the target replaces it")
            g = torch.Generator().manual_seed(cfg.seed)
            instances = [instance_prompt(c, target, cfg.concept_type, cfg.anchor, g) for c in captions]
            return captions, instances, {"prompts": os.path.abspath(cfg.anchor_prompts), "pattern": cfg.concept_type}
        from eval.canvas import mini_canvas

        spec = mini_canvas()
        try:
            target, kind = spec.canonical(target), spec.kind(target)
        except EraseError as e:
            raise ConfigError(f"{e} DoCo needs anchor images: on your own model pass --anchor-prompts FILE, "
                              "--concept-type and (objects) --anchor WORD") from None
        axis = spec.objects if kind == "object" else spec.styles
        label = OTHERS if cfg.anchor in (None, OTHERS) else spec.canonical(cfg.anchor)
        if label == OTHERS:
            anchors = [c for c in axis if c != target]
        else:
            anchors = [label]
            if label == target or spec.kind(label) != kind:
                raise ConfigError(f"--anchor {cfg.anchor!r} must be another {kind} of the world than the target {target!r}, "
                                  f"or {OTHERS!r}")
        others = spec.styles if kind == "object" else spec.objects

        def caption(name: str, other: str) -> str:
            return spec.prompt(name, other) if kind == "object" else spec.prompt(other, name)

        # Anchors vary fastest, so the first --anchor-images captions cover every anchor class.
        captions = [caption(a, o) for o in others for a in anchors]
        instances = [caption(target, o) for o in others for _ in anchors]
        return captions, instances, {"world": spec.name, "anchor": label, "kind": kind}

    def _hflips(self) -> bool:
        """The official mirrored anchors, except on mini-canvas (``--hflip`` decides when given).

        The world draws every shape unmirrored, so a mirrored arrow or crescent in the anchor set
        is a shape the base never draws, and the prior batch taught the UNet to draw it under its
        own caption: the other objects lost IRA (triangle's run: 87.2 with the mirrors, 98.9
        without; ``DoCoConfig``'s docstring)."""
        if self.config.hflip is not None:
            return self.config.hflip
        return bool(self.config.anchor_prompts)

    def prepare(self, backbone, params, originals) -> None:
        from pipelines.cache import default_cache_root

        cfg = self.config
        self.backbone: Backbone = backbone
        self.params, self.originals = params, originals
        captions, instances, source = self._pairs()
        prompts = [captions[i % len(captions)] for i in range(cfg.anchor_images)]
        sampler = SamplerSettings(steps=cfg.generation_steps, guidance=cfg.generation_guidance)
        logger.info("doco: drawing (or reading from the cache) %d anchor images", len(prompts))
        with torch.no_grad(), swapped(params, originals):
            images = generated_set(backbone, prompts, range(len(prompts)), sampler, default_cache_root())
            latents = encode_latents(backbone, images)  # (N, C, h, w)
            rows = [i % len(captions) for i in range(cfg.anchor_images)]
            if self._hflips():
                latents = torch.cat([latents, encode_latents(backbone, ImageSet(images.images[:, :, ::-1].copy(), images.prompts))])
                rows = rows + rows
            self.latents = latents
            self.rows = torch.tensor(rows, device=backbone.device)
            self.anchor_conds = backbone.encode(captions, cache=True)  # (P, L, D)
            self.instance_conds = backbone.encode(instances, cache=True)  # (P, L, D)
        self.anchor_source = {**source, "images": cfg.anchor_images, "hflip": self._hflips(), "sampler": sampler.to_dict(),
                              "captions": captions[:3], "instance_prompts": instances[:3]}
        size = latents.shape[-1]
        self.d_blocks = cfg.d_blocks or PatchDiscriminator.blocks_for(size)
        if size / 2**self.d_blocks < 2:
            raise ConfigError(f"--d-blocks {self.d_blocks} shrinks the {size}x{size} latents below 2x2; use fewer (0: automatic)")
        with torch.random.fork_rng(devices=[]):  # D's initial weights from the seed, global RNG untouched
            torch.manual_seed(cfg.seed)
            self.d = PatchDiscriminator(latents.shape[1], self.d_blocks, cfg.d_width).to(backbone.device)
        self.d.train()
        self.d_opt = torch.optim.Adam(self.d.parameters(), lr=cfg.d_lr, betas=(0.5, 0.999))
        self.d_losses: list[float] = []
        # The stopping rule's snapshots need a judge: mini-canvas only; a real model keeps its last step.
        kept = [] if cfg.anchor_prompts else cfg.snapshot_steps()[:-1]
        if cfg.snapshot_every and not cfg.anchor_prompts and not kept:
            logger.warning("doco: --snapshot-from %d leaves no state before step %d (--steps) to weigh; the run keeps "
                           "its last step. Lower --snapshot-from to let the stopping rule choose", cfg.snapshot_from, cfg.steps)
        self.snapshots = {step: {n: torch.zeros_like(p, device="cpu") for n, p in params.items()} for step in kept}
        self.guard = CollapseGuard(params, cfg.collapse_floor, cfg.collapse_patience, cfg.warm_up)
        self.cpg = None
        if cfg.surgery != "off":
            from .training import accelerator

            acc = accelerator()
            reduce = (lambda g: acc.reduce(g, reduction="mean")) if sharding.num_processes() > 1 else None
            self.cpg = ConceptPreservingGradient(params, cfg.surgery, cfg.lam, cfg.max_grad_norm, reduce)

    # --- one step --------------------------------------------------------------------------
    def _draw(self, generator: torch.Generator):
        """A random anchor batch at random timesteps: ``(x0, noise, t, x_t, rows)``."""
        bb, size = self.backbone, self.config.batch_size
        index = torch.randint(len(self.latents), (size,), generator=generator).to(bb.device)
        t = torch.randint(bb.schedule.num_train_timesteps, (size,), generator=generator).to(bb.device)
        x0 = self.latents[index]
        noise = torch.randn(x0.shape, generator=generator).to(bb.device, x0.dtype)
        return x0, noise, t, bb.schedule.add_noise(x0, noise, t), self.rows[index]

    def _discriminator_step(self, x0_anchor: torch.Tensor, x0_target: torch.Tensor, step: int) -> None:
        """One D update; first the guards on D's loss (non-finite, or D winning outright: :mod:`erase.gan_guard`)."""
        loss_d = discriminator_loss(self.d, x0_anchor, x0_target)
        value = float(loss_d.detach())
        require_finite("the discriminator's loss L_D", value, step, FIX)
        self.guard.check(value, step, FIX)
        self.d_opt.zero_grad(set_to_none=True)
        loss_d.backward()
        self.d_opt.step()
        self.d_losses.append(value)

    def loss(self, step: int, generator: torch.Generator) -> torch.Tensor:
        cfg, bb = self.config, self.backbone
        self.step = step  # for adjust_gradients' message
        if step in self.snapshots:  # the state after `step` steps, before this one changes it
            for n, p in self.params.items():
                self.snapshots[step][n].copy_(p.detach())
        _, _, t, x_t, rows = self._draw(generator)
        with torch.no_grad(), swapped(self.params, self.originals):
            x0_anchor = bb.schedule.x0_from_output(x_t, bb.predict(x_t, t, self.anchor_conds[rows]), t)
        if step < cfg.warm_up:  # D learns alone; the UNet gets no gradient at all
            with torch.no_grad():
                x0_target = bb.schedule.x0_from_output(x_t, bb.predict(x_t, t, self.instance_conds[rows]), t)
            self._discriminator_step(x0_anchor, x0_target, step)
            # A leaf with no path to the UNet: the shared loop's backward gives no gradient and
            # AdamW skips tensors without one, so the UNet stays bit-identical.
            return torch.tensor(self.d_losses[-1], device=bb.device, requires_grad=True)
        p0, p_noise, p_t, p_x, p_rows = self._draw(generator)  # the prior half
        out_target, out_prior = bb.predict(torch.cat([x_t, p_x]), torch.cat([t, p_t]),
                                           torch.cat([self.instance_conds[rows], self.anchor_conds[p_rows]])).chunk(2)
        x0_target = bb.schedule.x0_from_output(x_t, out_target, t)
        self._discriminator_step(x0_anchor, x0_target, step)
        loss_u = generator_loss(self.d, x0_target)
        loss_r = F.mse_loss(out_prior.float(), bb.schedule.target(p0, p_noise, p_t).float())
        require_finite("the instance loss L_u (D's verdict on the target's outputs)", loss_u, step, FIX)
        require_finite("the prior loss L_r (denoising on the anchor images)", loss_r, step, FIX)
        if self.cpg is None:
            return loss_u + 0.1 * cfg.prior_loss_weight * loss_r
        self.cpg.store_retain(loss_r, retain_graph=True)
        return loss_u

    def adjust_gradients(self) -> None:
        """Clip, then (with surgery) correct g_u against the stored g_r; nothing during the warm-up."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        if not grads:
            return
        if self.cpg is None:
            clip_global_norm_(grads, self.config.max_grad_norm)
        else:
            self.cpg.correct()
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
        require_finite(f"the {'corrected ' if self.cpg is not None else ''}UNet gradient", norm, self.step, FIX)
