"""``erase mini-canvas train|refine|distil|check``: rebuild the embedded model, go on training it,
distil its one-step generator, or measure their quality bars."""

from __future__ import annotations

import json
import logging

from pipelines.shipped import mini_canvas_dir

logger = logging.getLogger("erase")


def add_parser(sub) -> None:
    p = sub.add_parser("mini-canvas", help="train or check the embedded mini-canvas models", description=__doc__)
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    train = verbs.add_parser("train", help="train the text-to-image model, judge and mini CLIP from scratch")
    train.add_argument("--out", default=mini_canvas_dir(), help="folder to write (default: the package's shipped folder)")
    train.add_argument("--budget", choices=["smoke", "cpu", "gpu"], default="cpu", help="training length (default: cpu, about an hour on 2 cores)")
    train.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--overwrite", action="store_true", help="replace an existing folder (the shipped one included)")
    train.set_defaults(handler=run_train)
    refine = verbs.add_parser("refine", help="go on training a built folder's UNet and text encoder (a warm restart) into --out")
    refine.add_argument("--folder", default=mini_canvas_dir(), help="built mini-canvas folder to start from (default: the shipped one)")
    refine.add_argument("--out", required=True, help="folder to write (never the one it starts from)")
    refine.add_argument("--steps", type=int, default=2000, help="training steps of this phase (default: 2000, 22 min on 2 CPU cores)")
    refine.add_argument("--lr", type=float, default=3e-4, help="peak learning rate of this phase (default: 3e-4)")
    refine.add_argument("--seed", type=int, default=None, help="batch and noise seed (default: the number of phases --folder went through, build included, so that no earlier phase drew its batches)")
    refine.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    refine.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    refine.set_defaults(handler=run_refine)
    distil = verbs.add_parser("distil", help="distil the one-step generator (SFD stage one) into FOLDER/one_step and record its bars")
    distil.add_argument("--folder", default=mini_canvas_dir(), help="mini-canvas folder whose pipeline to distil (default: the shipped one)")
    distil.add_argument("--steps", type=int, default=None, help="SiD iterations (default: SFD's stage-one default)")
    distil.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    distil.add_argument("--seed", type=int, default=0)
    distil.add_argument("--overwrite", action="store_true", help="replace an existing one_step folder")
    distil.add_argument("--fresh", action="store_true", help="ignore the checkpoint of an interrupted build and start over")
    distil.set_defaults(handler=run_distil)
    check = verbs.add_parser("check", help="measure the quality bars of a built mini-canvas folder")
    check.add_argument("--folder", default=mini_canvas_dir(), help="folder to check (default: the shipped one)")
    check.add_argument("--seeds", type=int, default=4, help="seeds per prompt for the generated-sample bar")
    check.add_argument("--json", default=None, metavar="FILE", help="also write the measurements to FILE")
    check.set_defaults(handler=run_check)


def run_train(args) -> int:
    from pipelines import resolve_device

    from .training.build import build_mini_canvas

    device = resolve_device(args.device)
    manifest = build_mini_canvas(args.out, budget=args.budget, device=device, seed=args.seed, overwrite=args.overwrite, progress=not args.quiet)
    print(json.dumps({"out": args.out, "timings": manifest["timings"]}, indent=2))
    return 0


def run_refine(args) -> int:
    from pipelines import resolve_device

    from .training.refine import refine_mini_canvas

    manifest = refine_mini_canvas(args.folder, args.out, steps=args.steps, lr=args.lr, seed=args.seed,
                                  device=resolve_device(args.device), overwrite=args.overwrite, progress=not args.quiet)
    print(json.dumps({"out": args.out, "refined": manifest["refined"]}, indent=2))
    return 0


def run_distil(args) -> int:
    from pipelines import resolve_device

    from ..one_step import distil_one_step

    entry = distil_one_step(args.folder, steps=args.steps, seed=args.seed, device=resolve_device(args.device),
                            overwrite=args.overwrite, fresh=args.fresh, progress=not args.quiet)
    print(json.dumps(entry, indent=2))
    return 0


def run_check(args) -> int:
    from pipelines.atomic import write_text

    from .training.quality import measure

    results = measure(args.folder, seeds=args.seeds, progress=not args.quiet)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        write_text(args.json, text + "\n")
    return 0
