"""The shapes of the mini-canvas text-to-image model: a genuine SD 1.x architecture, shrunk.

Everything here is a stock diffusers/transformers class, so the saved folder is a plain
``StableDiffusionPipeline`` that any diffusers install loads. Sizes were chosen so that one
training step and one erasure step are cheap on two CPU cores while the model still draws
every object in every style (``shared/docs/mini-canvas.md`` has the prototype's figures).
"""

from __future__ import annotations

from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from pipelines.tokenizer import CLIP_VOCAB_SIZE

IMAGE_SIZE = 32
LATENT_SIZE = 16  # the VAE downsamples once: 32x32x3 -> 16x16x4
TEXT_WIDTH = 64

# SD 1.x's noise schedule, so that samplers and methods see familiar timesteps.
SD1_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, steps_offset=1)


def make_vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=IMAGE_SIZE,
        mid_block_add_attention=False,  # 16x16 attention costs more than it gives at this size
    )


def make_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=LATENT_SIZE,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64, 96),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=8,
        norm_num_groups=16,
    )


def make_text_encoder(tokenizer) -> CLIPTextModel:
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=CLIP_VOCAB_SIZE,
            hidden_size=TEXT_WIDTH,
            intermediate_size=4 * TEXT_WIDTH,
            num_hidden_layers=3,
            num_attention_heads=4,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def training_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**SD1_BETAS, clip_sample=False, prediction_type="epsilon")


def sampling_scheduler() -> DDIMScheduler:
    """The scheduler saved in the pipeline: DDIM, as UnlearnCanvas samples."""
    return DDIMScheduler(**SD1_BETAS, clip_sample=False, set_alpha_to_one=False, prediction_type="epsilon")
