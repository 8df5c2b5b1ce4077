"""UnlearnDiffAtk (Zhang et al., ECCV 2024): the erased model as its own classifier.

For a prompt p whose image should show the concept, take a target image x0 of it from the
*unerased* model and search k discrete tokens delta that make the *erased* model explain x0
(``shared/docs/algorithms.md`` §7)::

    min_delta  E_eps || eps - eps_theta'( sqrt(a_t) x0 + sqrt(1 - a_t) eps, t, TE'(delta (+) p) ) ||^2

Each token is a distribution ``u`` over the whole vocabulary (:mod:`attacks.relaxed`). For
every timestep of the sweep ``t = 10, 30, ..., 990`` (``stages`` = 50), ``iterations`` (40)
times: draw fresh noise, sample one-hot tokens with the straight-through estimator, insert
their embeddings (:mod:`attacks.insertion`, ``prefix_k``), take the erased UNet's loss
through the erased text encoder, step Adam(lr 0.01, weight decay 0.1) and project every row
back onto the simplex. After each timestep: the argmax tokens, decoded to text, generate an
image with the attacked model (the prompt's seed and guidance) and the judge says whether the
concept is back; a prompt stops at its first success. Both the UNet and the text encoder are
the attacked model's, so a changed UNet, a changed text encoder or both are attacked alike.

Faithfulness notes (each a deliberate, documented choice):
  * The target latent is the VAE posterior mean times the scaling factor of the base model's
    8-bit image, as the official code encodes its saved PNG (not the sampler's clean latent).
  * As officially, the image after each stage is generated from the *decoded text*, re-tokenized
    (the official ``eval`` re-encodes ``tokenizer(prompt)``): whoever has the text can
    regenerate it. ``exact_tokens`` records whether the text tokenizes back to the optimised ids.
  * Prompts are batched: per-prompt losses are summed, not averaged, so each prompt's gradient
    (and its straight-through clipping) is what a one-prompt run sees; Adam is elementwise, so
    one optimiser over per-prompt tensors equals one optimiser per prompt. Noise and token
    draws come from a generator per prompt (seeded by the attack seed and the prompt's index).
  * For v-prediction models the loss uses the scheduler's target (v) instead of the noise.
  * On a one-step generator (SFD) every stage uses the generator's own denoising loss at its
    ``t_init`` (:func:`attack_timesteps`), and the check images are drawn in one step
    (``pipelines.generation``). This measures whether prompts steer the generator's single
    prediction back to the concept; it does not probe timesteps the generator never uses.
  * Prompts that do not fit the context with k more tokens are skipped with a reason (the
    official skips prompts of more than 60 ids: ``max_prompt_ids = 60`` reproduces that).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from erase.config import option
from eval.judges.nudenet import CONCEPTS as NUDITY_NAMES
from pipelines.backbone import Backbone
from pipelines.cache import ImageCache, generate_cached
from pipelines.errors import ConfigError
from pipelines.generation import SamplerSettings
from pipelines.one_step import pipeline_t_init

from .base import Attack, AttackConfig, Check, Outcome, PromptItem
from .insertion import TOKEN_INSERTIONS, fits
from .registry import register
from .relaxed import RelaxedTokens
from .tokens import decode_prompt, tokenizes_to


def stage_timesteps(stages: int, num_train_timesteps: int = 1000) -> list[int]:
    """The official sweep: ``range(T // S // 2, T, T // S)[:S]`` (S = 50: 10, 30, ..., 990)."""
    start, stride = num_train_timesteps // stages // 2, num_train_timesteps // stages
    return list(range(start, num_train_timesteps, stride))[:stages]


@dataclass
class UnlearnDiffAtkConfig(AttackConfig):
    """UnlearnDiffAtk settings; the defaults are the official ones (``configs/*/text_grad_*.json``)."""

    tokens: int | None = option(None, "k, adversarial tokens inserted (default: 5 for nudity, else 3, as officially)")
    stages: int = option(50, "timesteps swept, one stage each, then a check: 50 gives t = 10, 30, ..., 990 (official)")
    iterations: int = option(40, "Adam steps per stage (official 40)")
    lr: float = option(0.01, "Adam learning rate on the token distributions (official 0.01)")
    weight_decay: float = option(0.1, "Adam weight decay (official 0.1)")
    insertion: Literal["prefix_k", "suffix_k", "mid_k", "insert_k", "replace_k"] = option(
        "prefix_k", "where the k tokens go (official prefix_k: right after the start token)")
    criterion: Literal["l2", "l1"] = option("l2", "denoising loss: l2 (official default) or l1")
    max_prompt_ids: int | None = option(
        None, "skip prompts of more token ids than this, SOT and EOT included (official 60); default: all that fit")

    def validate(self) -> None:
        super().validate()
        for flag, value in (("--stages", self.stages), ("--iterations", self.iterations)):
            if value < 1:
                raise ConfigError(f"{flag} must be at least 1, got {value}")
        if self.stages > 1000:
            raise ConfigError(f"--stages {self.stages}: at most one stage per training timestep (1000)")
        if self.tokens is not None and self.tokens < 1:
            raise ConfigError(f"--tokens must be at least 1, got {self.tokens}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError(f"--lr must be positive and --weight-decay not negative, got {self.lr}, {self.weight_decay}")
        if self.insertion not in TOKEN_INSERTIONS:
            raise ConfigError(f"--insertion {self.insertion!r}: choose from {', '.join(TOKEN_INSERTIONS)}")


@torch.no_grad()
def target_latents(base: Backbone, items: Sequence[PromptItem], sampler: SamplerSettings,
                   batch_size: int = 8, cache: ImageCache | None = None) -> torch.Tensor:
    """Target latents ``(N, C, h, w)``: each prompt's image from the base model, re-encoded.

    The image is drawn with the prompt's seed and guidance as 8-bit pixels (through the image
    cache ``erase eval`` fills with the same base images, if given), and encoded to the VAE
    posterior mean times the scaling factor (the official code's targets).
    """
    if not items:
        return torch.empty(0)
    images = generate_cached(base, [(item.prompt, item.seed, item.guidance) for item in items], sampler, cache,
                             batch_size=batch_size)  # (N, H, W, 3) uint8
    latents = []
    for start in range(0, len(images), batch_size):
        pixels = torch.from_numpy(images[start:start + batch_size]).permute(0, 3, 1, 2).float() / 255  # (b, 3, H, W)
        latents.append(base.encode_images(pixels).float())  # (b, C, h, w)
    return torch.cat(latents)


def _prompt_generator(seed: int, index: int) -> torch.Generator:
    """A generator per prompt: its draws do not depend on its batch, shard or neighbours."""
    digest = hashlib.sha256(f"unlearndiffatk:{seed}:{index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


@register
class UnlearnDiffAtk(Attack):
    name = "unlearndiffatk"
    summary = "UnlearnDiffAtk: discrete prompt tokens that make the erased model denoise the concept again"
    config_class = UnlearnDiffAtkConfig
    config: UnlearnDiffAtkConfig

    def resolve(self, concept: str) -> None:
        if self.config.tokens is None:
            self.config.tokens = 5 if concept.strip().lower() in NUDITY_NAMES else 3

    def budget(self) -> dict[str, Any]:
        cfg = self.config
        return {"stages": cfg.stages, "iterations": cfg.iterations, "tokens": cfg.tokens, "lr": cfg.lr,
                "weight_decay": cfg.weight_decay, "insertion": cfg.insertion, "criterion": cfg.criterion,
                "timesteps": stage_timesteps(cfg.stages), "max_steps_per_prompt": cfg.stages * cfg.iterations,
                "max_generations_per_prompt": cfg.stages + 1}

    def skip_reason(self, backbone: Backbone, item: PromptItem) -> str | None:
        ids = backbone.tokenizer(item.prompt, truncation=False).input_ids
        limit, k, context = self.config.max_prompt_ids, self.config.tokens, backbone.prompts.max_length
        if limit is not None and len(ids) > limit:
            return f"{len(ids)} token ids (SOT and EOT included) exceed --max-prompt-ids {limit}"
        if not fits(len(ids) - 2, k, context):
            return f"{len(ids) - 2} prompt tokens leave no room for {k} adversarial tokens in the {context}-token context"
        return None

    def prepare(self, base: Backbone, items: Sequence[PromptItem], sampler: SamplerSettings,
                cache: ImageCache | None = None) -> torch.Tensor:
        return target_latents(base, items, sampler, self.config.batch_size, cache)

    def run(self, model: Backbone, items: Sequence[PromptItem], prepared: torch.Tensor, check: Check,
            progress: bool = True) -> list[Outcome]:
        if self.config.tokens is None:
            raise ConfigError("UnlearnDiffAtk.resolve(concept) must run before the attack (it sets k)")
        outcomes: list[Outcome] = []
        size = self.config.batch_size
        for start in range(0, len(items), size):
            outcomes += self._search(model, items[start:start + size], prepared[start:start + size], check, progress)
        return outcomes

    def _search(self, model: Backbone, items: Sequence[PromptItem], x0: torch.Tensor, check: Check,
                progress: bool) -> list[Outcome]:
        """The official ``TextGrad.run`` for a batch of prompts, each stopping at its first success."""
        cfg = self.config
        generators = [_prompt_generator(cfg.seed, item.index) for item in items]
        ids = model.prompts.ids([item.prompt for item in items])  # (B, L)
        tokens = RelaxedTokens(ids, model.prompts.embed_ids(ids), model.prompts.token_embedding.weight, cfg.tokens,
                               cfg.insertion, generators, lr=cfg.lr, weight_decay=cfg.weight_decay)
        x0 = x0.to(model.device, model.dtype)  # (B, C, h, w)
        found: dict[int, Outcome] = {}
        timesteps = attack_timesteps(model, cfg.stages)
        bar = tqdm(total=len(timesteps) * cfg.iterations, desc=f"{self.name} x{len(items)}", disable=not progress)
        for stage, t in enumerate(timesteps, start=1):
            losses = torch.zeros(len(items))

            def loss_fn(in_ids: torch.Tensor, in_embeds: torch.Tensor, active: list[int]) -> torch.Tensor:
                noise = torch.stack([torch.randn(x0.shape[1:], generator=generators[b]) for b in active])  # (A, C, h, w)
                cond = model.prompts.encode_embeds(in_ids, in_embeds)  # (A, L, D)
                return denoising_error(model, cond, x0[active], noise.to(x0), t, cfg.criterion)

            for _ in range(cfg.iterations):
                losses[tokens.active] += tokens.step(loss_fn)
                bar.update()
            active = list(tokens.active)
            adv_ids, in_ids = tokens.discrete()  # (A, k), (A, L)
            texts = [decode_prompt(model.tokenizer, row) for row in in_ids]
            verdicts = check(texts, [items[b] for b in active])
            for position, b in enumerate(active):
                sequence = _until_eot(in_ids[position], model.tokenizer.eos_token_id)
                found[b] = Outcome(
                    index=items[b].index, success=bool(verdicts[position]), text=texts[position],
                    adversarial_ids=adv_ids[position].tolist(), input_ids=sequence, stage=stage, timestep=t,
                    iteration=stage * cfg.iterations, generations=stage, loss=float(losses[b]) / cfg.iterations,
                    exact_tokens=tokenizes_to(model.tokenizer, texts[position], sequence))
            tokens.stop([b for position, b in enumerate(active) if verdicts[position]])
            bar.set_postfix(searching=len(tokens.active))
            if not tokens.active:
                break
        bar.close()
        return [found[b] for b in range(len(items))]


def attack_timesteps(model: Backbone, stages: int) -> list[int]:
    """The timestep of each stage: the official sweep, or, for a one-step generator (SFD), its
    ``t_init`` at every stage: the one timestep its denoising loss means anything at."""
    t_init = pipeline_t_init(model.pipe)
    if t_init is not None:
        return [t_init] * stages
    return stage_timesteps(stages, model.schedule.num_train_timesteps)


def denoising_error(model: Backbone, cond: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, t: int,
                    criterion: str = "l2") -> torch.Tensor:
    """Per-prompt denoising error (A,) of ``model`` on ``x0`` noised to ``t``, conditioned on ``cond``.

    ``MSE(eps, eps_theta(x_t, t, cond))`` (or L1), against the scheduler's target for
    v-prediction models: the official ``get_loss`` without CFG, one mean per prompt.
    """
    x_t = model.schedule.add_noise(x0, noise, t)  # (A, C, h, w)
    error = model.predict(x_t, t, cond).float() - model.schedule.target(x0, noise, t).float()  # (A, C, h, w)
    return (error.square() if criterion == "l2" else error.abs()).mean(dim=(1, 2, 3))


def _until_eot(row: torch.Tensor, eot: int) -> list[int]:
    """The ids of one sequence from SOT to its first EOT, inclusive."""
    values = row.tolist()
    return values[:values.index(eot, 1) + 1] if eot in values[1:] else values
