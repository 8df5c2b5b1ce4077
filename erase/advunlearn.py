"""AdvUnlearn (OPTML-Group/AdvUnlearn, NeurIPS 2024): ESD on the text encoder against an attacker.

A min-max game (``shared/docs/algorithms.md`` §3). The defender trains the text encoder
``TE_phi`` (``te-full`` by default; token and position embeddings never) to minimise

    L(phi) = MSE(eps(x_t, t, TE_phi(delta + c)), eps_o(x_t,t,"") - eta (eps_o(x_t,t,TE_o(c)) - eps_o(x_t,t,"")))
           + gamma * MSE(eps(x_r, t, TE_phi(c_r)), eps_o(x_r, t, TE_o(c_r)))        retain prompts c_r

where ``delta + c`` is the concept's prompt with the attacker's word embeddings inserted
(``prefix_k``: right after SOT) and ``eps_o``/``TE_o`` the original model. The attacker
(:class:`attacks.softprompt.SoftPromptAttack`) looks for the ``delta`` that makes the current
model give back the original model's conditional noise for the concept,
``min_delta MSE(eps(x_t, t, TE_phi(delta + c)), eps_o(x_t, t, TE_o(c)))``, in ``attack_steps``
Adam steps, every ``attack_every`` iterations once ``warmup`` iterations of plain ESD (the clean
prompt, no attacker) are done. ``x_t`` is drawn as in ESD: ``k ~ U{0..K-1}`` DDIM steps with CFG
``start_guidance`` from fresh noise, conditioned on the *original* text encoder's ``c`` (the
official code encodes the concept once, with the original encoder); the retain latents ``x_r``
with the same ``k``, conditioned on their own prompts, in the same sampler call.

Retain prompts (:mod:`erase.retain`, shared with few-shot's retain term): on mini-canvas the
world's prompts of every pair that does not name the target under any of its names; on real
models "a photo of a {COCO object}" (``retain_coco_object.txt``, 80 classes), with the filtered
variant (default) dropping prompts that share a word with the concept; ``--retain-prompts FILE``
replaces both. ``retain_batch`` prompts are drawn per
iteration without replacement, the pool reshuffled when exhausted (as the official loader).

Faithfulness notes and deviations:
  * The official attacker never clears its gradients: ``attack_accumulate_grads`` (default on).
  * The official attacker redraws a fresh partial DDIM sample at *every* attack step, which
    dominates its cost. ``attack_resample=False`` (our mini-canvas default) reuses the
    iteration's ``x_t`` for all attack steps; ``True`` (the ``official`` preset) redraws.
    Either way the attack's objective is the same expectation over ``(k, z_T)``.
  * The forwards are batched: one sampler call for the concept and retain latents, one frozen
    UNet call for every target, one trained UNet call for the adversarial and retain
    predictions. Same arithmetic as separate calls.
  * ``retain_train='iter'`` (separate retain optimiser steps) is not implemented; ``reg`` is
    the mode the official README uses.
  * The target is ESD's paper/CompVis form (unconditional base), as AdvUnlearn's code has it.
  * ``preset="official"`` sets the official SD 1.x schedule on every field still at its
    default (1000 iterations, lr 1e-5, 30 attack steps redrawn each step, one adversarial
    embedding, warm-up 200, gamma 0.3 as in the README, retain batch 5); flags given explicitly win.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from attacks.insertion import INSERTIONS
from attacks.softprompt import SoftPromptAttack
from pipelines.backbone import Backbone
from pipelines.errors import ConfigError
from pipelines.params import swapped
from pipelines.sampling import sample_until

from .config import MethodConfig, option
from .esd import negatively_guided
from .method import ErasureMethod
from .official import OfficialSchedule
from .registry import register
from .retain import encode_pool, retain_pool

logger = logging.getLogger(__name__)

#: The official SD 1.x schedule (README and code defaults), applied by ``preset="official"``.
OFFICIAL = {
    "steps": 1000, "lr": 1e-5, "ddim_steps": 50, "warmup": 200, "attack_every": 1, "attack_steps": 30,
    "attack_lr": 1e-3, "attack_k": 1, "attack_resample": True, "retain_weight": 0.3, "retain_batch": 5, "negative_guidance": 1.0,
}


@dataclass
class AdvUnlearnConfig(MethodConfig):
    """AdvUnlearn settings. The defaults are a CPU-sized schedule for the shipped mini-canvas
    model (120 iterations, 20 warm-up, an attacker of 3 word embeddings and 15 steps reusing the
    iteration's x_t, 20 DDIM steps as mini-canvas evaluates, lr 1e-3 as ESD's tuned mini-canvas
    value), with the retain term, eta and the attacker chosen by the sweeps below. The first was
    run on the first-phase base model. ``erase bench --methods advunlearn --targets
    heart,gradient,star --seeds 2 --method-config advunlearn=FILE`` (seed 0, 200 images per
    target, 2-core CPU shared with other jobs), UA / IRA / CRA for heart, gradient, star:

    =========================================  ===============  ===============  ===============
    gamma, retain prompts, eta, iterations      heart            gradient         star
    =========================================  ===============  ===============  ===============
    gamma 0.3, 2 retain prompts, eta 1, 100     75 / 91 / 62     100 / 88 / 61    95 / 74 / 82
    gamma 1, 2 retain prompts, eta 1, 100       75 / 98 / 89      90 / 87 / 84    95 / 99 / 82
    gamma 1, 2 prompts, eta 1, 100, lr 5e-4     75 / 100 / 89     90 / 78 / 100   95 / 93 / 88
    gamma 1, 4 retain prompts, eta 1, 100       80 / 100 / 91     95 / 88 / 80    95 / 100 / 88
    gamma 1, 4 prompts, eta 1, 150              80 / 100 / 90    100 / 89 / 86    95 / 100 / 89
    gamma 1, 4 prompts, eta 2, 100             100 / 100 / 92    100 / 74 / 70   (not run)
    **gamma 1, 4 prompts, eta 1.5, 120**        85 / 98 / 81      95 / 86 / 96    85 / 100 / 88
    =========================================  ===============  ===============  ===============

    gamma 1 is the official code's value (its README says 0.3): with 0.3 the text encoder, which
    every prompt goes through, lost the other kind's concepts (CRA 61). Training took 135-165 s
    per concept with the settings chosen then. ``preset="official"`` gives the official SD 1.x schedule.

    On the two-phase base model (shipped since 2026-11-27) those settings lose style IRA on a
    few targets. ``erase bench --methods advunlearn --targets split,zigzag,stripes,square
    --seeds 2 --variant adv-g2=advunlearn:retain_weight=2 --variant
    adv-eta1=advunlearn:negative_guidance=1.0 --out DIR`` (same protocol, 3 processes on the 2 cores):

    ===========================  ===============  ===============  ===============  ===============
    UA / IRA / CRA               split            zigzag           stripes          square
    ===========================  ===============  ===============  ===============  ===============
    gamma 1, eta 1.5 (then)      100 / 68 / 94    100 / 72 / 100   85 / 76 / 100    75 / 88 / 81
    gamma 2                      95 / 81 / 100    100 / 79 / 100   90 / 81 / 99     55 / 100 / 84
    eta 1                        95 / 79 / 100    100 / 84 / 70    90 / 77 / 95     85 / 90 / 94
    ===========================  ===============  ===============  ===============  ===============

    No row clears UA 85 with IRA and CRA 80 on all four: gamma 2 keeps the other styles but
    lets square back, eta 1 wrecks zigzag's CRA.

    Those settings did not resist UnlearnDiffAtk better than ESD (the README's bench: ASR 32.9
    against 27.1). Their inner attacker is weaker than the attack it is meant to stand for: one
    word embedding and 5 steps, where UnlearnDiffAtk inserts 3 tokens. A stronger inner attacker
    (``erase bench --methods advunlearn --targets solid,split,circle,square --seeds 2 --attack
    --attack-targets solid,split,circle,square --variant adv-k3=advunlearn:attack_k=3 --variant
    adv-k3s15=advunlearn:attack_k=3,attack_steps=15 --out DIR``; the last two rows by ``--variant
    adv-k3s15g2=advunlearn:attack_k=3,attack_steps=15,retain_weight=2 --variant
    adv-k3s15g2r8=advunlearn:attack_k=3,attack_steps=15,retain_weight=2,retain_batch=8``; same
    protocol, the bench's attack budget, 10 prompts per target, 2026-11-28), UA / IRA / CRA, then
    ASR (%):

    ==========================  ======================  ======================  ======================  ======================
    setting                     solid                   split                   circle                  square
    ==========================  ======================  ======================  ======================  ======================
    k 1, 5 steps (version 1)    95 / 86.7 / 99.5, 60    100 / 67.8 / 94, 40     90 / 86.7 / 75, 40      75 / 87.8 / 80.5, 30
    k 3                         90 / 81.7 / 100, 10     90 / 68.3 / 82, 20      95 / 80.0 / 85, 50      100 / 90.0 / 88.5, 20
    k 3, 15 steps               90 / 78.3 / 99.5, 0     100 / 73.3 / 99.5, 0    100 / 72.8 / 83, 30     100 / 88.3 / 82, 10
    k 3, 15 steps, gamma 2      90 / 72.2 / 99.5, 30    85 / 80.6 / 94, 40      85 / 87.2 / 70.5, 30    85 / 91.7 / 90, 20
    **k 3, 15, gamma 2, 8 r.**  90 / 82.2 / 100, 60     100 / 83.3 / 92, 10     90 / 87.8 / 88.5, 20    95 / 90.6 / 93, 10
    ESD (for the ASR)           ASR 10                  ASR 40                  ASR 40                  ASR 50
    ==========================  ======================  ======================  ======================  ======================

    Three embeddings and 15 steps bring the ASR on these four from 42.5 to 10 (ESD: 35), and
    erase square fully, for 120-130 s of training per concept against 82; they cost IRA (73-88,
    the bar is 80). A retain weight of 2 alone does not give it back (the ``gamma 2`` row: circle's
    CRA 70.5); with 8 retain prompts per iteration instead of 4 (the bold row, ``retain_batch=8``;
    150-160 s) all four clear UA 85 with IRA and CRA 80. Solid's ASR moves between 0 and 60 from
    row to row: ten prompts, one seed.

    Those are the defaults since 2026-11-28 (version 2). Over all 20 targets (the README's bench
    command, its seven attacked targets), against the earlier defaults (1 embedding, 5 steps,
    gamma 1 over 4 prompts): 16 targets clear UA 85 with IRA and CRA 80 (was 13; ESD 17); styles
    96.0 / 85.8 / 96.2 (was 94.0 / 83.1 / 95.5), objects 91.0 / 91.5 / 91.7 (89.5 / 91.5 / 89.0);
    ASR 22.9 (was 32.9; ESD 27.1). The attack is halved against ESD on split, circle, square and
    star (10, 20, 10, 10 against 40, 40, 50, 40), not on the flat styles solid and gradient (60
    and 40 against ESD's 10) nor on triangle (10 against 0). Training took 179 s per style and
    195 per object (median; at most 280) on the bench's loaded 2 cores. Still missing: grid (UA
    75), diamond (80), house (IRA 79.4), stripes (IRA 77.2).

    Against ESD at 20 attacked prompts (``erase bench --methods esd,advunlearn --targets
    solid,circle,gradient --seeds 2 --attack --attack-targets solid,circle,gradient --attack-prompts
    20 --variant adv-eta2=advunlearn:negative_guidance=2.0 --variant adv-s180=advunlearn:steps=180
    --variant adv-x=advunlearn:params=esd-x --out runs/asr20 --records
    eval/measurements/advunlearn-asr20``, seed 0, two processes on the 2 cores, 2026-11-28; records
    committed), UA / IRA / CRA, then ASR (%):

    ================  ========================  ========================  ========================
    setting           solid                     circle                    gradient
    ================  ========================  ========================  ========================
    defaults          90 / 93.9 / 90.0, 35      85 / 92.2 / 93.5, 25      95 / 95.6 / 86.5, 10
    eta 2             95 / 95.6 / 97.5, 20      85 / 92.2 / 95.5, 20      100 / 93.9 / 80.5, 20
    180 iterations    95 / 96.1 / 100, 55       (stopped)                 (stopped)
    UNet esd-x        85 / 82.8 / 98.5, 40      80 / 91.7 / 94.5, 35      100 / 90.0 / 96.0, 5
    ESD               100 / 91.7 / 99.5, 10     85 / 98.3 / 94.5, 40      100 / 95.0 / 100, 15
    ================  ========================  ========================  ========================

    No setting halves ESD's ASR on solid, where ESD itself erases every image (UA 100, no prompt
    shows it before the attack) and the attack wins on 2 of 20. The attack's wins on AdvUnlearn
    (``runs/asr20/cells/advunlearn/solid/attack/adversarial_prompts.jsonl``) are nonsense tokens
    ("wara ralmoist", "payer uwu"), found in the first stages: seeds whose image is close to solid
    already, since the text encoder leaves more of the concept at the border than ESD's UNet edit
    does (UA 90 against 100). Eta 2 halves ESD on circle
    (20 against 40) but costs gradient's CRA (80.5) and 250 s of training under load; training the
    UNet's cross-attention instead halves it on gradient only. The defaults stay.

    The official README's random start for every attack (``--variant
    adv-rand=advunlearn:attack_init=random``, same command and protocol, 2026-11-29; stopped after
    solid, record committed) did not help either: solid 90 / 92.8 / 88.0, ASR 45 (2 of 20 prompts
    show solid unattacked, the attack recovers 7 more).

    At 60 attacked prompts (the README's AdvUnlearn paragraphs; records in
    ``eval/measurements/advunlearn-asr60``, 2026-11-29) on eight targets, the bar (ASR at most half
    of ESD's, UA 85, IRA and CRA 80) holds on split, triangle, star and house, not on solid (25.0
    against ESD's 16.7), gradient (15.0 against 11.7), circle (33.3 against 35.0) nor square (IRA
    74.4). This text encoder stacked on ESD's UNet (``erase stack``, :mod:`pipelines.stack`) holds
    it on six, solid (0.0) and gradient (5.0) among them, not on circle (25.0) nor square (IRA
    68.9); the defaults here are unchanged.

    Training both in one game does not do it. ``--params te-full+esd-x`` (the text encoder and
    the UNet's cross-attention against the same attacker; ``erase bench --methods esd --targets
    solid,circle,gradient --seeds 2 --attack --attack-targets solid,circle,gradient --attack-prompts
    60 --attack-option seeds=6 --variant adv-tex=advunlearn:params=te-full+esd-x --variant
    adv-tex3=advunlearn:params=te-full+esd-x,unet_lr=0.0003 --out runs/asr60 --records
    eval/measurements/advunlearn-joint``, 2026-11-29), UA / IRA / CRA, then ASR (%) on 60 prompts:

    ======================  ======================  ======================  ======================
    setting                 solid                   circle                  gradient
    ======================  ======================  ======================  ======================
    UNet lr 1e-3            95 / 87.8 / 100, 48.3   85 / 83.3 / 87.0, 31.7  100 / 78.3 / 98.5, 18.3
    UNet lr 3e-4 (ESD's)    90 / 92.8 / 100, 40.0   85 / 90.6 / 78.5, 26.7  100 / 94.4 / 95.5, 13.3
    ESD; the stack          16.7; 0.0               35.0; 25.0              11.7; 5.0
    ======================  ======================  ======================  ======================

    Worse than ESD alone on solid, where the stack reaches 0: the UNet's edit has to be ESD's own,
    made on the clean prompt, for the text encoder's to add to it. Training took 164-217 s."""

    preset: Literal["mini-canvas", "official"] = option(
        "mini-canvas", "mini-canvas (these defaults) or official (SD 1.x: 1000 iterations, lr 1e-5, 30 attack steps "
        "redrawn each step, 1 adversarial embedding, warm-up 200, gamma 0.3, retain batch 5, eta 1) for every option left at its default")
    steps: int = option(120, "outer iterations (official 1000)")
    params: str = option("te-full", "weights to train: te-full (every text-encoder layer, never the embeddings; "
                         "official text_encoder_full), te-ffn, te-attn, te-layers:I-J, a UNet preset (esd-x, esd-u), "
                         "or both joined with + (te-full+esd-x)")
    lr: float = option(1e-3, "Adam learning rate of the defender (official 1e-5 for SD 1.x's CLIP-L)")
    unet_lr: float | None = option(None, "Adam learning rate of the UNet tensors when --params trains them too "
                                   "(te-full+esd-x); default: --lr", keyed=False)
    negative_guidance: float = option(1.5, "eta: strength of the push away from the concept (official 1; mini-canvas 1.5, see the sweep above)")
    start_guidance: float = option(3.0, "CFG scale used to sample x_t (official 3)")
    ddim_steps: int = option(20, "DDIM steps of the schedule x_t is sampled on (official 50; mini-canvas evaluates with 20)")
    warmup: int = option(20, "iterations of plain ESD on the clean prompt before the attacker starts (official 200)")
    attack_every: int = option(1, "run the attacker every N iterations; in between the latest embeddings are reused (official 1)")
    attack_steps: int = option(15, "attacker steps per attack (official 30)")
    attack_lr: float = option(1e-2, "attacker Adam learning rate (official 1e-3)")
    attack_k: int = option(3, "number of adversarial word embeddings (official adv_prompt_num 1; mini-canvas 3, as many as UnlearnDiffAtk inserts)")
    attack_insertion: Literal["prefix_k", "suffix_k", "mid_k", "insert_k", "replace_k", "add"] = option(
        "prefix_k", "where the embeddings go in the prompt (official default prefix_k)")
    attack_init: Literal["latest", "random"] = option("latest", "start each attack from the previous embeddings (official code) "
                                                     "or from random word embeddings (official README)")
    attack_update: Literal["pgd", "fast_at"] = option("pgd", "pgd: plain Adam steps; fast_at: sign of the gradient, then Adam")
    attack_accumulate_grads: bool = option(True, "never clear the attacker's gradients between its steps (the official "
                                           "behaviour); --no-attack-accumulate-grads clears them")
    attack_resample: bool = option(False, "draw a fresh x_t for every attacker step (official; costly) instead of reusing "
                                   "the iteration's x_t")
    retain_weight: float = option(2.0, "gamma: weight of the retain term (official code 1.0, its README 0.3; mini-canvas 2); 0 turns it off")
    retain_batch: int = option(8, "retain prompts per iteration (official 5; mini-canvas 8); each costs a partial DDIM sample")
    retain_prompts: str | None = option(None, "text file of retain prompts, one per line (default: mini-canvas: the world's "
                                        "other prompts; else 'a photo of a {COCO object}')")
    retain_filter: bool = option(True, "drop retain prompts that share a word with the concept (the official filtered set)")

    def validate(self) -> None:
        if self.preset == "official":
            self.apply_preset(OFFICIAL)
        super().validate()
        for name in ("lr", "attack_lr", "ddim_steps", "attack_every", "attack_steps", "attack_k", "retain_batch"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.unet_lr is not None and self.unet_lr <= 0:
            raise ConfigError(f"--unet-lr must be positive, got {self.unet_lr}")
        if self.warmup < 0 or self.retain_weight < 0:
            raise ConfigError(f"--warmup and --retain-weight must be non-negative, got {self.warmup} and {self.retain_weight}")
        if self.warmup >= self.steps:
            raise ConfigError(f"--warmup {self.warmup} leaves no adversarial iteration in --steps {self.steps}: "
                              "lower --warmup (or use `erase run esd` for plain ESD)")
        if self.attack_insertion not in INSERTIONS:
            raise ConfigError(f"--attack-insertion must be one of {', '.join(INSERTIONS)}")


@register
class AdvUnlearn(ErasureMethod):
    name = "advunlearn"
    version = "2"  # 2: the mini-canvas attacker is 3 embeddings x 15 steps, gamma 2 over 8 retain prompts (1: 1 x 5, gamma 1 over 4)
    summary = "AdvUnlearn: ESD on the text encoder against a soft-prompt attacker, with a retain term (robust to prompt attacks)"
    config_class = AdvUnlearnConfig
    official = OfficialSchedule(
        iterations=OFFICIAL["steps"],
        options={k: v for k, v in OFFICIAL.items() if k != "steps"},
        timing={"warmup": 0},  # time the adversarial iterations; the official 200 warm-up ones are cheaper
        note="upper bound: the 200 warm-up iterations (plain ESD, no attacker) are projected at the adversarial iterations' time",
        source="algorithms.md §3 Defaults (README and code)",
    )
    config: AdvUnlearnConfig

    def _retain_pool(self) -> tuple[list[str], str]:
        cfg = self.config
        if cfg.retain_weight == 0:
            return [], "none (gamma = 0)"
        return retain_pool(cfg.concepts, cfg.retain_prompts, cfg.retain_filter)

    def prepare(self, backbone, params, originals) -> None:
        cfg = self.config
        self.backbone: Backbone = backbone
        self.unet_params = {n: p for n, p in params.items() if n.startswith("unet.")}
        self.unet_originals = {n: originals[n] for n in self.unet_params}
        self.pool, self.retain_source = self._retain_pool()
        with torch.no_grad(), swapped(params, originals):
            # Everything the original text encoder says, once: "", the concepts, the retain pool.
            self.frozen_uncond = backbone.encode([""])  # (1, L, D)
            self.frozen_concept = {c: backbone.encode([c]) for c in cfg.concepts}  # (1, L, D) each
            self.frozen_retain = encode_pool(backbone, self.pool) if self.pool else None  # (N, L, D)
        prompts = backbone.prompts
        self.ids = {c: prompts.ids([c]) for c in cfg.concepts}  # (1, L)
        self.attacker = SoftPromptAttack(k=cfg.attack_k, insertion=cfg.attack_insertion, init=cfg.attack_init,
                                         update=cfg.attack_update, lr=cfg.attack_lr, steps=cfg.attack_steps,
                                         accumulate_grads=cfg.attack_accumulate_grads)
        self.delta: torch.Tensor | None = None  # (k, D) the latest adversarial embeddings
        self.attack_losses: list[tuple[int, float, float]] = []  # (step, first, last attacker loss)

    def optimizer(self, params: dict[str, torch.nn.Parameter]) -> torch.optim.Optimizer:
        """One Adam; the UNet's tensors at ``unet_lr`` when given (ESD's rate suits them, not the text encoder's)."""
        cfg = self.config
        unet = [p for n, p in params.items() if n.startswith("unet.")]
        if cfg.unet_lr is None or not unet:
            return super().optimizer(params)
        text = [p for n, p in params.items() if not n.startswith("unet.")]
        groups = [{"params": text, "lr": cfg.lr}, {"params": unet, "lr": cfg.unet_lr}]
        return torch.optim.Adam([g for g in groups if g["params"]], lr=cfg.lr)

    # --- pieces of one iteration ------------------------------------------------------------
    def _frozen(self) -> contextlib.AbstractContextManager:
        """The original model's UNet (a no-op when only the text encoder trains)."""
        return swapped(self.unet_params, self.unet_originals) if self.unet_params else contextlib.nullcontext()

    def _retain_indices(self, step: int) -> list[int]:
        """``retain_batch`` pool indices for ``step``: consecutive slices of per-pass shuffles."""
        n, size = len(self.pool), min(self.config.retain_batch, len(self.pool))
        out = []
        for position in range(step * size, step * size + size):
            rounds, index = divmod(position, n)
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.config.seed * 7919 + rounds))
            out.append(int(order[index]))
        return out

    def _draw(self, conds: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Partial DDIM samples ``(B, C, h, w)`` for conditionings ``(B, L, D)``, one shared ``k``."""
        cfg, bb = self.config, self.backbone
        stop = int(torch.randint(cfg.ddim_steps, (1,), generator=generator))
        z = bb.noise(conds.shape[0], generator)
        with torch.no_grad():
            return sample_until(bb, conds, guidance=cfg.start_guidance, num_steps=cfg.ddim_steps, stop_index=stop,
                                latents=z, uncond=self.frozen_uncond)

    def _adversarial(self, concept: str) -> torch.Tensor:
        """``TE_phi(delta + c)`` (1, L, D) with the current text encoder; ``delta`` is the latest."""
        prompts, ids = self.backbone.prompts, self.ids[concept]
        in_ids, in_embeds = self.attacker.inputs(ids, prompts.embed_ids(ids).detach(), self.delta)
        return prompts.encode_embeds(in_ids, in_embeds)

    def _attack(self, concept: str, x_t: torch.Tensor, t: torch.Tensor, step: int, generator: torch.Generator) -> None:
        """Run the attacker against the current model; keeps its embeddings in ``self.delta``."""
        cfg, bb = self.config, self.backbone
        prompts, ids = bb.prompts, self.ids[concept]
        cond = self.frozen_concept[concept]

        def target_at(x, tt):
            with torch.no_grad(), self._frozen():
                return bb.predict(x, tt, cond)  # eps_o(x_t, t, TE_o(c))

        fixed = (x_t, t, target_at(x_t, t))

        def loss_fn(in_ids, in_embeds, attack_step):
            x, tt, target = fixed
            if cfg.attack_resample:
                x, tt = self._draw(cond, generator)
                target = target_at(x, tt)
            return F.mse_loss(bb.predict(x, tt, prompts.encode_embeds(in_ids, in_embeds)).float(), target.float())

        result = self.attacker.run(ids, prompts.embed_ids(ids).detach(), prompts.token_embedding.weight, loss_fn, generator)
        self.delta = result.delta
        self.attack_losses.append((step, result.losses[0], result.losses[-1]))

    def loss(self, step: int, generator: torch.Generator) -> torch.Tensor:
        cfg, bb = self.config, self.backbone
        concept = cfg.concepts[int(torch.randint(len(cfg.concepts), (1,), generator=generator))]
        retain = self._retain_indices(step) if self.pool else []
        conds = torch.cat([self.frozen_concept[concept], *([self.frozen_retain[retain]] if retain else [])])  # (1 + R, L, D)
        x, t = self._draw(conds, generator)  # (1 + R, C, h, w): the concept's x_t, then the retain x_r
        with torch.no_grad(), self._frozen():
            frozen = bb.predict(torch.cat([x[:1], x]), t, torch.cat([self.frozen_uncond, conds]))  # (2 + R, ...)
        e_uncond, e_concept, e_retain = frozen[:1], frozen[1:2], frozen[2:]
        target = negatively_guided(e_uncond, e_concept, e_uncond, cfg.negative_guidance)
        adversarial = step >= cfg.warmup
        if adversarial and (self.delta is None or (step - cfg.warmup) % cfg.attack_every == 0):
            self._attack(concept, x[:1], t, step, generator)
        cond = self._adversarial(concept) if adversarial else bb.encode([concept])  # (1, L, D), gradients reach phi
        student_conds = torch.cat([cond, bb.encode([self.pool[i] for i in retain])]) if retain else cond
        student = bb.predict(x, t, student_conds)  # (1 + R, C, h, w)
        loss = F.mse_loss(student[:1].float(), target.float())
        if retain:
            loss = loss + cfg.retain_weight * F.mse_loss(student[1:].float(), e_retain.float())
        return loss

    # --- fit: the shared template plus the attacker's record ---------------------------------
    def plan(self, pipe: Any) -> dict[str, Any]:
        cfg = self.config
        attacks = len(range(cfg.warmup, cfg.steps, cfg.attack_every))
        pool, source = self._retain_pool()
        return {**super().plan(pipe), "warmup": cfg.warmup, "attacks": attacks, "attacker_steps": attacks * cfg.attack_steps,
                "retain_prompts": len(pool), "retain_source": source}

    def fit(self, pipe: Any, run=None):
        result = super().fit(pipe, run)
        result.record["data"] = {"retain_prompts": len(self.pool), "retain_source": self.retain_source}
        result.record["attack"] = {"count": len(self.attack_losses),
                                   "losses": [{"step": s, "first": round(a, 6), "last": round(b, 6)} for s, a, b in self.attack_losses]}
        return result
