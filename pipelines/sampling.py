"""DDIM sampling, in full or stopped part-way (ESD, AdvUnlearn and SFD draw x_t this way).

Convention of :func:`sample_until` (one, documented, used everywhere): with ``K`` DDIM steps and
timesteps ``ts = scheduler.timesteps`` (descending, e.g. 981, 961, ..., 1 for K = 50), running
``k`` steps from ``z_T`` gives a latent whose noise level is that of ``ts[k]``; the function
returns ``(x_t, ts[k])``, the latent and the timestep at which the model should be evaluated
next. ``k = 0`` returns the initial noise (times ``init_noise_sigma``) with ``ts[0]``;
``k = K`` returns the fully denoised latent with ``t = 0``. This is the diffusers ESD
convention; the CompVis ESD code labels x_t about two DDIM steps noisier than it is (see
``shared/docs/algorithms.md`` §1), which :func:`compvis_draw` reproduces on request.
"""

from __future__ import annotations

import torch

from .backbone import Backbone, Cond


def ddim_scheduler(backbone: Backbone, num_steps: int):
    """A deterministic (eta = 0) DDIM scheduler built from the model's own scheduler config."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(backbone.pipe.scheduler.config)
    scheduler.set_timesteps(num_steps, device=backbone.device)
    return scheduler


def sample_until(
    backbone: Backbone,
    cond: Cond,
    *,
    guidance: float,
    num_steps: int,
    stop_index: int,
    latents: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    uncond: Cond | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``stop_index`` of ``num_steps`` DDIM steps with CFG; return ``(x_t, t)`` (see module doc)."""
    if not 0 <= stop_index <= num_steps:
        raise ValueError(f"stop_index must be in [0, {num_steps}], got {stop_index}")
    scheduler = ddim_scheduler(backbone, num_steps)
    if latents is None:
        latents = backbone.noise(cond.shape[0], generator)
    if uncond is None and guidance not in (None, 1.0):
        uncond = backbone.uncond(1)
    x = latents * scheduler.init_noise_sigma
    for t in scheduler.timesteps[:stop_index]:
        out = backbone.predict(x, t, cond, guidance, uncond)
        x = scheduler.step(out, t, x).prev_sample
    t_next = scheduler.timesteps[stop_index] if stop_index < num_steps else torch.zeros((), dtype=torch.long)
    return x, t_next.to(backbone.device)


def sample(
    backbone: Backbone,
    cond: Cond,
    *,
    guidance: float,
    num_steps: int,
    latents: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    uncond: Cond | None = None,
) -> torch.Tensor:
    """Full DDIM sampling to clean latents."""
    x, _ = sample_until(
        backbone, cond, guidance=guidance, num_steps=num_steps, stop_index=num_steps,
        latents=latents, generator=generator, uncond=uncond,
    )
    return x


def compvis_draw(num_steps: int, num_train_timesteps: int, generator: torch.Generator) -> tuple[int, int]:
    """CompVis ESD's draw of ``(stop_index, t)``, mismatch included, for faithful reproduction.

    CompVis draws ``k ~ U{0..K-1}``, labels the latent ``t ~ U[round(kT/K), round((k+1)T/K))``
    and samples it with a DDIM loop that drops the last timestep and breaks one step late, which
    amounts to running ``K - k + 1`` steps (clamped to K): the latent is about two DDIM steps
    less noisy than its label, and ``k = 0`` and ``k = 1`` both give a fully denoised latent.
    """
    k = int(torch.randint(num_steps, (1,), generator=generator).item())
    lo = round(k / num_steps * num_train_timesteps)
    hi = round((k + 1) / num_steps * num_train_timesteps)
    t = int(torch.randint(lo, max(hi, lo + 1), (1,), generator=generator).item())
    return min(num_steps, num_steps - k + 1), t
