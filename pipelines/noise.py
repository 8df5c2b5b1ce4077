"""The forward process and conversions between what a UNet predicts and what a method needs.

Notation (as in ``shared/docs/algorithms.md``): ``a_t = alphas_cumprod[t]``,
``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps``. A UNet predicts either ``eps`` (SD 1.x, SD 2 base)
or ``v = sqrt(a_t) eps - sqrt(1 - a_t) x0`` (SD 2 768-v). Methods are written against these
closed forms instead of patched schedulers (DoCo's official code edits diffusers for this).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PREDICTION_TYPES = ("epsilon", "v_prediction")


@dataclass
class NoiseSchedule:
    """``alphas_cumprod`` and the prediction type of a model, with the closed-form conversions."""

    alphas_cumprod: torch.Tensor  # (T,) float64 on CPU, moved on demand
    prediction_type: str = "epsilon"

    @classmethod
    def from_scheduler_config(cls, config) -> "NoiseSchedule":
        from diffusers import DDPMScheduler

        ddpm = DDPMScheduler.from_config(config)
        prediction_type = ddpm.config.prediction_type
        if prediction_type not in PREDICTION_TYPES:
            from .errors import ModelLoadError

            raise ModelLoadError(
                f"scheduler prediction_type '{prediction_type}' is not supported; use an epsilon or "
                "v_prediction model (SD 1.x / 2.x)"
            )
        return cls(ddpm.alphas_cumprod.double(), prediction_type)

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.shape[0]

    def _coefs(self, t: torch.Tensor | int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sqrt(a_t), sqrt(1 - a_t))`` shaped to broadcast against ``like`` (B, C, H, W)."""
        t = torch.as_tensor(t, device="cpu").long().reshape(-1)
        a = self.alphas_cumprod[t].to(device=like.device, dtype=like.dtype)  # (B,) or (1,)
        shape = (-1,) + (1,) * (like.dim() - 1)
        return a.sqrt().reshape(shape), (1 - a).sqrt().reshape(shape)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        s, c = self._coefs(t, x0)
        return s * x0 + c * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        """What the UNet is trained to output for ``x_t = add_noise(x0, noise, t)``."""
        if self.prediction_type == "epsilon":
            return noise
        s, c = self._coefs(t, x0)
        return s * noise - c * x0

    def x0_from_eps(self, x_t: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        s, c = self._coefs(t, x_t)
        return (x_t - c * eps) / s

    def eps_from_x0(self, x_t: torch.Tensor, x0: torch.Tensor, t) -> torch.Tensor:
        s, c = self._coefs(t, x_t)
        return (x_t - s * x0) / c

    def eps_from_output(self, x_t: torch.Tensor, output: torch.Tensor, t) -> torch.Tensor:
        """The noise estimate implied by a raw model output (identity for epsilon models)."""
        if self.prediction_type == "epsilon":
            return output
        s, c = self._coefs(t, x_t)
        return s * output + c * x_t

    def x0_from_output(self, x_t: torch.Tensor, output: torch.Tensor, t) -> torch.Tensor:
        """The clean-sample estimate implied by a raw model output (DoCo's and SFD's x̂0)."""
        if self.prediction_type == "epsilon":
            return self.x0_from_eps(x_t, output, t)
        s, c = self._coefs(t, x_t)
        return s * x_t - c * output


def guided(uncond_out: torch.Tensor, cond_out: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance: ``u + w (c - u)``. Linear, so it is the same in eps or v space."""
    return uncond_out + guidance * (cond_out - uncond_out)
