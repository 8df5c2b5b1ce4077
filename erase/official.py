"""A method's official training schedule, as far as it sets the cost of erasing one concept.

Our defaults are sized for the shipped mini-canvas model on a CPU, so the time one of our runs
takes says nothing about the papers' figures (UnlearnCanvas: ESD 6,163 s per concept). Each
method therefore declares the official schedule on its class (``official``): how many optimiser
steps one concept takes and the options that set the work of one step (DDIM steps, batch size,
attacker steps). ``erase bench --timing-only`` times a few steps with these options on a
random-weight SD 1.5 and multiplies; it lives here, beside the methods, so that a method's
schedule changes with the method and not in a table of the bench.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OfficialSchedule:
    """The official schedule of a method on SD 1.x (``shared/docs/algorithms.md``).

    ``iterations``: optimiser steps (loss calls of the shared loop) for one concept.
    ``options``: config options of that schedule that set an iteration's work (and its memory).
    ``timing``: options that only make a short timing run possible or cheap (a warm-up of 0,
    fewer images drawn in data preparation); they never change the work of a timed iteration.
    ``extra_bytes_per_trained``: memory the method holds per trained parameter beyond the
    shared loop's weights, gradients, Adam state and two copies (e.g. SFD's teacher and fake
    score), for the fits-in-memory check.
    ``note``: what the projection leaves out or overstates; ``source``: where the numbers are.
    """

    iterations: int
    options: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    extra_bytes_per_trained: int = 0
    note: str = ""
    source: str = ""


def schedule(method: type) -> OfficialSchedule | None:
    """The official schedule a method class declares (``None``: not known)."""
    return getattr(method, "official", None)
