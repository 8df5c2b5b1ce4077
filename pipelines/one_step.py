"""One-step generators (SFD / SiD): the generator's forward, the record key that says a model is
one, and the routing that makes every sampler of this package use it.

A one-step generator is a UNet ``G`` used once, at the fixed timestep ``t_init``::

    x_init = sqrt(1 - a_t) z                      (add_noise(0, z, t_init))
    G(z, c) = x0_hat( G_unet(x_init, t_init, c) )  (the closed-form clean estimate)

**What says a model is one.** The artifact's ``erasure.json`` carries a ``sampling`` block
(:func:`sampling_block`; ``shared/docs/contracts.md`` names no key for this, so this module
defines it)::

    "sampling": {"one_step": true, "t_init": 625, "scheduler": "EulerDiscreteScheduler",
                 "call": {"timesteps": [625], "guidance_scale": 1.0}}

A record without it (every multi-step method) is an ordinary model.

**Routing.** A loaded pipeline that is a one-step generator carries its ``t_init`` as the
attribute :data:`ONE_STEP_ATTR`; :func:`pipeline_t_init` reads it and
``pipelines.generation.generate_latents`` (the one sampler behind ``erase eval``, ``erase
attack``'s checks, the answer cache and the demo) samples such a pipeline with
:func:`one_step_generate` instead of DDIM. Who sets it: ``ErasureResult.apply_`` /
``.applied`` (the demo, the Python drop-in, a delta applied to its base) and
``load_pipeline(<artifact>)`` (through ``apply_`` or :func:`one_step_pipeline`).

**Plain diffusers.** A stock ``EulerDiscreteScheduler`` (``timestep_spacing`` "trailing") with
one custom timestep reproduces ``G``: Euler starts from ``sigma z`` with
``sigma = sqrt((1 - a_t) / a_t)``, feeds the UNet ``sigma z / sqrt(sigma^2 + 1) = sqrt(1 - a_t) z``
and steps to sigma 0, which lands on ``x0_hat`` exactly (``tests/erase/test_sfd.py``). So the
saved ``pipeline/`` stays a stock ``StableDiffusionPipeline`` folder, sampled with
``pipe(prompt, timesteps=[t_init], guidance_scale=1.0)``; what ``load_pipeline`` returns is
a thin runtime subclass (:func:`one_step_pipeline`) whose *plain* call does exactly that and
whose ``save_pretrained`` writes the stock class, so what it saves still loads without us.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from .backbone import Backbone, Cond
from .errors import EraseError

#: The pipeline attribute that marks a one-step generator (its t_init); read by :func:`pipeline_t_init`.
ONE_STEP_ATTR = "one_step_t_init"
SCHEDULER = "EulerDiscreteScheduler"


def one_step_generate(backbone: Backbone, z: torch.Tensor, cond: Cond, t_init: int) -> torch.Tensor:
    """``G(z, c)``: clean latents from noise ``z`` in one evaluation of ``backbone.unet`` (no CFG)."""
    t = torch.full((z.shape[0],), int(t_init), device=z.device, dtype=torch.long)
    x_init = backbone.schedule.add_noise(torch.zeros_like(z), z, t)  # sqrt(1 - a) z
    return backbone.schedule.x0_from_output(x_init, backbone.predict(x_init, t, cond), t)


def one_step_scheduler(scheduler_config: Any):
    """The stock scheduler that, called with ``timesteps=[t_init]``, samples a one-step generator.

    ``steps_offset`` is unused by trailing spacing and explicit timesteps; it is 1 only because
    diffusers' pipeline warns about (and rewrites) any other value on every load.
    """
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler.from_config(scheduler_config, timestep_spacing="trailing", steps_offset=1,
                                              use_karras_sigmas=False, final_sigmas_type="zero")


def one_step_call(t_init: int) -> dict[str, Any]:
    """Keyword arguments of a stock pipeline call that samples the generator as it was trained."""
    return {"timesteps": [int(t_init)], "guidance_scale": 1.0}


# --- the record key ----------------------------------------------------------------------------
def sampling_block(t_init: int) -> dict[str, Any]:
    """The ``sampling`` entry of a one-step generator's ``erasure.json`` (see the module docstring)."""
    return {"one_step": True, "t_init": int(t_init), "scheduler": SCHEDULER, "call": one_step_call(t_init)}


def record_t_init(record: dict[str, Any]) -> int | None:
    """``t_init`` if the record describes a one-step generator, else None; a damaged block is an error."""
    sampling = record.get("sampling") or {}
    if not sampling.get("one_step"):
        return None
    t_init = sampling.get("t_init")
    if isinstance(t_init, bool) or not isinstance(t_init, int) or not 0 < t_init < 1000:
        raise EraseError(f"the record's sampling block says one_step but its t_init is {t_init!r}, not an integer in "
                         "1..999; re-run the erasure (or restore erasure.json's \"sampling\" entry)")
    return t_init


# --- the runtime mark --------------------------------------------------------------------------
def pipeline_t_init(pipe: Any) -> int | None:
    """The ``t_init`` a loaded pipeline must be sampled at, or None for a multi-step model."""
    return getattr(pipe, ONE_STEP_ATTR, None)


def mark_one_step(pipe: Any, t_init: int | None) -> None:
    """Mark ``pipe`` as a one-step generator at ``t_init`` (None: an ordinary model again)."""
    setattr(pipe, ONE_STEP_ATTR, None if t_init is None else int(t_init))


@functools.cache
def _one_step_class() -> type:
    """Defined on first use: importing diffusers costs seconds, and ``pipelines`` must import fast."""
    from diffusers import StableDiffusionPipeline

    class OneStepStableDiffusionPipeline(StableDiffusionPipeline):
        """A stock pipeline whose plain call samples the one-step generator as it was trained.

        ``pipe(prompt)`` means ``pipe(prompt, timesteps=[t_init], guidance_scale=1.0)``; an
        explicit ``timesteps``, ``sigmas``, ``num_inference_steps`` or ``guidance_scale`` wins.
        ``save_pretrained`` writes a plain ``StableDiffusionPipeline`` folder.
        """

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            t_init = pipeline_t_init(self)
            if len(args) < 4 and all(kwargs.get(k) is None for k in ("timesteps", "sigmas", "num_inference_steps")):
                kwargs["timesteps"] = [t_init]
            if len(args) < 7 and "guidance_scale" not in kwargs:
                kwargs["guidance_scale"] = 1.0
            return super().__call__(*args, **kwargs)

        def save_pretrained(self, save_directory: Any, **kwargs: Any) -> None:
            from .artifact import stock_pipeline

            stock_pipeline(self).save_pretrained(save_directory, **kwargs)

    return OneStepStableDiffusionPipeline


def one_step_pipeline(pipe: Any, t_init: int) -> Any:
    """``pipe``'s modules (shared, not copied) as a pipeline whose plain call samples in one step.

    The scheduler is the stock Euler one of :func:`one_step_scheduler`; the result is marked
    (:func:`mark_one_step`) so this package's samplers route it too.
    """
    from .artifact import stock_pipeline

    if pipeline_t_init(pipe) == t_init and isinstance(pipe, _one_step_class()):
        return pipe
    modules = stock_pipeline(pipe, one_step_scheduler(pipe.scheduler.config)).components
    wrapped = _one_step_class()(**modules, requires_safety_checker=False)
    mark_one_step(wrapped, t_init)
    wrapped.set_progress_bar_config(disable=True)
    return wrapped
