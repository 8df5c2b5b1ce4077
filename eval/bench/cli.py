"""``erase bench``: erase every target with every method, evaluate each, write a leaderboard.

    erase bench --out runs/bench                      # every method x every mini-canvas target
    erase bench --quick --out runs/bench-quick        # one style and one object (stripes, star), 2 seeds
    erase bench --methods esd --targets styles --out runs/bench
    erase bench --methods esd --attack --out runs/bench-esd   # + UnlearnDiffAtk on the attack subset
    accelerate launch --multi_gpu --num_processes 2 -m erase bench --out runs/bench   # each process takes the next free cell
    erase bench --out runs/bench --records eval/measurements/bench   # records kept to commit; resumes from them
    erase bench --methods esd,advunlearn,esd+advunlearn --out runs/stack   # + ESD's UNet under AdvUnlearn's text encoder
    erase bench --methods esd,advunlearn@esd --out runs/seq   # @ AdvUnlearn's text encoder trained in front of ESD's UNet
    erase bench --timing-only --out runs/cost         # seconds/iteration, projected s/concept, memory at SD 1.5 scale
    erase bench --methods doco --targets stripes,star --out runs/ablation \
        --variant doco-off=doco:surgery=off --variant doco-pcgrad=doco:surgery=pcgrad   # one method, three rows

The bench is resumable: run the same command again and finished cells are skipped; a cell
whose method version or configuration changed is redone (``--rerun`` redoes everything).
``--attack`` runs ``erase attack unlearndiffatk`` on the erased model of every cell whose target
is in ``--attack-targets`` (one attacked cell costs far more than the rest), with a bench-sized
budget (``--attack-prompts``, ``--attack-stages``, ``--attack-iterations``, ``--attack-option``);
a changed attack budget redoes the attacks only. Writes ``OUT/leaderboard.md``,
``OUT/leaderboard.json`` and the plots (``OUT/retain_vs_forget.png``, ``OUT/asr.png``) beside
``OUT/cells/``; ``python -m eval.bench.readme`` puts them into the README. ``--variant
NAME=METHOD:KEY=VALUE,...`` benches a method under other options as its own row and folders
(:mod:`eval.bench.variants`). ``--records DIR`` keeps the finished cells' records where they
outlive ``--out`` (:mod:`eval.bench.records`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pipelines import MINI_CANVAS
from pipelines.errors import ConfigError

from .cells import Cell, is_done, read_record, with_eval_columns
from .records import keep, restore
from .stacks import is_sequential, is_stack, part_names, stack_cell
from .variants import Variant, parse_variants

logger = logging.getLogger("erase")

#: ``--quick``: one style and one object that every method is expected to erase: a smoke
#: leaderboard of every registered method (README, "Running the bench yourself", says how long it takes).
QUICK_TARGETS = ("stripes", "star")
QUICK_SEEDS = 2
ATTACK = "unlearndiffatk"
#: The README's attack table: three styles and three objects, easy and hard ones for ESD.
ATTACK_TARGETS = ("solid", "gradient", "split", "circle", "square", "triangle")


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="every method x every target, resumable, with a leaderboard", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, metavar="DIR", help="bench folder (created; an existing one is resumed)")
    p.add_argument("--methods", default=None, help="comma-separated methods (default: every registered method); "
                   "methods joined with + are a stack row, e.g. esd+advunlearn (artifacts merged); TOP@UNDER a "
                   "sequential one, e.g. advunlearn@esd (AdvUnlearn trained in front of ESD's UNet; eval/bench/stacks.py)")
    p.add_argument("--targets", default="all", help="all, styles, objects, or comma-separated concept names")
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_TARGETS)} with {QUICK_SEEDS} eval seeds")
    p.add_argument("--seeds", default=None, help="eval seeds: a count or a list (default: erase eval's)")
    p.add_argument("--model", default=MINI_CANVAS, help="base model (default: mini-canvas)")
    p.add_argument("--method-config", action="append", default=[], metavar="METHOD=FILE", help="YAML/JSON options for one method")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=METHOD[:KEY=VALUE,...]",
                   help="also bench METHOD with these options as its own row NAME, e.g. doco-off=doco:surgery=off")
    p.add_argument("--rerun", action="store_true", help="redo finished cells too")
    p.add_argument("--records", default=None, metavar="DIR",
                   help="also keep each finished cell's record (cell.json) in DIR/cells/, a folder to commit, and resume "
                        "from the records found there: a bench that spans sessions whose --out does not survive")
    a = p.add_argument_group("the attack column (erase attack unlearndiffatk, on a subset of targets)")
    a.add_argument("--attack", action="store_true", help="attack the erased model of every cell on --attack-targets")
    a.add_argument("--attack-targets", default=",".join(ATTACK_TARGETS), metavar="NAMES",
                   help="comma-separated targets to attack (default: %(default)s)")
    a.add_argument("--attack-prompts", type=int, default=10, metavar="K", help="answer-set prompts attacked per target (default 10)")
    a.add_argument("--attack-stages", type=int, default=10, help="timesteps swept (default 10; official 50)")
    a.add_argument("--attack-iterations", type=int, default=20, help="steps per timestep (default 20; official 40)")
    a.add_argument("--attack-option", action="append", default=[], metavar="KEY[=JSON]",
                   help="any other `erase attack unlearndiffatk` option, e.g. tokens=5, seeds=1, no_cache")
    c = p.add_argument_group("cost at SD 1.5 scale (eval.bench.cost; random weights, nothing erased or evaluated)")
    c.add_argument("--timing-only", action="store_true",
                   help="time each method's official iterations on a random-weight SD 1.5; write OUT/timing.{json,md}")
    c.add_argument("--timing-iterations", type=int, default=12, metavar="N", help="iterations timed per method (default 12; median after 2)")
    c.add_argument("--device", default=None, help="device of the timing run (default: cuda if available, else cpu)")
    c.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"], help="autocast of the timing run (default no)")
    c.add_argument("--gradient-checkpointing", action="store_true", help="timing run recomputes activations in the backward pass (less memory, more time)")
    c.add_argument("--memory-budget-gb", type=float, default=None, metavar="GB",
                   help="skip methods estimated above this (default: the GPU's memory, or the RAM available now)")
    p.set_defaults(handler=run)


def _methods(text: str | None) -> list[str]:
    from erase.registry import available, get_method

    if text is None:
        return list(available())
    names = [m.strip() for m in text.split(",") if m.strip()]
    for name in names:
        if is_stack(name):
            part_names(name)  # each part must be a method, as below
        else:
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


def attack_settings(args) -> dict | None:
    """The ``erase attack`` flags of every attacked cell (None without ``--attack``)."""
    if not args.attack:
        return None
    settings = {"attack": ATTACK, "limit": args.attack_prompts, "stages": args.attack_stages,
                "iterations": args.attack_iterations}
    for entry in args.attack_option:
        key, sep, value = entry.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not key or key in ("attack", "model", "concept", "out", "overwrite"):
            raise ConfigError(f"--attack-option {entry!r}: give an option of `erase attack {ATTACK}` as KEY=VALUE "
                              "(e.g. tokens=5) or KEY for a switch (e.g. no_cache); model, concept and out are the cell's")
        try:
            settings[key] = json.loads(value) if sep else True
        except ValueError:
            settings[key] = value
    return settings


def _check_attack(cell: Cell) -> None:
    """Parse one attacked cell's ``erase attack`` command now, so that a bad option fails before any training."""
    from .cell import attack_argv, parse

    try:
        parse("attacks.cli", attack_argv(cell, cell.folder("OUT")))
    except ConfigError as e:
        raise ConfigError(f"the attack options do not parse as `erase attack {ATTACK}` options ({e}); "
                          "fix --attack-option or the --attack-* flags") from None


def _eval_seeds(args) -> int | str | None:
    """The eval seeds in one spelling, so that ``--quick`` and ``--seeds 2`` (and ``--seeds " 2"``)
    give the same cell key instead of redoing finished cells: a count as an int, a list as
    comma-joined digits."""
    if args.quick:
        return QUICK_SEEDS
    if args.seeds is None:
        return None
    text = str(args.seeds).strip()
    if text.isdigit():
        return int(text)
    return ",".join(part.strip() for part in text.split(",") if part.strip())


def plan_cells(args) -> list[Cell]:
    """Every cell the options ask for, with its full method config resolved."""
    from erase.config import build_config
    from erase.registry import get_method
    from eval.canvas import mini_canvas

    spec = mini_canvas()
    files = _method_files(args.method_config)
    seeds = _eval_seeds(args)
    eval_settings = {} if seeds is None else {"seeds": seeds}
    attack = attack_settings(args)
    attacked = {spec.canonical(name) for name in args.attack_targets.split(",") if name.strip()} if attack else set()
    rows = [(name, None) for name in _methods(args.methods)] + [(v.method, v) for v in parse_variants(args.variant)]

    def cell_of(name: str, variant: Variant | None, target: str, attacked_with: dict | None) -> Cell:
        method = get_method(name)
        values = files.get(name) if variant is None else {**(files.get(name) or {}), **variant.overrides}
        config = build_config(method.config_class, values, concepts=[target])
        return Cell(method=name, target=target, kind=spec.kind(target), config=config.key_values(),
                    method_version=method.version, model=args.model, eval_settings=eval_settings, attack=attacked_with,
                    variant=variant and variant.name, inputs=method(config).external_inputs())

    cells = []
    for name, variant in rows:
        for target in _targets(args.targets, args.quick, spec):
            attacked_with = attack if target in attacked else None
            if is_stack(name):  # its parts are the plain rows' cells of the target, never attacked themselves
                parts = [cell_of(part, None, target, None) for part in part_names(name)]
                cells.append(stack_cell(parts, attacked_with, sequential=is_sequential(name)))
            else:
                cells.append(cell_of(name, variant, target, attacked_with))
    if attack and not any(c.attack for c in cells):
        logger.warning("--attack: none of the planned targets is in --attack-targets (%s); nothing is attacked",
                       args.attack_targets)
    return cells


def run(args) -> int:
    from pipelines import load_pipeline
    from pipelines.sharding import is_main_process

    from .cell import run_cell
    from .claims import claim, start_run

    if args.timing_only:
        from .cost import run as run_timing

        stacks = [name for name in _methods(args.methods) if is_stack(name)]
        if stacks:
            raise ConfigError(f"--timing-only times training, and a stack row ({stacks[0]}) trains nothing of its own: "
                              "time its parts (--methods " + ",".join(part_names(stacks[0])) + ")")
        if args.timing_iterations < 1:
            raise ConfigError(f"--timing-iterations must be at least 1, got {args.timing_iterations}")
        return run_timing(args, _methods(args.methods))
    started = time.perf_counter()
    cells = plan_cells(args)
    for cell in [c for c in cells if c.attack][:1]:
        _check_attack(cell)
    model_sha256 = base_model_sha256(args.model)
    if args.records:
        _restore_records(args.records, args.out, cells, model_sha256)
    done = [not args.rerun and is_done(c, args.out, model_sha256) for c in cells]
    todo = [c for c, finished in zip(cells, done) if not finished]
    if is_main_process():  # said once, not once per process
        _warn_unhashed([c for c, finished in zip(cells, done) if finished], args.out)
        logger.info("%d cells, %d to run (%d already done)", len(cells), len(todo), len(cells) - len(todo))
    run_id = start_run(args.out)  # after every process has read the same finished set, before any adds to it
    pipe = None
    for i, cell in enumerate(todo, 1):
        if not claim(cell, args.out, run_id):
            continue  # another process has it
        logger.info("cell %d/%d: %s erases %s%s", i, len(todo), cell.label, cell.target, " (+ attack)" if cell.attack else "")
        if pipe is None:
            pipe = load_pipeline(args.model)
        run_cell(cell, args.out, pipe, progress=not args.quiet, model_sha256=model_sha256)
        if args.records:
            keep(args.records, args.out, cell)
    # No barrier here: cells take hours and a collective would time out. Each process writes the
    # outputs from the records on disk when it finishes, under a file lock, so the last one to
    # take the lock reads every finished record and writes the complete outputs.
    with _locked(os.path.join(args.out, ".outputs.lock")):
        found = ((c, read_record(c, args.out)) for c in cells)
        finished = [(c, r) for c, r in found if r is not None and r.get("status") == "done"]
        if args.records:  # also the cells finished before --records was given
            for cell, _ in finished:
                keep(args.records, args.out, cell)
        records = [with_eval_columns(r, c.folder(args.out)) for c, r in finished]
        write_outputs(args.out, records, seconds_this_run=time.perf_counter() - started)
    logger.info("wrote %s/leaderboard.md (%d cells) in %.0f s", args.out, len(records), time.perf_counter() - started)
    return 0


def _restore_records(records: str, out: str, cells: list[Cell], model_sha256: str | None) -> None:
    """The main process puts the kept records back into ``out``; every process then reads the same
    finished set (a collective, like :func:`start_run`)."""
    from pipelines.sharding import is_main_process, wait_for_everyone

    if os.path.realpath(records) == os.path.realpath(out):
        raise ConfigError(f"--records {records} is the bench folder itself: give a folder of its own (e.g. "
                          f"eval/measurements/<name>) for the records to outlive --out")
    if os.path.exists(records) and not os.path.isdir(records):
        raise ConfigError(f"--records {records} is a file: give a folder (created if missing) for the cell records")
    if is_main_process():
        logger.info("%d finished cells restored from %s", restore(records, out, cells, model_sha256), records)
    wait_for_everyone()


def base_model_sha256(model: str) -> str | None:
    """The base model's weights hash, which every record keeps (None for a hub id: loading it fails
    offline with its own message)."""
    from pipelines.fingerprint import weights_sha256
    from pipelines.loading import local_weights

    path = local_weights(model)
    return weights_sha256(path) if path else None


def _warn_unhashed(finished: list[Cell], out: str) -> None:
    """Finished cells recorded before records kept the base model's hash are reused unchecked: say so."""
    unhashed = sum(1 for c in finished if "model_sha256" not in (read_record(c, out) or {}))
    if unhashed:
        logger.warning("%d finished cells in %s were recorded before the bench kept the base model's hash; they are "
                       "reused as they are: pass --rerun if the base model changed since they ran", unhashed, out)


@contextmanager
def _locked(path: str) -> Iterator[None]:
    """An exclusive lock between processes (POSIX ``flock``; elsewhere none, one process at a time)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_outputs(out: str, records: list[dict], seconds_this_run: float | None) -> None:
    """``leaderboard.json``, ``leaderboard.md`` and the plots, from the cell records."""
    from pipelines.atomic import write_text

    from .leaderboard import aggregate, drifts, machines, markdown, total_seconds
    from .plots import write_plots

    board = aggregate(records)
    summary = {"schema": 1, "cells": len(records), "leaderboard": board, "seconds_this_run": None if seconds_this_run is None else round(seconds_this_run, 1),
               "cell_seconds_total": total_seconds(records), "machines": machines(records), "drift": drifts(records)}
    write_text(os.path.join(out, "leaderboard.json"), json.dumps(summary, indent=2) + "\n")
    write_text(os.path.join(out, "leaderboard.md"), markdown(board, records))
    write_plots(out, records)
