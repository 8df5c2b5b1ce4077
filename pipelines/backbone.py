"""The one view of a text-to-image model that methods, attacks and metrics are written against.

Methods never call ``pipe.unet(...)`` directly: they encode prompts with
:meth:`Backbone.encode`, predict with :meth:`Backbone.predict` and treat the conditioning as an
opaque value. SD 1.x and 2.x (epsilon and v-prediction) are served by :class:`Backbone`; an SDXL
backbone adds its pooled embeddings and size conditioning inside its own ``encode``/``predict``
without any method changing.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from .errors import ModelLoadError
from .noise import NoiseSchedule, guided
from .prompts import PromptEncoder

Cond = torch.Tensor  # SD 1.x/2.x: text-encoder hidden states (B, 77, D)


class Backbone:
    """An SD 1.x / 2.x pipeline seen as UNet + text encoder + VAE + noise schedule."""

    stock_pipeline_class = "StableDiffusionPipeline"

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.unet = pipe.unet
        self.vae = pipe.vae
        self.text_encoder = pipe.text_encoder
        self.tokenizer = pipe.tokenizer
        self.prompts = PromptEncoder(self.text_encoder, self.tokenizer)
        self.schedule = NoiseSchedule.from_scheduler_config(pipe.scheduler.config)

    # --- what there is -------------------------------------------------------------------
    @property
    def components(self) -> dict[str, torch.nn.Module]:
        """The trainable components by their pipeline attribute name."""
        return {"unet": self.unet, "text_encoder": self.text_encoder}

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def resolution(self) -> int:
        """The native image size (pixels)."""
        return self.unet.config.sample_size * self.vae_scale

    def latent_shape(self, batch: int) -> tuple[int, int, int, int]:
        size = self.unet.config.sample_size
        return (batch, self.unet.config.in_channels, size, size)

    def noise(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard-normal latents drawn on the CPU (same seed, same latents on any device)."""
        z = torch.randn(self.latent_shape(batch), generator=generator, dtype=torch.float32)
        return z.to(self.device, self.dtype)

    # --- conditioning --------------------------------------------------------------------
    def encode(self, prompts: Sequence[str], cache: bool = False) -> Cond:
        """Conditioning for prompts; ``cache=True`` only while the text encoder is frozen."""
        return self.prompts.cached(prompts) if cache else self.prompts.encode(prompts)

    def uncond(self, batch: int = 1) -> Cond:
        """The empty-prompt conditioning, from the text encoder as it is now.

        Not cached: methods that train the text encoder change it. Samplers compute it once per
        call and pass it to :meth:`predict`.
        """
        return self.prompts.encode([""]).expand(batch, -1, -1)

    # --- prediction ----------------------------------------------------------------------
    def predict(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor | int,
        cond: Cond,
        guidance: float | None = None,
        uncond: Cond | None = None,
    ) -> torch.Tensor:
        """Raw model output (eps or v). With ``guidance`` not in (None, 1), batched CFG.

        ``uncond`` defaults to the empty prompt; SFD passes a negative prompt here.
        """
        t = torch.as_tensor(t, device=x_t.device)
        if guidance is None or guidance == 1.0:
            return self.unet(x_t, t, encoder_hidden_states=cond).sample
        batch = x_t.shape[0]
        if uncond is None:
            uncond = self.uncond(batch)
        elif uncond.shape[0] != batch:
            uncond = uncond.expand(batch, -1, -1)
        if cond.shape[0] != batch:
            cond = cond.expand(batch, -1, -1)
        out = self.unet(
            torch.cat([x_t, x_t]),
            t.reshape(-1).repeat(2) if t.dim() else t,
            encoder_hidden_states=torch.cat([uncond.to(cond.dtype), cond]),
        ).sample
        out_uncond, out_cond = out.chunk(2)
        return guided(out_uncond, out_cond, guidance)

    def eps(self, x_t, t, cond, guidance=None, uncond=None) -> torch.Tensor:
        """Noise estimate, whatever the model predicts."""
        return self.schedule.eps_from_output(x_t, self.predict(x_t, t, cond, guidance, uncond), t)

    # --- pixels <-> latents --------------------------------------------------------------
    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1], ``(B, 3, H, W)`` float32."""
        images = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        return (images.float() / 2 + 0.5).clamp(0, 1)

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None, sample: bool = False) -> torch.Tensor:
        """Latents of images in [0, 1] ``(B, 3, H, W)``: the posterior mean (or a sample) times the scale."""
        dist = self.vae.encode(images.to(self.device, self.vae.dtype) * 2 - 1).latent_dist
        z = dist.sample(generator) if sample else dist.mean
        return z * self.vae.config.scaling_factor

    @staticmethod
    def to_pil(images: torch.Tensor) -> list[Image.Image]:
        arr = (images.detach().permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        return [Image.fromarray(a) for a in arr]

    @staticmethod
    def from_pil(images: Sequence[Image.Image], size: int | None = None) -> torch.Tensor:
        """PIL images to ``(B, 3, H, W)`` in [0, 1], resized to ``size`` if given."""
        arrs = []
        for im in images:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BICUBIC)
            arrs.append(np.asarray(im, dtype=np.float32) / 255.0)
        return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2)


def backbone_for(pipe: Any) -> Backbone:
    """The backbone of a loaded pipeline, or a clear error for an architecture we do not serve."""
    name = type(pipe).__name__
    if "XL" in name or "3" in name or "Flux" in name:
        raise ModelLoadError(
            f"{name} is not supported yet: erase serves Stable Diffusion 1.x and 2.x pipelines "
            "(StableDiffusionPipeline); SDXL is planned behind the same backbone interface"
        )
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        if getattr(pipe, part, None) is None:
            raise ModelLoadError(f"the pipeline has no '{part}'; load a complete Stable Diffusion pipeline")
    return Backbone(pipe)
