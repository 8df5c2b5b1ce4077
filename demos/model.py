"""What the demo shares between visitors: one base pipeline, its lock, and the saved erasures.

Every erased model the demo shows is the base pipeline with an :class:`~pipelines.ErasureResult`
applied for the length of one generation (``result.applied(pipe)``), so ten erasures cost ten
small sets of tensors, not ten pipelines. Applying writes into the shared weights and a live
erasure trains them in place, so every use of the pipeline holds :attr:`DemoModel.lock`.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field, fields
from typing import Any

from erase import available, get_method
from eval.canvas.answers import mini_canvas_sampling
from eval.canvas import mini_canvas
from eval.canvas.spec import CanvasSpec
from pipelines import MINI_CANVAS, ErasureResult, backbone_for, load_pipeline, mini_canvas_dir
from pipelines.backbone import Backbone
from pipelines.errors import BaseMismatchError
from pipelines.generation import SamplerSettings

from .artifacts import SavedErasure, load_saved

logger = logging.getLogger(__name__)


@dataclass
class LiveErasing:
    """Which methods a visitor may run on the world's concepts, and the budget that keeps the wait short.

    ``steps=None`` uses each method's own default: ESD's 200 steps are sized to erase a
    mini-canvas concept in about a minute on a CPU (``erase/esd.py``). ``overrides`` holds
    extra config values per method name (e.g. ``{"esd": {"lr": 1e-4}}``).
    """

    methods: tuple[str, ...]
    steps: int | None = None
    max_steps: int = 1000
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def default_steps(self, method: str) -> int:
        """The steps the form starts with for ``method``, never above ``max_steps``."""
        if self.steps is not None:
            return min(self.steps, self.max_steps)
        defaults = {f.name: f.default for f in fields(get_method(method).config_class)}
        return min(defaults["steps"], self.max_steps)


@dataclass
class DemoModel:
    """The shared base pipeline and everything the callbacks need to use it (see module doc)."""

    pipe: Any
    name: str
    sampling: SamplerSettings
    #: The world the examples are drawn from and the Erase form offers (mini-canvas).
    world: CanvasSpec
    saved: dict[str, ErasureResult] = field(default_factory=dict)
    live: LiveErasing | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Seconds per training step measured by the live erasures so far, per method: the budget
    #: shown to the next visitor is an estimate from this machine, not a guess.
    seconds_per_step: dict[str, float] = field(default_factory=dict)
    backbone: Backbone = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.backbone = backbone_for(self.pipe)


def load_demo_model(
    model: str | None = None,
    *,
    artifacts: list[str] | None = None,
    runs: list[str] | None = None,
    device: str | None = None,
    live_erase: bool | None = None,
    live_steps: int | None = None,
    live_max_steps: int = 1000,
    live_overrides: dict[str, dict[str, Any]] | None = None,
) -> DemoModel:
    """Load the base model and the saved erasures into a :class:`DemoModel`.

    ``model`` defaults to the base recorded in the first artifact, else the shipped mini-canvas
    model. An ``artifacts`` folder made from another base is an error; a run under ``runs``
    made from another base is skipped with a warning. ``live_erase`` defaults to on for the
    mini-canvas model only: elsewhere a CPU would train for hours.
    """
    saved = load_saved(list(artifacts or []), list(runs or []))
    name = model or (saved[0].result.base_source if saved else MINI_CANVAS)
    pipe = load_pipeline(name, device=device)
    is_mini = _is_mini_canvas(name)
    if live_erase is None:
        live_erase = is_mini
    live = None
    if live_erase:
        live = LiveErasing(methods=tuple(available()), steps=live_steps, max_steps=live_max_steps,
                           overrides=dict(live_overrides or {}))
    sampling = SamplerSettings()
    if is_mini:
        sampling = SamplerSettings(**mini_canvas_sampling())
    return DemoModel(pipe=pipe, name=name, sampling=sampling, world=mini_canvas(), saved=_usable(saved, pipe, name), live=live)


def _is_mini_canvas(name: str) -> bool:
    """``mini-canvas`` by name, or the shipped folder by path (as records made in Python name it)."""
    if name == MINI_CANVAS:
        return True
    shipped = os.path.join(mini_canvas_dir(), "pipeline")
    return os.path.isdir(name) and os.path.isdir(shipped) and os.path.samefile(name, shipped)


def _usable(saved: list[SavedErasure], pipe: Any, name: str) -> dict[str, ErasureResult]:
    """The saved erasures that fit ``pipe`` (loaded from ``name``), by unique label."""
    usable: dict[str, ErasureResult] = {}
    for item in saved:
        try:
            item.result.check_base(pipe)
        except BaseMismatchError:
            message = (f"{item.folder} was made from the base '{item.result.base_source}', which differs from "
                       f"--model '{name}' in the tensors it changes")
            if item.explicit:
                raise BaseMismatchError(f"--artifact {message}; leave --model out to use the recorded base, "
                                        "or pass that unmodified base model") from None
            logger.warning("skipping %s", message)
            continue
        label = item.label if item.label not in usable else f"{item.label} ({item.folder})"
        usable[label] = item.result
    return usable
