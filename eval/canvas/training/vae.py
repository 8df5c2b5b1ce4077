"""Train the mini-canvas autoencoder (32x32x3 <-> 16x16x4) and set its latent scale."""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .architecture import make_vae
from .loop import warmup_cosine

logger = logging.getLogger(__name__)

KL_WEIGHT = 1e-6  # as in SD's VAE: a nearly deterministic autoencoder with a well-behaved latent


def train_vae(images: torch.Tensor, *, steps: int, batch_size: int, lr: float, device: str, seed: int, progress: bool = True):
    """Returns ``(vae, report)``; ``report`` has the held-out PSNR and the scaling factor.

    ``images`` are ``(N, 3, 32, 32)`` in [0, 1]; the last 2% are held out for the PSNR.
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    held = max(64, len(images) // 50)
    train_set, test_set = images[:-held].to(device), images[-held:].to(device)
    vae = make_vae().to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    schedule = warmup_cosine(optimizer, warmup=min(200, steps // 10), total=steps)
    bar = tqdm(range(steps), desc="mini-canvas VAE", disable=not progress)
    for _ in bar:
        idx = torch.randint(len(train_set), (batch_size,), generator=g).to(device)
        x = train_set[idx] * 2 - 1
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        loss = F.mse_loss(recon, x) + KL_WEIGHT * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    vae.eval()
    with torch.no_grad():
        x = test_set * 2 - 1
        latents = vae.encode(x).latent_dist.mean
        recon = vae.decode(latents).sample.clamp(-1, 1)
        mse = F.mse_loss((recon + 1) / 2, test_set).item()
        sample = torch.cat([vae.encode(train_set[i : i + 512] * 2 - 1).latent_dist.sample() for i in range(0, min(len(train_set), 4096), 512)])
        scale = 1.0 / sample.std().item()
    vae.register_to_config(scaling_factor=scale)
    report = {"psnr_db": round(10 * math.log10(1 / mse), 2), "scaling_factor": round(scale, 5), "steps": steps, "batch_size": batch_size}
    logger.info("VAE: %.2f dB held-out PSNR, scaling factor %.4f", report["psnr_db"], scale)
    return vae, report
