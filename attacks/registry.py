"""The attack registry: names to attack classes, validated (the same :class:`pipelines.registry.Registry` as the methods').

Attacks register themselves at import with :func:`register`; ``attacks/__init__.py`` imports
every built-in attack file. ``erase eval --attack NAME`` and ``erase attack NAME`` look attacks
up here by name (``shared/docs/contracts.md``: the eval runners reach attacks only this way).
"""

from __future__ import annotations

from pipelines.registry import Registry

from .base import Attack, AttackConfig

_ATTACKS: Registry[type[Attack]] = Registry("attack", AttackConfig)

#: Class decorator: add an attack under ``cls.name``.
register = _ATTACKS.register


def get_attack(name: str) -> type[Attack]:
    return _ATTACKS.get(name)


def available() -> dict[str, type[Attack]]:
    return _ATTACKS.available()
