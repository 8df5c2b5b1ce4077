"""The attack registry: names to attack classes, validated (the same shape as the methods').

Attacks register themselves at import with :func:`register`; ``attacks/__init__.py`` imports
every built-in attack file. ``erase eval --attack NAME`` and ``erase attack NAME`` look attacks
up here by name (``shared/docs/contracts.md``: the eval runners reach attacks only this way).
"""

from __future__ import annotations

from pipelines.errors import ConfigError

from .base import Attack, AttackConfig

_ATTACKS: dict[str, type[Attack]] = {}


def register(cls: type[Attack]) -> type[Attack]:
    """Class decorator: add an attack under ``cls.name``."""
    if not getattr(cls, "name", None) or not getattr(cls, "summary", None):
        raise TypeError(f"{cls.__name__} needs a `name` and a one-line `summary`")
    if not (isinstance(cls.config_class, type) and issubclass(cls.config_class, AttackConfig)):
        raise TypeError(f"{cls.__name__}.config_class must derive from AttackConfig")
    if cls.name in _ATTACKS and _ATTACKS[cls.name] is not cls:
        raise TypeError(f"attack name '{cls.name}' is already registered by {_ATTACKS[cls.name].__name__}")
    _ATTACKS[cls.name] = cls
    return cls


def get_attack(name: str) -> type[Attack]:
    try:
        return _ATTACKS[name]
    except KeyError:
        raise ConfigError(f"unknown attack '{name}'; available: {', '.join(sorted(_ATTACKS))}") from None


def available() -> dict[str, type[Attack]]:
    return dict(sorted(_ATTACKS.items()))
