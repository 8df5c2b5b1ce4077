"""Prompt sharding across processes with ``accelerate`` (``accelerate launch -m erase eval ...``).

Each process generates and judges its own slice of the answer set
(``PartialState.split_between_processes``), then the per-image results are gathered
(``gather_object``), so N GPUs give an N-fold speed-up. In a plain single process every
helper is the identity. Only the main process writes outputs and shows progress bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def _state():
    """accelerate's process state. On a machine without CUDA (or under ``accelerate launch --cpu``)
    it must be told ``cpu=True``, or it ignores the launcher's processes and runs as one."""
    import os

    import torch
    from accelerate import PartialState

    forced_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return PartialState(cpu=forced_cpu or not torch.cuda.is_available())


def num_processes() -> int:
    return _state().num_processes


def is_main_process() -> bool:
    return _state().is_main_process


def my_share(items: Sequence[T]) -> list[T]:
    """This process's contiguous slice of ``items`` (all of them in a single process)."""
    state = _state()
    if state.num_processes == 1:
        return list(items)
    with state.split_between_processes(list(items)) as share:
        return list(share)


def gather(value: Any) -> list[Any]:
    """Every process's ``value``, in process order (``[value]`` in a single process)."""
    state = _state()
    if state.num_processes == 1:
        return [value]
    from accelerate.utils import gather_object

    return gather_object([value])


def wait_for_everyone() -> None:
    _state().wait_for_everyone()
