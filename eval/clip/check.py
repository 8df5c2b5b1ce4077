"""Train the mini-canvas CLIP with its default settings, save it, and print how good and how fast it is.

    python -m eval.clip.check --out /tmp/mini_clip [--overwrite] [--device cuda]

Prints zero-shot object / style / pair accuracy on fresh renders (seeds never used in training),
also on VAE-like softened copies (a proxy for generated images), the render and training times,
and the CLIP score (torchmetrics' 0-100, and the raw cosine) of matching and mismatched
(prompt, render) pairs, computed on the model reloaded from ``--out`` through open_clip.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import torch
from PIL import Image

from eval.canvas import mini_canvas
from eval.canvas.mini import MiniCanvas
from eval.clip.mini import BACKBONE, load_mini_clip, save_mini_clip
from eval.clip.score import clip_score
from eval.clip.train import train_mini_clip
from eval.clip.zeroshot import render_labelled


def score_pairs(world: MiniCanvas, folder: str, per_pair: int, seed: int, device: str) -> dict[str, dict[str, float]]:
    """CLIP scores of fresh renders with their own caption and with captions that get one or both concepts wrong."""
    model, preprocess, tokenizer = load_mini_clip(folder, device=device)
    seeds = world.seed_range("judge-heldout")[:per_pair * len(world.objects) * len(world.styles)]
    arrays, objects, styles = render_labelled(world, seeds)
    images = [Image.fromarray(array) for array in arrays]
    rng = np.random.default_rng(seed)
    # A random other class: add 1 .. classes-1 modulo the number of classes.
    other_objects = (objects + rng.integers(1, len(world.objects), len(objects))) % len(world.objects)
    other_styles = (styles + rng.integers(1, len(world.styles), len(styles))) % len(world.styles)
    captions = {
        "matching": zip(objects, styles),
        "wrong_object": zip(other_objects, styles),
        "wrong_style": zip(objects, other_styles),
        "wrong_both": zip(other_objects, other_styles),
    }
    result = {}
    for name, pairs in captions.items():
        prompts = [world.prompt(world.objects[o], world.styles[s]) for o, s in pairs]
        result[name] = {
            "clip_score": round(clip_score(images, prompts, model, preprocess, tokenizer), 2),
            "raw_cosine": round(clip_score(images, prompts, model, preprocess, tokenizer, raw_cosine=True), 4),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/mini_clip", help="folder to save the trained model in")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--steps", type=int, default=2000, help="optimisation steps")
    parser.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=2,
                        help="CPU threads for torch; use 1 while other jobs share the cores (2 threads on "
                             "2 busy cores ran 10x slower)")
    parser.add_argument("--score-per-pair", type=int, default=5, help="fresh renders per pair for the CLIP scores")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    world = mini_canvas()
    model, report = train_mini_clip(world, seed=args.seed, steps=args.steps, device=args.device)
    save_mini_clip(model, args.out, report, report["model_cfg"], overwrite=args.overwrite)
    scores = score_pairs(world, args.out, args.score_per_pair, args.seed, args.device)

    print(json.dumps({**report, "clip_scores": scores}, indent=1))
    print(f"zero-shot on fresh renders: object {report['object_accuracy']:.2f}%  "
          f"style {report['style_accuracy']:.2f}%  pair {report['pair_accuracy']:.2f}%  "
          f"(softened: {report['soft_object_accuracy']:.2f}% / {report['soft_style_accuracy']:.2f}%)")
    print(f"render {report['render_seconds']} s  train {report['train_seconds']} s  "
          f"({report['steps']} steps, {report['threads']} threads, {report['device']})  -> {args.out}")
    print(f"CLIP score ({BACKBONE}): " + "  ".join(
        f"{name} {s['clip_score']:.2f} (cos {s['raw_cosine']:.3f})" for name, s in scores.items()))


if __name__ == "__main__":
    main()
