"""One-step generators (SFD / SiD): the generator's forward and how plain diffusers samples it.

A one-step generator is a UNet ``G`` used once, at the fixed timestep ``t_init``::

    x_init = sqrt(1 - a_t) z                      (add_noise(0, z, t_init))
    G(z, c) = x0_hat( G_unet(x_init, t_init, c) )  (the closed-form clean estimate)

Plain diffusers reproduces this with a stock ``EulerDiscreteScheduler`` (``timestep_spacing``
"trailing") and one custom timestep: Euler starts from ``sigma z`` with
``sigma = sqrt((1 - a_t) / a_t)``, feeds the UNet ``sigma z / sqrt(sigma^2 + 1) = sqrt(1 - a_t) z``
and steps to sigma 0, which lands on ``x0_hat`` exactly (``tests/pipelines/test_one_step.py``
shows the two agree). So the saved folder stays a stock ``StableDiffusionPipeline``; sample it
with::

    pipe(prompt, timesteps=[t_init], guidance_scale=1.0)   # one UNet evaluation, no CFG
"""

from __future__ import annotations

from typing import Any

import torch

from .backbone import Backbone, Cond


def one_step_generate(backbone: Backbone, z: torch.Tensor, cond: Cond, t_init: int) -> torch.Tensor:
    """``G(z, c)``: clean latents from noise ``z`` in one evaluation of ``backbone.unet`` (no CFG)."""
    t = torch.full((z.shape[0],), int(t_init), device=z.device, dtype=torch.long)
    x_init = backbone.schedule.add_noise(torch.zeros_like(z), z, t)  # sqrt(1 - a) z
    return backbone.schedule.x0_from_output(x_init, backbone.predict(x_init, t, cond), t)


def one_step_scheduler(scheduler_config: Any):
    """The stock scheduler that, called with ``timesteps=[t_init]``, samples a one-step generator."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler.from_config(scheduler_config, timestep_spacing="trailing", steps_offset=0,
                                              use_karras_sigmas=False, final_sigmas_type="zero")


def one_step_call(t_init: int) -> dict[str, Any]:
    """Keyword arguments of a stock pipeline call that samples the generator as it was trained."""
    return {"timesteps": [int(t_init)], "guidance_scale": 1.0}
