"""The ``erase`` command.

Subcommands live in their own modules, each with ``add_parser(subparsers)`` and
``run(args) -> int``. Commands that belong to higher layers (evaluation, attacks, the demo) are
found by module path, so this entry point is the only place that reaches upward, and only when
the command is asked for.

Every :class:`~pipelines.errors.EraseError` ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pipelines.errors import EraseError

#: (command name, module path); each module has add_parser(subparsers) and run(args).
COMMANDS = [
    ("methods", "erase.cli.methods"),
    ("run", "erase.cli.run"),
    ("stack", "erase.cli.stack"),
    ("eval", "eval.cli"),
    ("bench", "eval.bench.cli"),
    ("mini-canvas", "eval.canvas.cli"),
    ("demo", "demos.cli"),
    ("attack", "attacks.cli"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="erase",
        description="Erase concepts from text-to-image diffusion models, attack the result, measure what was lost.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for _, module in COMMANDS:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="erase: %(message)s")
    for noisy in ("httpx", "urllib3", "huggingface_hub", "diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return int(args.handler(args) or 0)
    except EraseError as e:
        print(f"erase: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("erase: interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
