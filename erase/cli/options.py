"""Command-line options generated from a config dataclass (one source for help and defaults)."""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any, Literal

from ..config import config_fields


def _scalar_type(tp: Any) -> Any:
    """The argparse ``type`` for a scalar annotation (Optional[...] unwrapped)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _scalar_type(args[0])
    return tp


def add_config_options(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One ``--flag`` per field. Defaults are suppressed so that only flags the user typed
    override a ``--config`` file; the help shows the dataclass default."""
    group = parser.add_argument_group(f"{config_class.__name__} options")
    for name, (field, tp) in config_fields(config_class).items():
        flag = field.metadata.get("cli", "--" + name.replace("_", "-"))
        help_text = field.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
        origin = typing.get_origin(tp)
        scalar = _scalar_type(tp)
        if origin in (list, tuple):
            kwargs.update(action="append", metavar=name.rstrip("s").upper())
        elif scalar is bool:
            kwargs.update(action=argparse.BooleanOptionalAction)
        elif typing.get_origin(scalar) is Literal:
            kwargs.update(choices=list(typing.get_args(scalar)))
        else:
            kwargs.update(type=scalar, metavar=scalar.__name__.upper())
        shown = _default_text(field)
        group.add_argument(flag, help=f"{help_text}{shown}", **kwargs)


def _default_text(field) -> str:
    import dataclasses

    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return ""
    if value in (None, [], ""):
        return ""
    return f" (default: {value})"


def explicit_config_values(args: argparse.Namespace, config_class: type) -> dict[str, Any]:
    """The config fields the user set on the command line."""
    return {name: getattr(args, name) for name in config_fields(config_class) if hasattr(args, name)}
