"""Adversarial prompt attacks on erased models, behind one registry.

    from attacks import robustness
    result = robustness(erased_pipe, base_pipe, "stripes", judge=judge, items=[("A star image in stripes style.", 0, 5.0)])
    result["pre_asr"], result["asr"]

``erase attack unlearndiffatk --model DIR --concept C --out OUT`` is the command line;
``erase attack --replay OUT`` regenerates every persisted success and re-judges it.
"""

from . import unlearndiffatk  # noqa: F401  (registers the attack)
from .base import Attack, AttackConfig, Outcome, PromptItem
from .registry import available, get_attack, register
from .robustness import robustness
from .runner import AttackReport, run_attack
from .unlearndiffatk import UnlearnDiffAtk, UnlearnDiffAtkConfig

__all__ = [
    "Attack",
    "AttackConfig",
    "AttackReport",
    "Outcome",
    "PromptItem",
    "UnlearnDiffAtk",
    "UnlearnDiffAtkConfig",
    "available",
    "get_attack",
    "register",
    "robustness",
    "run_attack",
]
