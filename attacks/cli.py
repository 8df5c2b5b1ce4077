"""``erase attack``: attack an erased model with adversarial prompts, or replay a saved attack.

    erase attack unlearndiffatk --model runs/no-stripes --concept stripes --out runs/no-stripes-attack
    erase attack unlearndiffatk --model /models/sd-no-nudity --base /models/sd14 --concept nudity \\
        --prompts nudity.csv --out attack/nudity          # judged by NudeNet, k = 5
    erase attack unlearndiffatk --model mini-canvas --concept star --out attack/base   # the unerased model
    erase attack --replay runs/no-stripes-attack          # regenerate each success, re-judge it
    erase attack --status runs/no-stripes-attack          # how far a running (or killed) attack has got
    accelerate launch --num_processes 4 -m erase attack unlearndiffatk ...   # prompts sharded

Writes ``OUT/attack.json`` (pre-ASR, ASR, budget, seconds per prompt, settings, per-prompt
results) and ``OUT/adversarial_prompts.jsonl``, atomically, never into the model's folder.
Every searched batch is journaled in ``.OUT.progress`` beside it (:mod:`attacks.journal`): a
killed run, started again with the same command, searches only the prompts it had not done.
Prompts default to the concept's prompts of ``erase eval``'s answer set, drawn with the same
sampler, so that on an unattacked model pre-ASR = 100 - UA.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from erase.cli.options import add_config_options, explicit_config_values
from erase.config import build_config, read_config_file
from pipelines import resolve_device  # the one --device check of every command
from pipelines.errors import ConfigError

from .judges import JUDGES

logger = logging.getLogger("erase")


def add_parser(sub) -> None:
    from .registry import available

    p = sub.add_parser("attack", help="attack an erased model with adversarial prompts (pre-ASR, ASR)",
                       description=__doc__.split("\n\n")[0])
    _one_line_errors(p)
    p.add_argument("--replay", default=None, metavar="DIR", help="regenerate every success saved in DIR and re-judge it")
    p.add_argument("--replay-model", default=None, metavar="MODEL", help="with --replay: the attacked model, if it moved")
    p.add_argument("--replay-judge", default=None, metavar="FILE", help="with --replay: the mini-canvas judge file, if it moved")
    p.add_argument("--replay-device", default=None, help="with --replay: torch device")
    p.add_argument("--status", default=None, metavar="DIR", help="how far the attack writing DIR has got (its progress "
                   "beside it), or its result once written; reads only, while the attack runs")
    p.set_defaults(handler=run_saved)
    attacks = p.add_subparsers(dest="attack", metavar="ATTACK", required=False)
    for name, cls in available().items():
        a = attacks.add_parser(name, help=cls.summary, description=f"{name}: {cls.summary}.")
        _one_line_errors(a)
        _add_common(a)
        add_config_options(a, cls.config_class)
        a.set_defaults(handler=run, attack_class=cls)


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """A bad option or attack name is one line on stderr and exit code 2, like every other mistake."""

    def error(message: str) -> None:
        sys.stderr.write(f"erase: error: {message}; see `erase attack --help`\n")
        sys.exit(2)

    parser.error = error  # type: ignore[method-assign]


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to attack")
    g.add_argument("--model", required=True, help="attacked model: an `erase run` artifact, a diffusers folder, or mini-canvas")
    g.add_argument("--base", default=None, help="unerased model for the target images (default: the artifact's recorded base)")
    g.add_argument("--concept", "--target", dest="concept", required=True, help="the erased concept (any of its names)")
    g.add_argument("--out", required=True, metavar="DIR", help="folder to write (must not exist unless --overwrite)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    g.add_argument("--fresh", action="store_true", help="discard the progress interrupted runs of this --out left "
                   "(.OUT.progress beside it) and start over")
    g.add_argument("--prompts", default=None, metavar="CSV", help="prompts from a CSV (prompt, seed[, guidance]) instead of the answer set")
    g.add_argument("--benchmark", choices=["mini-canvas", "unlearncanvas"], default="mini-canvas",
                   help="answer set, seeds and sampler of this world (default: mini-canvas)")
    g.add_argument("--seeds", default=None, help="a count (5) or a list (188,288,588); default: the benchmark's")
    g.add_argument("--limit", type=int, default=None, metavar="K", help="attack at most K prompts (each prompt's first seed first)")
    g.add_argument("--steps", type=int, default=None, help="DDIM steps of every generation (default: the benchmark's, as erase eval)")
    g.add_argument("--guidance", type=float, default=None, help="guidance of prompts without their own (default: the benchmark's)")
    g.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    g.add_argument("--config", default=None, metavar="FILE", help="YAML or JSON file of attack options (flags override it)")
    g.add_argument("--cache-dir", default=None, help="cache of base generations, shared with erase eval (default: $ERASE_CACHE or ~/.cache/erase)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the generation cache")
    j = p.add_argument_group("judge (local files; nothing downloads)")
    j.add_argument("--judge-kind", choices=JUDGES, default=None,
                   help="who says the concept is back (default: nudenet for nudity, else the benchmark's classifier)")
    j.add_argument("--judge", default=None, metavar="FILE", help="mini-canvas judge weights (default: the shipped judge)")
    j.add_argument("--style-classifier", default=None, metavar="FILE", help="UnlearnCanvas style classifier checkpoint")
    j.add_argument("--object-classifier", default=None, metavar="FILE", help="UnlearnCanvas object classifier checkpoint")
    j.add_argument("--classifier-arch", default=None, help="timm architecture of the UnlearnCanvas classifiers")
    j.add_argument("--nudenet-labels", default=None, help="comma-separated NudeNet labels counted as nudity (default: UnlearnDiffAtk's nine)")
    j.add_argument("--nudenet-model", default=None, metavar="FILE", help="NudeNet .onnx detector (default: the nudenet package's)")
    j.add_argument("--nudenet-threshold", type=float, default=None, help="NudeNet score above which a label counts (default 0.45)")


def _check_out(out: str, model: str, overwrite: bool) -> None:
    from pipelines.atomic import refuse_existing

    refuse_existing(out, overwrite)
    model_dir, out_dir = os.path.abspath(os.path.expanduser(model)), os.path.abspath(out)
    if os.path.isdir(model_dir) and (out_dir == model_dir or out_dir.startswith(model_dir + os.sep)):
        raise ConfigError(f"--out {out} is inside the model folder {model}; erase attack never writes there, choose a "
                          "folder outside it")


def run(args: argparse.Namespace) -> int:
    from pipelines.atomic import work_dir
    from pipelines.cache import default_cache_root
    from pipelines.cost import PeakMemory
    from pipelines.sharding import is_main_process

    from .records import write
    from .runner import run_attack
    from .setup import prepare

    started = time.perf_counter()
    _check_out(args.out, args.model, args.overwrite)
    cls = args.attack_class
    file_values = read_config_file(args.config) if args.config else {}
    attack = cls(build_config(cls.config_class, file_values, **explicit_config_values(args, cls.config_class)))
    journal = work_dir(args.out, "progress")
    with PeakMemory() as memory:
        setup = prepare(args, resolve_device(args.device))
        report = run_attack(attack, setup.model, setup.base, setup.concept, setup.items, setup.judge, setup.sampler,
                            progress=not args.quiet, judge_info=setup.judge_info,
                            cache_root=None if args.no_cache else (args.cache_dir or default_cache_root()),
                            journal=journal, fresh=args.fresh)
    if not is_main_process():
        return 0
    report.record["settings"].update(setup.settings)
    report.record["cost"].update(wall_seconds=round(time.perf_counter() - started, 2),
                                 peak_rss_mb=round(memory.peak_rss_mb, 1), peak_gpu_mb=round(memory.peak_gpu_mb, 1))
    write(args.out, report.record, report.adversarial, overwrite=args.overwrite)
    if report.journal is not None:
        report.journal.finish()
    counts = report.record["counts"]
    logger.info("wrote %s: pre-ASR %s%%, ASR %s%% on %d prompts (%d skipped), %.1f s per prompt", args.out,
                report.pre_asr, report.asr, counts["evaluated"], counts["skipped"], report.record["seconds_per_prompt"] or 0)
    return 0


def run_saved(args: argparse.Namespace) -> int:
    """``--status DIR`` or ``--replay DIR``: about an attack already started, nothing attacked."""
    if args.status is not None:
        return _status(args.status)
    if args.replay is None:
        raise ConfigError("name an attack (`erase attack unlearndiffatk ...`), or pass --status DIR to see how far an "
                          "attack has got, or --replay DIR to check a saved one")
    return _replay(args)


def _status(out: str) -> int:
    """One line for the written result of ``out``, then one per run journaled beside it, newest first."""
    from pipelines.atomic import work_dir

    from .journal import progress

    lines = []
    try:
        with open(os.path.join(out, "attack.json"), encoding="utf-8") as f:
            record = json.load(f)
        lines.append(f"{out}: done: {record['attack']} on {record['concept']!r}, pre-ASR {record['pre_asr']}%, ASR "
                     f"{record['asr']}% on {record['counts']['evaluated']} prompts")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for run in progress(work_dir(out, "progress")):
        what = f"{run.get('attack', 'an attack')} on {run['concept']!r}" if "concept" in run else "an attack"
        of = f", {run['prompts']} prompts" if "prompts" in run else ""
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run["updated"]))
        done = (f"{run['searched']} searched, {run['successes']} of them brought the concept back ({run['seconds']:.0f} s); "
                f"last batch {when}" if run["searched"] else f"no batch searched yet (started {when})")
        lines.append(f"{out}: in progress: {what}{of}: {done} (settings {run['key'][:12]})")
    if not lines:
        raise ConfigError(f"no attack writes {out}: it has no attack.json and no progress beside it "
                          f"({work_dir(out, 'progress')}); check the --out of the attack")
    print("\n".join(lines))
    return 0


def _replay(args: argparse.Namespace) -> int:
    from .replay import replay

    result = replay(args.replay, model=args.replay_model, judge_path=args.replay_judge, device=resolve_device(args.replay_device))
    print(json.dumps(result, indent=2))
    if result["disagreements"]:
        logger.warning("the judge disagrees on %d of %d replayed successes (prompts %s)", len(result["disagreements"]),
                       result["replayed"], result["disagreements"])
        return 1
    return 0
