"""The method registry: names to method classes, validated (in the style of peft's).

Methods register themselves at import with :func:`register`; ``erase/__init__.py`` imports every
built-in method file. Names follow ``shared/docs/contracts.md``.
"""

from __future__ import annotations

from pipelines.errors import ConfigError

from .config import MethodConfig
from .method import ErasureMethod

_METHODS: dict[str, type[ErasureMethod]] = {}


def register(cls: type[ErasureMethod]) -> type[ErasureMethod]:
    """Class decorator: add a method under ``cls.name``."""
    if not getattr(cls, "name", None) or not getattr(cls, "summary", None):
        raise TypeError(f"{cls.__name__} needs a `name` and a one-line `summary`")
    if not (isinstance(cls.config_class, type) and issubclass(cls.config_class, MethodConfig)):
        raise TypeError(f"{cls.__name__}.config_class must derive from MethodConfig")
    if cls.name in _METHODS and _METHODS[cls.name] is not cls:
        raise TypeError(f"method name '{cls.name}' is already registered by {_METHODS[cls.name].__name__}")
    _METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[ErasureMethod]:
    try:
        return _METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method '{name}'; available: {', '.join(sorted(_METHODS))} (see `erase methods`)") from None


def method_for_config(config: MethodConfig) -> type[ErasureMethod]:
    for cls in _METHODS.values():
        if type(config) is cls.config_class:
            return cls
    raise ConfigError(f"{type(config).__name__} is not the config of any registered method")


def available() -> dict[str, type[ErasureMethod]]:
    return dict(sorted(_METHODS.items()))
