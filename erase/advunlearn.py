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
  * ``unet_from`` (not in the official code): the text encoder is trained in front of another
    erasure's UNet (ESD's), which stays fixed; ``x_t``, the ESD target and the attacker's goal
    come from the base model, the defender's and attacker's predictions from the erased UNet, and
    the retain target from the erased UNet with the original encoder (as in the official retain
    term, where one UNet serves both: the encoder's own drift). Merged after the fact (``erase
    stack``), AdvUnlearn's encoder feeds ESD's edit conditionings it never saw; trained in front
    of it, it learns to close what that edit leaves open. The result holds both edits.
  * ``preset="official"`` sets the official SD 1.x schedule on every field still at its
    default (1000 iterations, lr 1e-5, 30 attack steps redrawn each step, one adversarial
    embedding, warm-up 200, gamma 0.3 as in the README, retain batch 5); flags given explicitly win.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from attacks.insertion import INSERTIONS
from attacks.softprompt import SoftPromptAttack
from pipelines.artifact import TENSORS_FILE, ErasureResult
from pipelines.backbone import Backbone, backbone_for
from pipelines.errors import ConfigError, TrainingDiverged
from pipelines.fingerprint import file_sha256, tensors_sha256
from pipelines.params import preset_components, resolve_tensors, swapped
from pipelines.sampling import sample_until
from pipelines.stack import parts_cost

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
    """AdvUnlearn settings. The defaults are a CPU-sized schedule for the shipped mini-canvas model:
    120 iterations with 20 of warm-up, an attacker of 3 word embeddings (as many as UnlearnDiffAtk
    inserts) and 15 steps reusing the iteration's x_t, 20 DDIM steps as mini-canvas evaluates, lr 1e-3
    (ESD's tuned mini-canvas rate), eta 1.5, and the retain term at gamma 2 over 8 prompts: with the
    official README's 0.3 the text encoder, which every prompt goes through, lost the other concepts.
    Each was chosen by a sweep in ``eval/measurements/advunlearn-sweeps.md`` (commands and tables),
    which also holds what was tried against the attack and did not help: eta 2, 180 iterations,
    random starts, training the UNet's cross-attention instead or as well. ``preset="official"``
    gives the official SD 1.x schedule."""

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
    negative_guidance: float = option(1.5, "eta: strength of the push away from the concept (official 1; mini-canvas 1.5, see eval/measurements/advunlearn-sweeps.md)")
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
    unet_from: str | None = option(None, "an erasure artifact that changes only the UNet (ESD's, say): train the text encoder "
                                   "in front of that erased UNet, the ESD target and the attacker's goal staying the base "
                                   "model's; the result holds both edits", keyed=False)

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
        if self.unet_from is not None:
            if not os.path.isfile(os.path.join(self.unet_from, TENSORS_FILE)):
                raise ConfigError(f"--unet-from {self.unet_from!r} is not an erasure artifact folder (no {TENSORS_FILE}); "
                                  "pass the folder `erase run esd --out DIR` wrote")
            if "unet" in preset_components(self.params):
                raise ConfigError(f"--unet-from keeps that UNet fixed and trains the text encoder; --params {self.params} "
                                  "trains UNet tensors too: pick a text-encoder preset (te-full, te-ffn, te-attn, te-layers:I-J)")


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

    def __init__(self, config: AdvUnlearnConfig) -> None:
        super().__init__(config)
        self.under_live: dict[str, torch.Tensor] = {}  # --unet-from's tensors in the pipeline (holding its values)
        self.under_base: dict[str, torch.Tensor] = {}  # ... and their base values, for the frozen model

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
        """The original model's UNet: the base values of the trained UNet tensors and of ``--unet-from``'s
        (a no-op when only the text encoder trains, over the base UNet)."""
        live, base = {**self.unet_params, **self.under_live}, {**self.unet_originals, **self.under_base}
        return swapped(live, base) if live else contextlib.nullcontext()

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
        with torch.no_grad(), swapped(self.under_live, self.under_base):  # x_t from the base UNet, not --unet-from's
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

    @torch.no_grad()
    def _retain_targets(self, x_r: torch.Tensor, t: torch.Tensor, conds: torch.Tensor) -> torch.Tensor:
        """In front of ``--unet-from``'s UNet, the retain term holds the encoder to what it said before:
        that UNet with the original encoder's ``conds``, not the base model, whose outputs ESD's edit
        moved and a text encoder alone cannot give back (trying cost cross-domain accuracy)."""
        return self.backbone.predict(x_r, t, conds)

    def loss(self, step: int, generator: torch.Generator) -> torch.Tensor:
        cfg, bb = self.config, self.backbone
        concept = cfg.concepts[int(torch.randint(len(cfg.concepts), (1,), generator=generator))]
        retain = self._retain_indices(step) if self.pool else []
        conds = torch.cat([self.frozen_concept[concept], *([self.frozen_retain[retain]] if retain else [])])  # (1 + R, L, D)
        x, t = self._draw(conds, generator)  # (1 + R, C, h, w): the concept's x_t, then the retain x_r
        behind = bool(self.under_live)  # in front of --unet-from: retain targets from that UNet, see _retain_targets
        with torch.no_grad(), self._frozen():
            head = x[:1] if behind else x
            frozen = bb.predict(torch.cat([x[:1], head]), t, torch.cat([self.frozen_uncond, conds[:len(head)]]))  # (2 [+ R], ...)
        e_uncond, e_concept = frozen[:1], frozen[1:2]
        e_retain = self._retain_targets(x[1:], t, conds[1:]) if behind and retain else frozen[2:]
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

    def external_inputs(self) -> dict[str, str]:
        """``--unet-from``'s tensors: a bench cell keyed on its path alone would survive retraining it."""
        folder = self.config.unet_from
        return {} if folder is None else {"unet_from": file_sha256(os.path.join(folder, TENSORS_FILE))}

    def _load_under(self, pipe: Any) -> ErasureResult | None:
        """The ``--unet-from`` artifact, checked: a multi-step erasure of the UNet alone, made from ``pipe``."""
        folder = self.config.unet_from
        if folder is None:
            return None
        under = ErasureResult.load(folder)
        if under.components != {"unet"} or under.t_init is not None:
            kind = "a one-step generator" if under.t_init is not None else f"changes the {' and '.join(sorted(under.components))}"
            raise ConfigError(f"--unet-from {folder}: that {under.method} artifact {kind}; it must be a multi-step erasure "
                              "of the UNet alone (ESD's, SalUn's), since the text encoder is what AdvUnlearn trains")
        under.check_base(pipe)
        if set(under.concepts) != set(self.config.concepts):
            logger.warning("advunlearn: --unet-from %s erased %s, and this run erases %s: the artifact will list and "
                           "erase both, but the text encoder is trained against attacks on this run's concepts only",
                           folder, ", ".join(under.concepts), ", ".join(self.config.concepts))
        return under

    def fit(self, pipe: Any, run=None):
        """The shared template (in front of ``--unet-from``'s UNet when given), plus the attacker's record."""
        under = self._load_under(pipe)
        if under is None:
            result = super().fit(pipe, run)
        else:
            self.under_live = resolve_tensors(backbone_for(pipe).components, list(under.tensors))
            self.under_base = {n: t.detach().clone() for n, t in self.under_live.items()}
            try:
                with under.applied(pipe):
                    result = super().fit(pipe, run)
            except TrainingDiverged as e:  # the partial result stands on the same UNet
                if e.result is not None:
                    e.result = _holding(e.result, under, pipe)
                raise
            finally:
                self.under_live, self.under_base = {}, {}
            result = _holding(result, under, pipe)
        result.record["data"] = {"retain_prompts": len(self.pool), "retain_source": self.retain_source}
        result.record["attack"] = {"count": len(self.attack_losses),
                                   "losses": [{"step": s, "first": round(a, 6), "last": round(b, 6)} for s, a, b in self.attack_losses]}
        return result


def _holding(result: ErasureResult, under: ErasureResult, base: Any) -> ErasureResult:
    """``result`` (the text encoder) with ``under``'s UNet tensors: one artifact that is the whole model.

    Its base fingerprint covers both sets of tensors, its cost is both trainings' (``under``'s own is
    kept in the ``unet_from`` block), so a bench row of it pays for the UNet it stands on; its concepts
    are both's, as a stack's are, since the model no longer draws any of them.
    """
    tensors = {**under.tensors, **result.tensors}
    record = result.record
    record["concepts"] = list(dict.fromkeys([*result.concepts, *under.concepts]))
    record["base"]["fingerprint"] = tensors_sha256(resolve_tensors(backbone_for(base).components, list(tensors)))
    record["unet_from"] = {"path": record["config"]["unet_from"], "method": under.method, "concepts": under.concepts,
                           "config": under.record["config"], "cost": under.record.get("cost", {})}
    record["cost"] = parts_cost([under, result])
    merged = ErasureResult(tensors=tensors, record=record, base_pipe=base)
    record["cost"]["artifact_mb"] = round(merged.size_mb, 3)
    return merged
