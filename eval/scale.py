"""Cost of a method at Stable Diffusion 1.5 scale: ``python -m eval.scale --method esd``.

Speed and memory do not depend on weight values, so the pipeline is SD 1.5's published
architecture with random weights (nothing is downloaded). The command runs a few training
iterations of a registered method on the given device and prints seconds per iteration
(median after warm-up) and peak GPU memory, to compare with the papers' figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import torch


def sd15_pipeline(device: str, dtype: torch.dtype = torch.float32):
    """SD 1.5's architecture (UNet 860 M, VAE 84 M, CLIP ViT-L/14 text encoder 123 M), random weights."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    from pipelines.tokenizer import clip_tokenizer

    tokenizer = clip_tokenizer()
    with torch.device(device):
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
            scaling_factor=0.18215,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                max_position_embeddings=77, hidden_act="quick_gelu", vocab_size=49408,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
            )
        )
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return pipe.to(device, dtype)


def method_config(method: str, iterations: int, options: dict, concept: str = "star"):
    """The validated config of a timing run: ``options`` (``concepts`` may override the concept) with ``iterations`` steps."""
    import erase

    cls = erase.get_method(method)
    config = cls.config_class(**{"concepts": [concept], **options, "steps": iterations})
    config.validate()
    return cls(config)


def measure(method: str, iterations: int, device: str, mixed_precision: str, options: dict, warmup: int = 2,
            gradient_checkpointing: bool = False) -> dict:
    """Seconds per iteration (median over the iterations after the first ``warmup``) and peak memory.

    An iteration is one call of the method's loss (one optimiser step), timed from one call to
    the next, so the last one is not timed; with too few iterations for a warm-up, every timed
    one counts, and with a single iteration the loop's mean.
    """
    import erase

    pipe = sd15_pipeline(device)
    instance = method_config(method, iterations, options)
    times: list[float] = []
    original_loss = instance.loss

    def timed_loss(step, generator):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter())
        return original_loss(step, generator)

    instance.loss = timed_loss
    run = erase.RunOptions(mixed_precision=mixed_precision, gradient_checkpointing=gradient_checkpointing, progress=False)
    result = instance.fit(pipe, run)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    per_iteration = gaps[warmup:] or gaps or [result.record["cost"]["train_seconds"] / max(len(times), 1)]
    return {
        "method": method,
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else device,
        "mixed_precision": mixed_precision,
        "gradient_checkpointing": gradient_checkpointing,
        "iterations": len(times),
        "timed_iterations": len(per_iteration),
        "seconds_per_iteration_median": round(statistics.median(per_iteration), 4),
        "peak_gpu_mb": result.record["cost"]["peak_gpu_mb"],
        "peak_rss_mb": result.record["cost"]["peak_rss_mb"],
        "trained_parameters": sum(t.numel() for t in result.tensors.values()),
        "options": options,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="esd")
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"])
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in the backward pass (less memory)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=JSON", help="method option, e.g. params=\"esd-u\"")
    args = parser.parse_args(argv)
    options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)}
    print(json.dumps(measure(args.method, args.iterations, args.device, args.mixed_precision, options,
                             gradient_checkpointing=args.gradient_checkpointing)))


if __name__ == "__main__":
    main()
