"""A name-to-class registry, validated at registration: the one shape of the method and attack registries.

``erase.registry`` (methods) and ``attacks.registry`` (attacks) each hold one :class:`Registry`;
``erase eval``/``erase bench`` reach methods and attacks only through them
(``shared/docs/contracts.md``). It lives in ``pipelines`` because both layers may import it.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes by their ``name``; each needs a one-line ``summary`` and a ``config_class``
    deriving from ``config_base``.

    ``kind`` ("method", "attack") words the errors; ``hint`` is appended to the unknown-name
    error (e.g. where to list the names).
    """

    def __init__(self, kind: str, config_base: type, hint: str = "") -> None:
        self.kind, self.config_base, self.hint = kind, config_base, hint
        self._classes: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """Class decorator: add ``cls`` under ``cls.name``; a clash with another class is an error."""
        if not getattr(cls, "name", None) or not getattr(cls, "summary", None):
            raise TypeError(f"{cls.__name__} needs a `name` and a one-line `summary`")
        config = getattr(cls, "config_class", None)
        if not (isinstance(config, type) and issubclass(config, self.config_base)):
            raise TypeError(f"{cls.__name__}.config_class must derive from {self.config_base.__name__}")
        known = self._classes.get(cls.name)
        if known is not None and known is not cls:
            raise TypeError(f"{self.kind} name '{cls.name}' is already registered by {known.__name__}")
        self._classes[cls.name] = cls
        return cls

    def get(self, name: str) -> T:
        """The class registered as ``name``; an unknown name is a ConfigError listing the known ones."""
        try:
            return self._classes[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} '{name}'; available: {', '.join(sorted(self._classes))}{self.hint}") from None

    def available(self) -> dict[str, T]:
        """Every registered class, by name, sorted."""
        return dict(sorted(self._classes.items()))
