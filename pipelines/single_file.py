"""Export an SD 1.x pipeline as one original-layout (CompVis/LDM) ``.safetensors`` file.

A1111, ComfyUI and most fine-tuning scripts read Stable Diffusion as a single checkpoint in the
layout of the original ``ldm`` code: ``model.diffusion_model.*`` (UNet),
``first_stage_model.*`` (VAE) and ``cond_stage_model.transformer.*`` (CLIP text encoder).
diffusers converts that layout *to* its own when loading (``from_single_file``) but ships no
converter back, so this module writes it.

The name mapping is derived from the model itself (how many blocks, how many layers per block,
which blocks have attentions, downsamplers or upsamplers), never from SD 1.5's fixed indices, so
any UNet2DConditionModel / AutoencoderKL of the SD family maps correctly. Only tensor names (and
the VAE attention shapes) change; the values are written bit for bit, in the dtype they have.

Reading the file back needs a diffusers folder of the same architecture for the configs::

    StableDiffusionPipeline.from_single_file(path, config=folder, local_files_only=True)
    # or: pipelines.load_pipeline(path, config=folder)
"""

from __future__ import annotations

from typing import Any

import torch
from safetensors.torch import save_file

from .atomic import atomic_file
from .errors import EraseError

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_ENCODER_PREFIX = "cond_stage_model.transformer.text_model."

#: diffusers module path -> LDM module path; a tensor takes the name of its nearest listed module.
ModuleMap = dict[str, str]

# LDM builds a UNet residual block from nn.Sequential stacks, so its layers are named by position:
# in_layers = (GroupNorm, SiLU, conv), emb_layers = (SiLU, linear), out_layers = (GroupNorm, SiLU,
# Dropout, conv).
UNET_RESNET_LAYERS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
VAE_RESNET_LAYERS = {
    "norm1": "norm1",
    "conv1": "conv1",
    "norm2": "norm2",
    "conv2": "conv2",
    "conv_shortcut": "nin_shortcut",
}
VAE_ATTENTION_LAYERS = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}

#: The way out offered whenever a pipeline cannot be written in the original layout.
SHARE_AS_FOLDER = "share it as a diffusers folder instead (pipelines.save_pipeline_folder, or an artifact's pipeline/)"


def export_single_file(pipe: Any, path: str, *, overwrite: bool = False) -> str:
    """Write ``pipe``'s UNet, VAE and text encoder as one LDM-layout ``.safetensors`` file.

    The file is written atomically (a reader never sees half of it) and an existing ``path`` is
    only replaced with ``overwrite=True``. Returns ``path``.
    """
    if not str(path).endswith(".safetensors"):
        raise EraseError(f"single-file checkpoint '{path}' must end in .safetensors (loaders pick the format by suffix)")
    check_exportable(pipe)
    tensors = {
        **_prefixed(UNET_PREFIX, _rename(pipe.unet.state_dict(), unet_module_map(pipe.unet), "UNet")),
        **_prefixed(VAE_PREFIX, _vae_linear_as_conv(_rename(pipe.vae.state_dict(), vae_module_map(pipe.vae), "VAE"))),
        **_prefixed(TEXT_ENCODER_PREFIX, _text_encoder_tensors(pipe.text_encoder)),
    }
    tensors = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    with atomic_file(path, overwrite=overwrite) as tmp:
        # diffusers does not read the metadata; "format": "pt" is the usual marker of a torch file.
        save_file(tensors, tmp, metadata={"format": "pt"})
    return path


def check_exportable(pipe: Any) -> None:
    """Refuse, with the reason and the alternative, anything that is not an SD 1.x pipeline."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    if getattr(pipe, "text_encoder_2", None) is not None:
        raise EraseError(
            f"single-file export supports SD 1.x pipelines; this one has a second text encoder (SDXL): {SHARE_AS_FOLDER}"
        )
    expected = {"unet": UNet2DConditionModel, "vae": AutoencoderKL, "text_encoder": CLIPTextModel}
    for name, cls in expected.items():
        if not isinstance(getattr(pipe, name, None), cls):
            raise EraseError(
                f"single-file export needs a Stable Diffusion pipeline whose {name} is a {cls.__name__}; "
                f"got {type(getattr(pipe, name, None)).__name__}: {SHARE_AS_FOLDER}"
            )
    unet = pipe.unet.config
    if unet.class_embed_type or unet.addition_embed_type or unet.mid_block_type != "UNetMidBlock2DCrossAttn":
        raise EraseError(
            "single-file export supports the SD 1.x/2.x UNet (no class or added embeddings, a cross-attention "
            f"mid block); this UNet differs (an SDXL, upscaler or custom model): {SHARE_AS_FOLDER}"
        )
    if pipe.text_encoder.config.hidden_act != "quick_gelu":
        raise EraseError(
            "this pipeline's text encoder is OpenCLIP (SD 2.x, activation "
            f"'{pipe.text_encoder.config.hidden_act}'), which the original layout stores as "
            "cond_stage_model.model.*; single-file export only writes SD 1.x's OpenAI CLIP "
            f"(cond_stage_model.transformer.*), so SD 2.x is not supported: {SHARE_AS_FOLDER}"
        )


def unet_module_map(unet: Any) -> ModuleMap:
    """Where each UNet module lives in LDM's ``input_blocks`` / ``middle_block`` / ``output_blocks``.

    LDM numbers its input blocks in one running sequence: ``input_blocks.0`` is ``conv_in``, then
    every residual layer (with its attention beside it as ``.1``) and every downsampler takes the
    next index. Output blocks run the same way, and an upsampler sits after the last layer's
    resnet (and attention) inside that layer's output block.
    """
    modules: ModuleMap = {
        "conv_in": "input_blocks.0.0",
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    index = 1
    for b, block in enumerate(unet.down_blocks):
        for j in range(len(block.resnets)):
            modules |= _layers(f"down_blocks.{b}.resnets.{j}", f"input_blocks.{index}.0", UNET_RESNET_LAYERS)
            if _has_attention(block, j):
                modules[f"down_blocks.{b}.attentions.{j}"] = f"input_blocks.{index}.1"
            index += 1
        if block.downsamplers is not None:
            modules[f"down_blocks.{b}.downsamplers.0.conv"] = f"input_blocks.{index}.0.op"
            index += 1

    # The mid block alternates resnet, attention, resnet: middle_block.0, .1, .2.
    for i in range(len(unet.mid_block.resnets)):
        modules |= _layers(f"mid_block.resnets.{i}", f"middle_block.{2 * i}", UNET_RESNET_LAYERS)
    for i in range(len(unet.mid_block.attentions)):
        modules[f"mid_block.attentions.{i}"] = f"middle_block.{2 * i + 1}"

    index = 0
    for b, block in enumerate(unet.up_blocks):
        for j in range(len(block.resnets)):
            modules |= _layers(f"up_blocks.{b}.resnets.{j}", f"output_blocks.{index}.0", UNET_RESNET_LAYERS)
            slot = 1
            if _has_attention(block, j):
                modules[f"up_blocks.{b}.attentions.{j}"] = f"output_blocks.{index}.{slot}"
                slot += 1
            if j == len(block.resnets) - 1 and block.upsamplers is not None:
                modules[f"up_blocks.{b}.upsamplers.0.conv"] = f"output_blocks.{index}.{slot}.conv"
            index += 1
    return modules


def vae_module_map(vae: Any) -> ModuleMap:
    """Where each VAE module lives in LDM's ``encoder.down`` / ``decoder.up`` / ``mid`` levels.

    LDM numbers the decoder's levels by resolution like the encoder's (``up.0`` is the
    full-resolution level, run last), while diffusers numbers them in the order they run, so
    decoder ``up_blocks.i`` is LDM ``up.{n-1-i}``.
    """
    modules: ModuleMap = {"quant_conv": "quant_conv", "post_quant_conv": "post_quant_conv"}
    for side in ("encoder", "decoder"):
        modules |= {
            f"{side}.conv_in": f"{side}.conv_in",
            f"{side}.conv_norm_out": f"{side}.norm_out",
            f"{side}.conv_out": f"{side}.conv_out",
        }
        mid = getattr(vae, side).mid_block
        for i in range(len(mid.resnets)):
            modules |= _layers(f"{side}.mid_block.resnets.{i}", f"{side}.mid.block_{i + 1}", VAE_RESNET_LAYERS)
        for i, attention in enumerate(mid.attentions):
            if attention is not None:
                modules |= _layers(f"{side}.mid_block.attentions.{i}", f"{side}.mid.attn_{i + 1}", VAE_ATTENTION_LAYERS)

    for i, block in enumerate(vae.encoder.down_blocks):
        for j in range(len(block.resnets)):
            modules |= _layers(f"encoder.down_blocks.{i}.resnets.{j}", f"encoder.down.{i}.block.{j}", VAE_RESNET_LAYERS)
        if block.downsamplers is not None:
            modules[f"encoder.down_blocks.{i}.downsamplers.0.conv"] = f"encoder.down.{i}.downsample.conv"

    levels = len(vae.decoder.up_blocks)
    for i, block in enumerate(vae.decoder.up_blocks):
        level = levels - 1 - i
        for j in range(len(block.resnets)):
            modules |= _layers(f"decoder.up_blocks.{i}.resnets.{j}", f"decoder.up.{level}.block.{j}", VAE_RESNET_LAYERS)
        if block.upsamplers is not None:
            modules[f"decoder.up_blocks.{i}.upsamplers.0.conv"] = f"decoder.up.{level}.upsample.conv"
    return modules


def _layers(diffusers: str, ldm: str, layers: dict[str, str]) -> ModuleMap:
    """Map a block's named layers one by one, for blocks whose inner names differ between layouts."""
    return {f"{diffusers}.{ours}": f"{ldm}.{theirs}" for ours, theirs in layers.items()}


def _has_attention(block: Any, layer: int) -> bool:
    """Cross-attention blocks pair each resnet with a transformer; plain blocks have none."""
    return layer < len(getattr(block, "attentions", None) or ())


def _rename(state_dict: dict[str, torch.Tensor], modules: ModuleMap, component: str) -> dict[str, torch.Tensor]:
    """Rename every tensor by its nearest enclosing module in ``modules``; unplaceable ones are refused.

    A transformer block maps as a whole (``attn1.to_q`` etc. are named the same in both layouts),
    so only the enclosing module's path changes. A tensor with no listed ancestor means a model
    feature the original layout has no place for: losing it silently would corrupt the export.
    """
    renamed = {}
    for key, tensor in state_dict.items():
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:cut])
            if module in modules:
                renamed[".".join([modules[module], *parts[cut:]])] = tensor
                break
        else:
            raise EraseError(
                f"{component} tensor '{key}' has no place in the original single-file layout, so this "
                f"pipeline is not a plain SD 1.x model: {SHARE_AS_FOLDER}"
            )
    return renamed


def _vae_linear_as_conv(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LDM's VAE has no linear layers: its attention q/k/v/proj_out are 1x1 convolutions.

    diffusers stores them as linear weights ``(out, in)``; LDM (and diffusers' own loader, which
    squeezes them back) expects ``(out, in, 1, 1)``.
    """
    return {name: t[:, :, None, None] if t.ndim == 2 else t for name, t in tensors.items()}


def _text_encoder_tensors(text_encoder: Any) -> dict[str, torch.Tensor]:
    """CLIPTextModel's own names, below ``text_model.`` (newer transformers drop that level)."""
    return {key.removeprefix("text_model."): t for key, t in text_encoder.state_dict().items()}


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + name: t for name, t in tensors.items()}
