"""The model card (``README.md``) written beside every erasure artifact."""

from __future__ import annotations

import json
from typing import Any


def model_card(result: Any) -> str:
    """A short, honest card: what was erased from what, how to load it, what it cost."""
    record = result.record
    concepts = ", ".join(f"`{c}`" for c in record["concepts"])
    cost = record.get("cost", {})
    lines = [
        f"# {record['method']}: {concepts} erased" if concepts else f"# {record['method']}: no concept erased (a model prepared for erasure)",
        "",
        f"Base model: `{record['base']['model']}` (SHA-256 of the changed base tensors: "
        f"`{record['base']['fingerprint'][:16]}…`). Method: `{record['method']}`, seed {record['seed']}.",
        f"Changed: {len(result.tensors)} tensors of the {' and '.join(sorted(result.components))} "
        f"({sum(t.numel() for t in result.tensors.values()):,} parameters, {result.size_mb:.1f} MB).",
        "",
        "## Use",
        "",
        "With plain diffusers (no need for this package):",
        "",
        "```python",
        "from diffusers import StableDiffusionPipeline",
        'pipe = StableDiffusionPipeline.from_pretrained("<this folder>/pipeline")',
        "```",
        "",
        "With `erase` (applies `erasure.safetensors` to the recorded base, checking its fingerprint):",
        "",
        "```python",
        "import pipelines",
        'pipe = pipelines.load_pipeline("<this folder>")',
        "```",
        "",
    ]
    if "text_encoder" in result.components and len(result.components) == 1:
        lines += [
            "Only the text encoder changed: `text_encoder/` is a plain `CLIPTextModel` folder that",
            "plugs into any pipeline of the same base (`pipe.text_encoder = CLIPTextModel.from_pretrained(...)`).",
            "",
        ]
    if record.get("stack"):
        lines += ["## Stack", "", "Several erasures of the same base, which change different tensors, merged by `erase stack`:", ""]
        lines += [f"- `{p['method']}` ({', '.join(p['concepts'])}, seed {p['seed']}): the {' and '.join(p['components'])}, "
                  f"from `{p['path']}`" for p in record["stack"]] + [""]
    under = record.get("unet_from")
    if under:
        lines += ["## Trained in front of another erasure", "",
                  f"The text encoder was trained in front of the UNet of `{under['method']}` ({', '.join(under['concepts'])}, "
                  f"from `{under['path']}`), whose tensors this artifact holds too; its targets were the base model's.", ""]
    sampling = record.get("sampling", {})
    if sampling.get("one_step"):
        lines += [
            f"This is a **one-step generator**: `pipeline/` carries an Euler scheduler and samples in one UNet",
            f"evaluation at t = {sampling['t_init']} with `pipe(prompt, timesteps=[{sampling['t_init']}], guidance_scale=1.0)`.",
            "`pipelines.load_pipeline` returns it with that as its plain call; with plain diffusers, pass the arguments:",
            "a multi-step call (the default 50 steps, CFG) runs but is not what the generator was trained for.",
            "",
        ]
    kept = record.get("epochs")
    if kept and "chosen" in kept:
        unit = kept.get("unit", "epoch")
        lines += [
            "## Which state",
            "",
            f"The trained tensors were kept at several {unit}s (`epochs/epoch_<{unit}>.safetensors`); this artifact",
            f"applies {kept['chosen_by']}. Another one, without retraining: `erase.epochs.load_epoch(\"<this folder>\", N)`.",
            "",
        ]
    if cost:
        lines += ["## Cost", ""] + [f"- {k}: {v}" for k, v in cost.items()] + [""]
    metrics = record.get("metrics")
    if metrics:
        lines += ["## Measured", "", "```json", json.dumps(metrics, indent=2), "```", ""]
    lines += [
        "## Configuration",
        "",
        "```json",
        json.dumps(record["config"], indent=2),
        "```",
        "",
        "## Limitations",
        "",
        "Erasure lowers how often the model produces the concept for ordinary prompts; it is not a",
        "guarantee. Optimised prompts can often bring a concept back: measure it with `erase attack`,",
        "and measure what else was lost with `erase eval`.",
        "",
    ]
    return "\n".join(lines)
