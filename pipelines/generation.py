"""Batched text-to-image generation with one seed per image.

Every image's starting noise comes from its own ``torch.Generator(seed)``, so an image depends
on its prompt, seed and sampler settings only, not on which batch it was generated in or on
which device. This is what answer sets, attack targets and the demo use, and what the records
write down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from PIL import Image
from tqdm.auto import tqdm

from .backbone import Backbone
from .sampling import sample


@dataclass(frozen=True)
class SamplerSettings:
    """How images are drawn; recorded next to every generated set."""

    steps: int = 20
    guidance: float = 5.0
    sampler: str = "ddim"
    eta: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def seeded_noise(backbone: Backbone, seeds: Sequence[int]) -> torch.Tensor:
    """Initial latents, one generator per seed, drawn on the CPU."""
    shape = backbone.latent_shape(1)
    z = torch.cat([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
    return z.to(backbone.device, backbone.dtype)


@torch.no_grad()
def generate_latents(
    backbone: Backbone,
    prompts: Sequence[str],
    seeds: Sequence[int],
    settings: SamplerSettings = SamplerSettings(),
    batch_size: int = 32,
    progress: bool = False,
) -> torch.Tensor:
    """Clean latents ``(N, C, h, w)`` for ``prompts[i]`` with ``seeds[i]``."""
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    out = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="generating", disable=not progress):
        batch_prompts = list(prompts[start : start + batch_size])
        cond = backbone.encode(batch_prompts)
        z = seeded_noise(backbone, seeds[start : start + batch_size])
        out.append(sample(backbone, cond, guidance=settings.guidance, num_steps=settings.steps, latents=z))
    return torch.cat(out) if out else torch.empty(0)


def generate(
    backbone: Backbone,
    prompts: Sequence[str],
    seeds: Sequence[int],
    settings: SamplerSettings = SamplerSettings(),
    batch_size: int = 32,
    progress: bool = False,
) -> list[Image.Image]:
    """PIL images for ``prompts[i]`` with ``seeds[i]`` (see the module docstring)."""
    images: list[Image.Image] = []
    latents = generate_latents(backbone, prompts, seeds, settings, batch_size, progress)
    for start in range(0, len(latents), batch_size):
        images += backbone.to_pil(backbone.decode(latents[start : start + batch_size]))
    return images
