"""``erase demo``: the before/after Gradio page, served on this machine.

    erase run esd --concept stripes --out runs/no-stripes   # about a minute on a CPU
    erase demo --artifact runs/no-stripes                   # then open http://127.0.0.1:7860
    erase demo --runs runs                                  # every artifact under runs/
    erase demo                                              # mini-canvas; erase live in the page

Gradio is imported only when the command runs, so ``erase --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from pipelines import resolve_device  # the one --device check every command shares
from pipelines.errors import ConfigError

logger = logging.getLogger("erase")

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="serve the before/after Gradio demo on this machine",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None,
                   help="base model: 'mini-canvas', a diffusers folder, a hub id (default: the base recorded in the "
                        "first artifact, else mini-canvas)")
    p.add_argument("--artifact", action="append", default=[], metavar="DIR",
                   help="an `erase run` artifact folder to offer (repeatable); it must come from the base model")
    p.add_argument("--runs", action="append", default=[], metavar="DIR",
                   help="offer every artifact folder directly under DIR (repeatable); runs of another base are skipped")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default: this machine only; the demo has no login, so think before 0.0.0.0)")
    p.add_argument("--port", type=int, default=7860, help="port to serve on (default: 7860)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    g = p.add_argument_group("live erasing (visitors erase a mini-canvas concept in the page)")
    g.add_argument("--live-erase", action=argparse.BooleanOptionalAction, default=None,
                   help="offer the Erase form (default: on for the mini-canvas model only)")
    g.add_argument("--live-steps", type=int, default=None, metavar="N",
                   help="training steps the form starts with (default: each method's own, ESD 200)")
    g.add_argument("--live-max-steps", type=int, default=1000, metavar="N", help="most training steps a visitor may ask for")
    g.add_argument("--live-config", default=None, metavar="FILE",
                   help="YAML or JSON mapping of method name to its options for live erasures, e.g. {esd: {lr: 1.0e-4}}")
    p.add_argument("--dry-run", action="store_true", help="load the model and the artifacts, build the page, exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .app import build_app, launch
    from .model import load_demo_model

    _check(args)
    model = load_demo_model(
        args.model, artifacts=args.artifact, runs=args.runs, device=resolve_device(args.device), live_erase=args.live_erase,
        live_steps=args.live_steps, live_max_steps=args.live_max_steps,
        live_overrides=_live_config(args.live_config) if args.live_config else None,
    )
    app = build_app(model)
    summary = f"{model.name} with {len(model.saved)} saved erasure(s), live erasing {'on' if model.live else 'off'}"
    if args.dry_run:
        logger.info("demo ready: %s (dry run: not serving)", summary)
        return 0
    if args.host not in LOOPBACK:
        logger.warning("serving on %s: anyone who can reach this machine can use the demo (it has no login)", args.host)
    try:
        url = launch(app, args.host, args.port)
    except OSError as error:
        raise ConfigError(f"cannot serve on {args.host}:{args.port} ({error}); pass a free --port") from None
    logger.info("demo of %s on %s (Ctrl+C stops it)", summary, url)
    app.block_thread()
    return 0


def _check(args: argparse.Namespace) -> None:
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port; pass a number from 1 to 65535")
    if args.live_max_steps < 1:
        raise ConfigError(f"--live-max-steps must be at least 1, got {args.live_max_steps}")
    if args.live_steps is not None and not 1 <= args.live_steps <= args.live_max_steps:
        raise ConfigError(f"--live-steps must be from 1 to --live-max-steps ({args.live_max_steps}), got {args.live_steps}")


def _live_config(path: str) -> dict[str, dict[str, Any]]:
    """``--live-config``: method name -> options, each checked against the method's config now."""
    from erase import available
    from erase.config import checked_values, read_config_file

    methods = available()
    overrides = {}
    for name, values in read_config_file(path).items():
        if name not in methods:
            raise ConfigError(f"--live-config {path}: '{name}' is not a method; use one of {', '.join(methods)}")
        if not isinstance(values, dict):
            raise ConfigError(f"--live-config {path}: '{name}' must map option names to values, got {values!r}")
        overrides[name] = checked_values(methods[name].config_class, values, f"--live-config {path} ({name})")
    return overrides
