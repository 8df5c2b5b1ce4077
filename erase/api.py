"""The Python drop-in: ``erase(pipe, config) -> ErasureResult``."""

from __future__ import annotations

from typing import Any

from pipelines import ErasureResult

from .config import MethodConfig
from .method import RunOptions
from .registry import method_for_config


def erase(pipe: Any, config: MethodConfig, *, run: RunOptions | None = None, **run_options: Any) -> ErasureResult:
    """Erase ``config.concepts`` from ``pipe`` with the method ``config`` belongs to.

    ``pipe`` is left unchanged: apply the result with ``result.apply_(pipe)``. Training happens
    where the pipeline is (its device and dtype are never changed behind your back). Keyword
    arguments are :class:`~erase.method.RunOptions` fields (``progress=False``, ``work_dir=...``).
    """
    config.validate()
    return method_for_config(config)(config).fit(pipe, run or RunOptions(**run_options))
