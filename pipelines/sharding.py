"""Prompt sharding across processes with ``accelerate`` (``accelerate launch -m erase eval ...``).

Each process generates and judges its own slice of the answer set
(``PartialState.split_between_processes``), then the per-image results are gathered
(``gather_object``), so N GPUs give an N-fold speed-up. In a plain single process every
helper is the identity. Only the main process writes outputs and shows progress bars.

It lives in ``pipelines`` (it imports none of ours) so that ``attacks`` may shard its prompts
the same way without importing the ``eval`` runners' layer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_alone = threading.local()  # depth > 0 inside alone(): this process works by itself, whatever the launcher started


class _Alone:
    """A one-process state: every helper below becomes the identity."""

    num_processes, process_index, is_main_process = 1, 0, True

    def wait_for_everyone(self) -> None:
        pass


@contextmanager
def alone() -> Iterator[None]:
    """Inside, this process acts as if it were the only one.

    ``erase bench`` gives whole cells to each process; the eval and the attack inside a cell
    must then neither split their prompts with, nor wait for, processes busy with other cells.
    """
    _alone.depth = getattr(_alone, "depth", 0) + 1
    try:
        yield
    finally:
        _alone.depth -= 1


def _state():
    return _Alone() if getattr(_alone, "depth", 0) else _accelerate_state()


def _accelerate_state():
    """accelerate's process state. On a machine without CUDA (or under ``accelerate launch --cpu``)
    it must be told ``cpu=True``, or it ignores the launcher's processes and runs as one."""
    import os

    import torch
    from accelerate import PartialState

    forced_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return PartialState(cpu=forced_cpu or not torch.cuda.is_available())


def num_processes() -> int:
    return _state().num_processes


def metrics_sync() -> bool:
    """The ``sync_on_compute`` of a torchmetrics metric made here: sum over processes when the
    images are split among them, not inside ``alone()`` (a bench cell's images are all its own)."""
    return num_processes() > 1


def is_main_process() -> bool:
    return _state().is_main_process


def process_index() -> int:
    return _state().process_index


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
