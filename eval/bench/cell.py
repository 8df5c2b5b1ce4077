"""Run one bench cell: erase the target with the method, evaluate the result, write the record.

Each step leaves its own folder (``artifact/``, ``eval/``) written atomically, so a killed cell
resumes at the step it was in: an erasure half-way through continues from its checkpoint, a
finished erasure is not trained again. ``cell.json`` is written last; its presence with
``status: done`` is what "finished" means. The method is reached through the method registry
and the evaluation through the ``erase eval`` command itself, so the bench measures exactly
what a user running the two commands would get.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from typing import Any

from pipelines.atomic import write_text

from .cells import Cell, read_record

logger = logging.getLogger(__name__)


def _erase(cell: Cell, folder: str, pipe: Any, progress: bool) -> None:
    from erase.config import build_config
    from erase.method import RunOptions
    from erase.registry import get_method

    method = get_method(cell.method)
    config = build_config(method.config_class, cell.config)
    checkpoints = os.path.join(folder, ".checkpoints")
    result = method(config).fit(pipe, RunOptions(model_name=cell.model, work_dir=checkpoints, progress=progress))
    result.save(os.path.join(folder, "artifact"), pipeline=False)
    shutil.rmtree(checkpoints, ignore_errors=True)


def _evaluate(cell: Cell, folder: str, progress: bool) -> None:
    from eval import cli as eval_cli

    parser = argparse.ArgumentParser(prog="erase")
    eval_cli.add_parser(parser.add_subparsers())
    argv = ["eval", "--model", os.path.join(folder, "artifact"), "--target", cell.target, "--out", os.path.join(folder, "eval")]
    for key, value in sorted(cell.eval_settings.items()):
        argv += [f"--{key.replace('_', '-')}", str(value)]
    args = parser.parse_args(argv)
    args.quiet = not progress
    eval_cli.run(args)


def _read(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_cell(cell: Cell, root: str, pipe: Any, progress: bool = True) -> dict[str, Any]:
    """Bring ``cell`` to done and return its record (``cell.json``)."""
    folder = cell.folder(root)
    previous = read_record(cell, root)
    if previous is not None and previous.get("key") != cell.key:
        logger.info("%s / %s: configuration changed since the last run, redoing the cell", cell.method, cell.target)
        shutil.rmtree(folder)
    os.makedirs(folder, exist_ok=True)
    started = time.perf_counter()
    if not os.path.exists(os.path.join(folder, "artifact")):
        _erase(cell, folder, pipe, progress)
    if not os.path.exists(os.path.join(folder, "eval")):
        _evaluate(cell, folder, progress)
    erasure = _read(os.path.join(folder, "artifact", "erasure.json"))
    evaluation = _read(os.path.join(folder, "eval", "eval.json"))
    record = {
        "schema": 1,
        "status": "done",
        "key": cell.key,
        "method": cell.method,
        "method_version": cell.method_version,
        "target": cell.target,
        "kind": cell.kind,
        "config": cell.config,
        "metrics": evaluation["metrics"],
        "ci": evaluation["ci"],
        "base_metrics": (evaluation.get("base") or {}).get("metrics"),
        "cost": {**erasure["cost"], "eval_seconds": evaluation["cost"].get("eval_seconds")},
        "cell_seconds_this_run": round(time.perf_counter() - started, 2),
    }
    write_text(os.path.join(folder, "cell.json"), json.dumps(record, indent=2) + "\n")
    return record
