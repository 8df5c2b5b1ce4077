"""Method configurations: dataclasses whose field help is the CLI help and the docs.

Every method has a ``@dataclass`` config deriving from :class:`MethodConfig`; each field is
declared with :func:`option`, whose ``help`` text feeds ``erase run METHOD --help``. Values come
from the defaults, then a YAML/JSON file (``--config``), then explicit flags. Values from files are
type-checked strictly: YAML reads ``1e-5`` as a *string*, and silently training with a string
learning rate (or failing deep inside torch) is exactly the kind of bug we refuse to ship.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from pipelines.errors import ConfigError


def option(default: Any, help: str, **metadata: Any) -> Any:
    """A config field with its help text (lists and dicts get a fresh copy per instance)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class MethodConfig:
    """Fields every method has. ``steps`` is the method's main loop length (see its help)."""

    concepts: list[str] = option([], "concepts to erase (CLI: --concept, repeatable)", cli="--concept")
    steps: int = option(200, "training iterations")
    seed: int = option(0, "random seed: same seed, same machine, same weights")

    def needs_concepts(self) -> bool:
        """Whether a run erases something; a mode that only prepares a model (SFD's stage one) says no."""
        return True

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values no run could use. Subclasses extend this."""
        cleaned = [c.strip() for c in self.concepts if isinstance(c, str)]
        if any(not c for c in cleaned) or (self.needs_concepts() and not cleaned):
            raise ConfigError("no concept to erase: pass --concept NAME (non-empty; repeat it for several)")
        self.concepts = cleaned
        if self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key_values(self) -> dict[str, Any]:
        """:meth:`to_dict` without the options declared ``option(..., keyed=False)`` while they are
        at their default: what a finished bench cell is keyed on. An option added later that
        changes nothing at its default (AdvUnlearn's ``unet_lr``) then leaves the cells already
        run, and their committed records, current instead of training them all again."""
        values = self.to_dict()
        for f in dataclasses.fields(self):
            if f.metadata.get("keyed") is False and values[f.name] == f.default:
                del values[f.name]
        return values

    def apply_preset(self, preset: dict[str, Any]) -> None:
        """Set ``preset``'s values on every field the user did not set (a mode's own defaults).

        A config from :func:`build_config` (the CLI, files, the bench) knows which fields were
        given, so an explicit value equal to the default (``--ema-halflife 0``) is kept; a config
        built directly can only tell "still at its default" and treats that as not given.
        """
        given = getattr(self, "given_fields", None)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name, value in preset.items():
            if (name not in given) if given is not None else (getattr(self, name) == defaults[name]):
                setattr(self, name, value)


# --- type checking of values from files ------------------------------------------------------


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return "a list of " + _describe(typing.get_args(tp)[0]) + "s"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}.get(tp, str(tp))


def _check(key: str, value: Any, tp: Any) -> Any:
    """``value`` if it has type ``tp`` (ints accepted for floats), else a ConfigError that teaches."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _check(key, value, arg)
            except ConfigError:
                pass
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin in (list, tuple):
        items = [value] if isinstance(value, str) else value
        if isinstance(items, (list, tuple)):
            return [_check(key, v, typing.get_args(tp)[0]) for v in items]
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is type(None):
        if value is None:
            return None
    hint = ""
    if tp is float and isinstance(value, str):
        hint = " (YAML reads 1e-5 as a string: write 1.0e-5)"
    raise ConfigError(f"config key '{key}' must be {_describe(tp)}, got {value!r}{hint}")


def config_fields(config_class: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """``name -> (field, resolved type)`` of a config dataclass."""
    hints = typing.get_type_hints(config_class)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(config_class)}


def checked_values(config_class: type, values: dict[str, Any], source: str) -> dict[str, Any]:
    """Validate keys and types of ``values`` for ``config_class`` (hyphens accepted for underscores)."""
    fields = config_fields(config_class)
    aliases = {"concept": "concepts"}
    out = {}
    for raw_key, value in values.items():
        key = aliases.get(str(raw_key).replace("-", "_"), str(raw_key).replace("-", "_"))
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: unknown config key '{raw_key}'; known keys: {known}")
        out[key] = _check(key, value, fields[key][1])
    return out


def read_config_file(path: str) -> dict[str, Any]:
    """A YAML or JSON mapping from ``path``, or a ConfigError naming the problem."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file '{path}' does not exist; pass an existing .yaml or .json file to --config")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if path.endswith(".json"):
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:
        raise ConfigError(f"config file '{path}' could not be parsed ({str(e).splitlines()[0]}); fix its syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of option names to values, got {type(data).__name__}")
    return data


def build_config(config_class: type, file_values: dict[str, Any] | None = None, **overrides: Any) -> Any:
    """Defaults <- file values <- overrides, type-checked, then ``validate()``d."""
    values = checked_values(config_class, file_values or {}, "config file")
    values.update(checked_values(config_class, overrides, "option"))
    config = config_class(**values)
    config.given_fields = frozenset(values)  # not a field: records and keys stay as they were
    config.validate()
    return config
