"""Train the mini-canvas judge with its default settings and print how good and how fast it is.

    python -m eval.canvas.check_judge --out /tmp/judge.safetensors

Prints held-out accuracy on fresh renders (seeds never used in training), on VAE-like softened
copies of them (a proxy for generated images), per-class accuracies, the main confusions and
the timings. Uses 2 CPU threads, the budget the judge is specified for.
"""

from __future__ import annotations

import argparse
import json
import logging

import torch

from eval.canvas import mini_canvas
from eval.judges import train_judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/judge.safetensors", help="where to save the trained judge")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    judge, report = train_judge(mini_canvas(), seed=args.seed)
    judge.save(args.out)
    print(json.dumps(report, indent=1))
    print(f"object {report['object_accuracy']:.2f}%  style {report['style_accuracy']:.2f}%  "
          f"(softened: {report['soft_object_accuracy']:.2f}% / {report['soft_style_accuracy']:.2f}%)  "
          f"render {report['render_seconds']} s  train {report['train_seconds']} s  -> {args.out}")


if __name__ == "__main__":
    main()
