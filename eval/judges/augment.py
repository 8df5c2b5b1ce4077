"""Make clean renders look like what a small diffusion model produces, for training the judge.

Generated images are a little softer than renders (the VAE drops 1-pixel detail), a little
noisy, and their colours drift. The judge learns on renders with these defects drawn at random
strengths, so that it reads texture and silhouette, not crisp edges or exact colours. It also
sees the colour channels in a random order, which turns each palette colour into others: the
judge must never depend on which colours a style happened to be drawn in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_NOISE = 0.02  # std of added Gaussian noise, images in [0, 1]; more drowns the gradient style
GAIN_RANGE = 0.10  # per-channel colour gain in 1 +- this
MAX_SHIFT = 0.06  # brightness offset in +- this
BLUR_SIGMA = 0.9  # pixels, for the Gaussian kind of softness


def _gaussian_kernel(sigma: float, channels: int) -> torch.Tensor:
    """A (channels, 1, 5, 5) depthwise Gaussian kernel."""
    x = torch.arange(5, dtype=torch.float32) - 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, 5, 5).contiguous()


def soften(images: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Gaussian-blurred copy of (N, C, H, W) images (reflect-padded, so edges stay unbiased)."""
    padded = F.pad(images, (2, 2, 2, 2), mode="reflect")  # (N, C, H+4, W+4)
    return F.conv2d(padded, _gaussian_kernel(sigma, images.shape[1]).to(images), groups=images.shape[1])


def vae_like(images: torch.Tensor) -> torch.Tensor:
    """Halve the resolution and bring it back: what survives a 2x-downsampling VAE at best."""
    small = F.avg_pool2d(images, 2)  # (N, C, H/2, W/2)
    return F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random channel order, softness, noise and colour drift for a (N, 3, H, W) batch in [0, 1]."""
    n = images.shape[0]
    order = torch.rand(n, 3, generator=generator).argsort(dim=1).to(images.device)  # (N, 3) permutations
    images = images.gather(1, order[:, :, None, None].expand_as(images))

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(images)

    # Half the batch is softened like a Gaussian blur, half like a 2x VAE, each at a random strength.
    use_vae = uniform(n, 1, 1, 1) < 0.5  # (N, 1, 1, 1)
    softened = torch.where(use_vae, vae_like(images), soften(images))  # (N, 3, H, W)
    images = images + uniform(n, 1, 1, 1) * (softened - images)
    gain = 1 + GAIN_RANGE * (2 * uniform(n, 3, 1, 1) - 1)  # (N, 3, 1, 1)
    shift = MAX_SHIFT * (2 * uniform(n, 1, 1, 1) - 1)  # (N, 1, 1, 1)
    images = images * gain + shift
    noise = MAX_NOISE * uniform(n, 1, 1, 1) * torch.randn(images.shape, generator=generator).to(images)
    return (images + noise).clamp(0, 1)
