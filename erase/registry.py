"""The method registry: names to method classes, validated (in the style of peft's), on the
shared :class:`pipelines.registry.Registry`.

Methods register themselves at import with :func:`register`; ``erase/__init__.py`` imports every
built-in method file. Names follow ``shared/docs/contracts.md``.
"""

from __future__ import annotations

from pipelines.errors import ConfigError
from pipelines.registry import Registry

from .config import MethodConfig
from .method import ErasureMethod

_METHODS: Registry[type[ErasureMethod]] = Registry("method", MethodConfig, hint=" (see `erase methods`)")

#: Class decorator: add a method under ``cls.name``.
register = _METHODS.register


def get_method(name: str) -> type[ErasureMethod]:
    return _METHODS.get(name)


def method_for_config(config: MethodConfig) -> type[ErasureMethod]:
    for cls in _METHODS.available().values():
        if type(config) is cls.config_class:
            return cls
    raise ConfigError(f"{type(config).__name__} is not the config of any registered method")


def available() -> dict[str, type[ErasureMethod]]:
    return _METHODS.available()
