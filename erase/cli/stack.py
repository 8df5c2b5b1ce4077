"""``erase stack``: one stock diffusers pipeline holding several erasures of the same base.

    erase stack runs/esd-solid runs/advunlearn-solid --out runs/esd-advunlearn-solid
    erase eval --model runs/esd-advunlearn-solid --target solid --out ...

The folder is what ``StableDiffusionPipeline.from_pretrained`` loads, plus a model card and
``stack.json`` (which artifacts it holds, and their base: ``erase eval`` and ``erase attack``
read it from there, as they read an artifact's). The rules (different tensors, same base) are
:mod:`pipelines.stack`'s.
"""

from __future__ import annotations

import json
import logging
import os

logger = logging.getLogger("erase")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "stack",
        help="write one pipeline holding several erasures (e.g. AdvUnlearn's text encoder on ESD's UNet)",
        description="Apply two or more `erase run` artifacts of the same base model, which change different tensors, "
        "and write the result as a stock diffusers folder (with stack.json naming them).",
    )
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="`erase run` artifact folders, applied in order")
    p.add_argument("--out", required=True, metavar="DIR", help="pipeline folder to write (must not exist unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(handler=run)


def run(args) -> int:
    from pipelines.artifact import CARD_FILE, save_pipeline_folder
    from pipelines.card import stack_card
    from pipelines.atomic import atomic_folder, refuse_existing
    from pipelines.stack import STACK_FILE, apply_stack, stack_record, stack_results

    refuse_existing(args.out, args.overwrite)
    results = stack_results(args.artifacts)
    pipe = apply_stack(results)
    record = stack_record(args.artifacts, results)
    with atomic_folder(args.out, overwrite=args.overwrite) as tmp:
        save_pipeline_folder(pipe, tmp)
        with open(os.path.join(tmp, STACK_FILE), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
        with open(os.path.join(tmp, CARD_FILE), "w", encoding="utf-8") as f:
            f.write(stack_card(record))
    held = ", ".join(f"{r.method} ({'+'.join(sorted(r.components))})" for r in results)
    logger.info("wrote %s: %s on %s", args.out, held, results[0].record["base"]["model"])
    return 0
