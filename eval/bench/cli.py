"""``erase bench``: erase every target with every method, evaluate each, write a leaderboard.

    erase bench --out runs/bench                      # every method x every mini-canvas target
    erase bench --quick --out runs/bench-quick        # 3 styles + 3 objects, 2 seeds
    erase bench --methods esd --targets styles --out runs/bench
    accelerate launch --multi_gpu --num_processes 2 -m erase bench --out runs/bench   # cells split over 2 processes

The bench is resumable: run the same command again and finished cells are skipped; a cell
whose method version or configuration changed is redone (``--rerun`` redoes everything).
Writes ``OUT/leaderboard.md`` and ``OUT/leaderboard.json`` beside ``OUT/cells/``.
"""

from __future__ import annotations

import json
import logging
import os
import time

from pipelines import MINI_CANVAS
from pipelines.errors import ConfigError

from .cells import Cell, is_done, read_record

logger = logging.getLogger("erase")

QUICK_TARGETS = ("stripes", "dots", "gradient", "star", "heart", "arrow")
QUICK_SEEDS = 2


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="every method x every target, resumable, with a leaderboard", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, metavar="DIR", help="bench folder (created; an existing one is resumed)")
    p.add_argument("--methods", default=None, help="comma-separated methods (default: every registered method)")
    p.add_argument("--targets", default="all", help="all, styles, objects, or comma-separated concept names")
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_TARGETS)} with {QUICK_SEEDS} eval seeds")
    p.add_argument("--seeds", default=None, help="eval seeds: a count or a list (default: erase eval's)")
    p.add_argument("--model", default=MINI_CANVAS, help="base model (default: mini-canvas)")
    p.add_argument("--method-config", action="append", default=[], metavar="METHOD=FILE", help="YAML/JSON options for one method")
    p.add_argument("--rerun", action="store_true", help="redo finished cells too")
    p.set_defaults(handler=run)


def _methods(text: str | None) -> list[str]:
    from erase.registry import available, get_method

    if text is None:
        return list(available())
    names = [m.strip() for m in text.split(",") if m.strip()]
    for name in names:
        get_method(name)  # unknown names fail here, with the list of known ones
    return names


def _targets(text: str, quick: bool, spec) -> list[str]:
    if quick:
        return list(QUICK_TARGETS)
    if text == "all":
        return list(spec.styles + spec.objects)
    if text in ("styles", "objects"):
        return list(getattr(spec, text))
    return [spec.canonical(name) for name in text.split(",") if name.strip()]


def _method_files(entries: list[str]) -> dict[str, dict]:
    from erase.config import read_config_file

    files = {}
    for entry in entries:
        method, sep, path = entry.partition("=")
        if not sep:
            raise ConfigError(f"--method-config {entry!r} must be METHOD=FILE, e.g. esd=esd.yaml")
        files[method.strip()] = read_config_file(path)
    return files


def plan_cells(args) -> list[Cell]:
    """Every cell the options ask for, with its full method config resolved."""
    from erase.config import build_config
    from erase.registry import get_method
    from eval.canvas import mini_canvas

    spec = mini_canvas()
    files = _method_files(args.method_config)
    eval_settings = {"seeds": QUICK_SEEDS if args.quick else args.seeds} if (args.quick or args.seeds) else {}
    cells = []
    for name in _methods(args.methods):
        method = get_method(name)
        for target in _targets(args.targets, args.quick, spec):
            config = build_config(method.config_class, files.get(name), concepts=[target])
            cells.append(Cell(method=name, target=target, kind=spec.kind(target), config=config.to_dict(),
                              method_version=method.version, model=args.model, eval_settings=eval_settings))
    return cells


def run(args) -> int:
    from pipelines import load_pipeline
    from pipelines.atomic import write_text

    from ..metrics.sharding import is_main_process, my_share, wait_for_everyone
    from .cell import run_cell
    from .leaderboard import aggregate, markdown

    started = time.perf_counter()
    cells = plan_cells(args)
    todo = [c for c in cells if args.rerun or not is_done(c, args.out)]
    logger.info("%d cells, %d to run (%d already done)", len(cells), len(todo), len(cells) - len(todo))
    mine = my_share(todo)
    if mine:
        pipe = load_pipeline(args.model)
        for i, cell in enumerate(mine, 1):
            logger.info("cell %d/%d: %s erases %s", i, len(mine), cell.method, cell.target)
            run_cell(cell, args.out, pipe, progress=not args.quiet)
    wait_for_everyone()
    if not is_main_process():
        return 0
    records = [r for r in (read_record(c, args.out) for c in cells) if r is not None and r.get("status") == "done"]
    board = aggregate(records)
    summary = {"schema": 1, "cells": len(records), "leaderboard": board, "seconds_this_run": round(time.perf_counter() - started, 1)}
    write_text(os.path.join(args.out, "leaderboard.json"), json.dumps(summary, indent=2) + "\n")
    write_text(os.path.join(args.out, "leaderboard.md"), markdown(board, records))
    logger.info("wrote %s/leaderboard.md (%d cells) in %.0f s", args.out, len(records), time.perf_counter() - started)
    return 0
