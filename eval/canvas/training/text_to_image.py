"""Train the mini-canvas UNet and text encoder jointly, from scratch, on the rendered world.

Standard latent-diffusion training (epsilon prediction, SD 1.x betas) with what made the
prototype learn fast on a CPU: min-SNR-5 loss weighting, AdamW with warm-up and cosine decay,
gradient clipping and an EMA of the weights (the EMA is what ships). 10% of captions are
dropped to the empty prompt so that classifier-free guidance works.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .architecture import make_text_encoder, make_unet, training_scheduler
from .data import TrainingSet
from .loop import EMA, warmup_cosine

logger = logging.getLogger(__name__)


@torch.no_grad()
def encode_latents(vae, images: torch.Tensor, device: str, chunk: int = 1024) -> torch.Tensor:
    """Posterior means times the scaling factor, ``(N, 4, 16, 16)``, on ``device``."""
    out = [vae.encode(images[i : i + chunk].to(device) * 2 - 1).latent_dist.mean for i in range(0, len(images), chunk)]
    return torch.cat(out) * vae.config.scaling_factor


def tokenize_pools(tokenizer, captions: list[list[str]], device: str) -> torch.Tensor:
    """Token ids of every caption pool, ``(pairs, pool, 77)``."""
    flat = [c for pool in captions for c in pool]
    ids = tokenizer(flat, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids
    return ids.view(len(captions), -1, ids.shape[-1]).to(device)


def train_text_to_image(
    vae,
    tokenizer,
    data: TrainingSet,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    device: str,
    seed: int,
    ema_decay: float = 0.999,
    snr_gamma: float = 5.0,
    caption_dropout: float = 0.1,
    init: tuple | None = None,
    progress: bool = True,
):
    """Returns ``(unet, text_encoder, report)`` holding the EMA weights, in eval mode.

    ``init``: ``(unet, text_encoder)`` to go on training (``refine.py``'s second phase, trained in
    place) instead of new models.
    """
    torch.manual_seed(seed)
    g = torch.Generator(device=device).manual_seed(seed)
    latents = encode_latents(vae, data.images, device)  # (N, 4, 16, 16)
    pools = tokenize_pools(tokenizer, data.captions, device)  # (P, C, 77)
    empty = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids.to(device)
    pair = data.pair.to(device)
    unet, text_encoder = init if init is not None else (make_unet(), make_text_encoder(tokenizer))
    unet, text_encoder = unet.to(device).train(), text_encoder.to(device).train()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    schedule = warmup_cosine(optimizer, warmup=min(500, steps // 10), total=steps)
    ema = EMA([unet, text_encoder], ema_decay)
    alphas = training_scheduler().alphas_cumprod.to(device)
    snr = alphas / (1 - alphas)
    loss_weight = snr.clamp(max=snr_gamma) / snr  # min-SNR-gamma for epsilon prediction
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
    bar = tqdm(range(steps), desc="mini-canvas UNet + text encoder", disable=not progress)
    running = None
    for _ in bar:
        idx = torch.randint(len(latents), (batch_size,), generator=g, device=device)
        which = torch.randint(pools.shape[1], (batch_size,), generator=g, device=device)
        ids = pools[pair[idx], which]  # (B, 77)
        drop = torch.rand(batch_size, generator=g, device=device) < caption_dropout
        ids = torch.where(drop[:, None], empty, ids)
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=g, device=device)
        t = torch.randint(0, len(alphas), (batch_size,), generator=g, device=device)
        a = alphas[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        with autocast:
            pred = unet(x_t, t, encoder_hidden_states=text_encoder(ids)[0]).sample
        per_sample = F.mse_loss(pred.float(), noise, reduction="none").mean(dim=(1, 2, 3))
        loss = (loss_weight[t] * per_sample).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        ema.update()
        running = loss.item() if running is None else 0.99 * running + 0.01 * loss.item()
        bar.set_postfix(loss=f"{running:.4f}")
    ema.copy_to_model()
    unet.eval()
    text_encoder.eval()
    report = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "final_loss": round(running or 0.0, 5), "images": len(latents)}
    logger.info("UNet + text encoder: %d steps, final smoothed loss %.4f", steps, report["final_loss"])
    return unet, text_encoder, report
