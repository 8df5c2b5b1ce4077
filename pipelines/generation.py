"""Batched text-to-image generation with one seed per image.

Every image's starting noise comes from its own ``torch.Generator(seed)``, so an image depends
on its prompt, seed and sampler settings only, not on which batch it was generated in or on
which device. This is what answer sets, attack targets and the demo use, and what the records
write down.

A one-step generator (``pipelines.one_step``: a pipeline marked with its ``t_init``) is drawn
here, and only here, in one UNet evaluation at ``t_init`` without CFG, whatever the settings
say: :func:`draw_latents` is the one place that decides, so no consumer keeps its own copy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from PIL import Image
from tqdm.auto import tqdm

from .backbone import Backbone, Cond
from .one_step import one_step_generate, pipeline_t_init
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


def effective_settings(backbone: Backbone, settings: SamplerSettings) -> dict:
    """How :func:`draw_latents` really samples ``backbone`` under ``settings``, for records and keys.

    ``settings.to_dict()`` for an ordinary model (so cache keys of multi-step models are
    unchanged); for a one-step generator one step at its ``t_init`` with guidance 1.
    """
    t_init = pipeline_t_init(backbone.pipe)
    if t_init is None:
        return settings.to_dict()
    return {"steps": 1, "guidance": 1.0, "sampler": "one-step", "eta": 0.0, "t_init": t_init}


def draw_latents(backbone: Backbone, cond: Cond, z: torch.Tensor, settings: SamplerSettings) -> torch.Tensor:
    """Clean latents from noise ``z``: one step at ``t_init`` for a one-step generator, else DDIM."""
    t_init = pipeline_t_init(backbone.pipe)
    if t_init is not None:
        return one_step_generate(backbone, z, cond, t_init)
    return sample(backbone, cond, guidance=settings.guidance, num_steps=settings.steps, latents=z)


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
        out.append(draw_latents(backbone, cond, z, settings))
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
