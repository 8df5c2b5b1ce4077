"""``erase stack``: one artifact holding several erasures of the same base.

    erase stack runs/esd-solid runs/advunlearn-solid --out runs/esd-advunlearn-solid
    erase eval --model runs/esd-advunlearn-solid --target solid --out ...

The folder is an artifact like ``erase run``'s (method ``esd+advunlearn``, the union of the
tensors, a ``stack`` block in ``erasure.json`` naming its parts, and ``pipeline/``, the stock
diffusers folder holding both edits), so every command that takes an artifact takes it. The
rules (different tensors, same base) are :mod:`pipelines.stack`'s.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("erase")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "stack",
        help="write one artifact holding several erasures (e.g. AdvUnlearn's text encoder on ESD's UNet)",
        description="Merge two or more `erase run` artifacts of the same base model, which change different tensors, "
        "into one artifact (with its stock diffusers pipeline/).",
    )
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="`erase run` or `erase stack` artifact folders")
    p.add_argument("--out", required=True, metavar="DIR", help="artifact folder to write (must not exist unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--no-pipeline", action="store_true", help="skip exporting the full pipeline/ folder")
    p.set_defaults(handler=run)


def run(args) -> int:
    from pipelines.atomic import refuse_existing
    from pipelines.stack import stack

    refuse_existing(args.out, args.overwrite)
    result = stack(args.artifacts)
    result.save(args.out, overwrite=args.overwrite, pipeline=not args.no_pipeline)
    parts = ", ".join(f"{p['method']} ({'+'.join(p['components'])})" for p in result.record["stack"])
    logger.info("wrote %s: %s on %s", args.out, parts, result.record["base"]["model"])
    return 0
