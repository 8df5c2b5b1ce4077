"""Run one bench cell: erase the target with the method, evaluate the result, write the record.

Each step leaves its own folder (``artifact/``, ``eval/``) written atomically, so a killed cell
resumes at the step it was in: an erasure half-way through continues from its checkpoint, a
finished erasure is not trained again. ``cell.json`` is written last; its presence with
``status: done`` is what "finished" means. The method is reached through the method registry,
the evaluation and the attack through the ``erase eval`` and ``erase attack`` commands
themselves, so the bench measures exactly what a user running those commands would get.

A stack row's cell (:mod:`eval.bench.stacks`) makes its artifact by merging its parts' artifacts
(``_erase_stack``), or for a sequential row by training its top part in front of the other's, and is
evaluated and attacked like the others.

An attacked cell also has ``attack/`` (``attack.json`` and ``adversarial_prompts.jsonl``) and,
once that folder is complete, ``attack/bench_key.txt`` with the attack key it was run under:
a folder without it, or with another key, is attacked again; erasure and eval are untouched.
The whole cell runs as if its process were alone (``sharding.alone``): under ``accelerate``
each process takes whole cells, so the eval and attack inside must not split their prompts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from dataclasses import replace
from typing import Any

from pipelines.atomic import write_text
from pipelines.errors import ConfigError

from .cells import Cell, drift_of, is_done, read_record, same_model, sample_ms_per_image
from .stacks import is_sequential

ATTACK_KEY_FILE = "bench_key.txt"

logger = logging.getLogger(__name__)


def _erase(cell: Cell, folder: str, pipe: Any, progress: bool) -> None:
    from erase.config import build_config
    from erase.method import RunOptions
    from erase.registry import get_method

    method = get_method(cell.method)
    config = build_config(method.config_class, cell.config)
    result = method(config).fit(pipe, RunOptions(model_name=cell.model, work_dir=checkpoint_dir(cell, folder), progress=progress))
    result.save(os.path.join(folder, "artifact"), pipeline=False)
    shutil.rmtree(os.path.join(folder, ".checkpoints"), ignore_errors=True)


def _erase_stack(cell: Cell, root: str, folder: str, pipe: Any, progress: bool, model_sha256: str | None) -> None:
    """A stack row's artifact (:mod:`eval.bench.stacks`): its parts' artifacts merged over the base, or
    for a sequential row (``top@under``) the top part trained in front of the under part's artifact."""
    from pipelines.stack import merged, stack_parts

    if is_sequential(cell.method):  # the top part trained in front of the under part's artifact
        under, top = cell.parts
        path = os.path.abspath(_part_artifact(under, root, folder, pipe, progress, model_sha256))
        _erase(replace(top, config={**top.config, "unet_from": path}), folder, pipe, progress)
        return
    folders = [_part_artifact(part, root, folder, pipe, progress, model_sha256) for part in cell.parts]
    merged(folders, stack_parts(folders), pipe).save(os.path.join(folder, "artifact"), pipeline=False)


def _part_artifact(part: Cell, root: str, folder: str, pipe: Any, progress: bool, model_sha256: str | None) -> str:
    """The artifact of one part: its own row's finished cell in this bench when there is one (records
    restored without their artifact do not count), else trained in ``folder/parts/<method>``."""
    finished = os.path.join(part.folder(root), "artifact")
    if is_done(part, root, model_sha256) and os.path.exists(os.path.join(finished, "erasure.json")):
        return finished
    own = os.path.join(folder, "parts", part.method)
    if not os.path.exists(os.path.join(own, "artifact")):
        _erase(part, own, pipe, progress)
    return os.path.join(own, "artifact")


def checkpoint_dir(cell: Cell, folder: str) -> str:
    """Where the cell's training checkpoints, one folder per cell key: a run killed under another
    configuration (a changed default, a variant) leaves its checkpoint beside this one instead of
    in the way of it, and a finished cell removes them all."""
    return os.path.join(folder, ".checkpoints", cell.key[:16])


def flags(settings: dict[str, Any]) -> list[str]:
    """``{"stages": 10, "no_cache": True}`` -> ``["--no-cache", "--stages", "10"]`` (False or None: left out)."""
    argv: list[str] = []
    for key, value in sorted(settings.items()):
        if value is None or value is False:
            continue
        argv.append(f"--{key.replace('_', '-')}")
        if value is not True:
            argv.append(str(value))
    return argv


class _RaisingParser(argparse.ArgumentParser):
    """A parser whose errors are exceptions, not a usage text and an exit: the bench reports them."""

    def error(self, message: str):
        raise ConfigError(f"{self.prog}: {message}")


def parse(module: str, argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by the ``erase`` subcommand of ``module``'s own parser (its checks, its
    defaults); a bad argument raises :class:`ConfigError` naming it."""
    import importlib

    parser = _RaisingParser(prog="erase")
    importlib.import_module(module).add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def command(module: str, argv: list[str], progress: bool) -> None:
    """Run an ``erase`` subcommand in this process."""
    args = parse(module, argv)
    args.quiet = not progress
    args.handler(args)


def _evaluate(cell: Cell, folder: str, progress: bool) -> None:
    argv = ["eval", "--model", os.path.join(folder, "artifact"), "--target", cell.target, "--out", os.path.join(folder, "eval")]
    command("eval.cli", argv + flags(cell.eval_settings), progress)


def attack_argv(cell: Cell, folder: str) -> list[str]:
    """``erase attack NAME --model <artifact> --concept <target> --out <cell>/attack --overwrite <settings>``."""
    settings = dict(cell.attack or {})
    name = settings.pop("attack")
    out = os.path.join(folder, "attack")
    return ["attack", name, "--model", os.path.join(folder, "artifact"), "--concept", cell.target, "--out", out,
            "--overwrite", *flags(settings)]


def _attacked(cell: Cell, folder: str) -> bool:
    try:
        with open(os.path.join(folder, "attack", ATTACK_KEY_FILE), encoding="utf-8") as f:
            return f.read().strip() == cell.attack_key
    except OSError:
        return False


def _attack(cell: Cell, folder: str, progress: bool) -> None:
    command("attacks.cli", attack_argv(cell, folder), progress)
    write_text(os.path.join(folder, "attack", ATTACK_KEY_FILE), f"{cell.attack_key}\n")


def _robustness(cell: Cell, folder: str) -> dict[str, Any] | None:
    """The attack's summary for the cell record (the shape of ``erase eval --attack``'s block, plus its key)."""
    if cell.attack is None or not _attacked(cell, folder):
        return None
    record = _read(os.path.join(folder, "attack", "attack.json"))
    keys = ("attack", "pre_asr", "asr", "budget", "seconds_per_prompt", "counts")
    cost = record["cost"]
    seconds = cost.get("wall_seconds")
    if seconds is not None:  # a resumed attack's own wall time plus what its interrupted runs spent
        seconds = round(seconds + cost.get("resumed_seconds", 0.0), 2)
    return {**{k: record.get(k) for k in keys}, "seconds": seconds, "key": cell.attack_key}


def _read(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def machine() -> dict[str, Any]:
    """Where a cell ran: its seconds mean little without it."""
    import platform

    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": torch.get_num_threads(), "gpu": gpu}


def run_cell(cell: Cell, root: str, pipe: Any, progress: bool = True, model_sha256: str | None = None) -> dict[str, Any]:
    """Bring ``cell`` to done and return its record (``cell.json``); ``model_sha256`` is the base
    model's weights hash (``pipelines.fingerprint.weights_sha256``), kept in the record."""
    from pipelines.sharding import alone

    folder = cell.folder(root)
    previous = read_record(cell, root)
    if previous is not None and previous.get("key") != cell.key:
        logger.info("%s / %s: configuration changed since the last run, redoing the cell", cell.label, cell.target)
        shutil.rmtree(folder)
    elif previous is not None and not same_model(previous, model_sha256):
        logger.info("%s / %s: the base model's weights changed since the last run, redoing the cell", cell.label, cell.target)
        shutil.rmtree(folder)
        previous = None
    os.makedirs(folder, exist_ok=True)
    started = time.perf_counter()
    with alone():
        if not os.path.exists(os.path.join(folder, "artifact")):
            if cell.parts:
                _erase_stack(cell, root, folder, pipe, progress, model_sha256)
            else:
                _erase(cell, folder, pipe, progress)
        if not os.path.exists(os.path.join(folder, "eval")):
            _evaluate(cell, folder, progress)
        if cell.attack is not None and not _attacked(cell, folder):
            _attack(cell, folder, progress)
    robustness = _robustness(cell, folder)
    if robustness is None and previous is not None and previous.get("key") == cell.key:
        robustness = previous.get("robustness")  # an attack of an earlier run that this one did not ask for stays
    erasure = _read(os.path.join(folder, "artifact", "erasure.json"))
    evaluation = _read(os.path.join(folder, "eval", "eval.json"))
    record = {
        "schema": 1,
        "status": "done",
        "key": cell.key,
        "method": cell.label,
        **({"variant_of": cell.method} if cell.variant is not None else {}),
        "method_version": cell.method_version,
        "target": cell.target,
        "kind": cell.kind,
        "config": cell.config,
        "metrics": evaluation["metrics"],
        "ci": evaluation["ci"],
        "base_metrics": (evaluation.get("base") or {}).get("metrics"),
        "drift": drift_of(evaluation, cell.target),
        "robustness": robustness,
        "cost": {**erasure["cost"], "eval_seconds": evaluation["cost"].get("eval_seconds"),
                 "sample_ms_per_image": sample_ms_per_image(evaluation),
                 "attack_seconds": (robustness or {}).get("seconds")},
        "cell_seconds_this_run": round(time.perf_counter() - started, 2),
        "machine": machine(),
        **({"model_sha256": model_sha256} if model_sha256 else {}),
    }
    write_text(os.path.join(folder, "cell.json"), json.dumps(record, indent=2) + "\n")
    return record
