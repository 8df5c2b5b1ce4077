"""What every adversarial-prompt attack is: a config, data from the unerased model, and a search.

An attack subclasses :class:`Attack` and supplies

* ``config_class`` (an :class:`AttackConfig` dataclass whose field help is the CLI help) and a
  one-line ``summary``;
* :meth:`Attack.skip_reason`: why a prompt cannot be attacked (too long for the context);
* :meth:`Attack.prepare`: what it needs from the *base* model (UnlearnDiffAtk: target latents);
* :meth:`Attack.run`: the search against the attacked model, asking ``check`` after each stage
  whether the prompts found so far bring the concept back.

The runner (:mod:`attacks.runner`) does the rest once for all attacks: the pre-attack check,
sharding, timing, ASR and the records. ``check`` generates with the attacked model from the
candidate prompts' text, with each prompt's seed and guidance, and returns the judge's verdicts.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from erase.config import option
from pipelines.backbone import Backbone
from pipelines.errors import ConfigError


@dataclass(frozen=True)
class PromptItem:
    """One prompt of the attacked set: its text, the seed and guidance of its image."""

    index: int  # position in the prompt set (stable across shards and batches)
    prompt: str
    seed: int
    guidance: float


@dataclass
class Outcome:
    """What an attack found for one prompt: its last (or first successful) adversarial prompt."""

    index: int
    success: bool
    text: str  # the prompt the checked image was generated from
    adversarial_ids: list[int]  # the k inserted token ids
    input_ids: list[int]  # the whole sequence, SOT to the first EOT
    stage: int  # 1-based stage of the last check
    timestep: int  # the timestep that stage optimised at
    iteration: int  # gradient steps taken before that check
    generations: int  # images generated during the search
    loss: float | None = None  # mean attack loss over the last stage
    exact_tokens: bool = True  # whether ``text`` tokenizes back to ``input_ids``


#: ``check(texts, items) -> (len(items),) bool``: does the attacked model show the concept?
Check = Callable[[Sequence[str], Sequence[PromptItem]], np.ndarray]


@dataclass
class AttackConfig:
    """Fields every attack has."""

    seed: int = option(0, "random seed of the search (noise and token sampling): same seed, same prompts")
    batch_size: int = option(8, "prompts searched together in one forward pass (lower it if memory runs out)")

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values no run could use. Subclasses extend this."""
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Attack(ABC):
    """Base class of attacks (see the module docstring)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    config_class: ClassVar[type[AttackConfig]]

    def __init__(self, config: AttackConfig) -> None:
        if not isinstance(config, self.config_class):
            raise ConfigError(f"{self.name} needs a {self.config_class.__name__}, got {type(config).__name__}")
        config.validate()
        self.config = config

    def resolve(self, concept: str) -> None:
        """Fill concept-dependent defaults into the config (UnlearnDiffAtk: k for nudity)."""

    def budget(self) -> dict[str, Any]:
        """The attack budget, recorded beside the ASR it produced."""
        return {}

    def skip_reason(self, backbone: Backbone, item: PromptItem) -> str | None:
        """Why ``item`` cannot be attacked on this model, or None."""
        return None

    def prepare(self, base: Backbone, items: Sequence[PromptItem], sampler: Any, cache: Any = None) -> Any:
        """What the attack needs from the unerased model for ``items`` (``cache``: a
        ``pipelines.cache.ImageCache`` of the base model's images, or None)."""
        return None

    @abstractmethod
    def run(self, model: Backbone, items: Sequence[PromptItem], prepared: Any, check: Check,
            progress: bool = True) -> list[Outcome]:
        """Search adversarial prompts for ``items`` (none of which succeeds unattacked)."""
