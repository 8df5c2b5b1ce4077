"""Guards that stop an adversarial erasure (DoCo) before it diverges silently.

Two ways a GAN-trained erasure goes wrong without crashing:

* **A non-finite value** in one of the losses or in the corrected gradient: :func:`require_finite`
  names which one and at which step. The training loop's own check would catch the total too,
  but could not say which part went first.
* **A collapsing discriminator**: D separates the target's outputs from the anchor's outright,
  step after step, so the generator's loss no longer moves the target into the anchor's domain
  (or the UNet's outputs went so far off that D spots them trivially). :class:`CollapseGuard`
  stops the run when D's loss stays below ``floor`` for ``patience`` UNet steps in a row. Steps
  of D's warm-up do not count: D winning then is its job, the UNet has not had its turn. The
  loss the rule reads is smoothed (exponentially, about ten steps): raw, it is noisy enough that
  a drifting run's streaks below the floor keep being broken by single steps above it.

  The rule is measured, not guessed: with the mini-canvas defaults (``erase run doco --concept
  stripes`` and ``--concept star``, ``--steps 120 --warm-up 40 --no-pipeline``, seed 0, the
  record's ``d_loss_curve``, every second step) D's loss stays around 2 ln 2 = 1.386 (D at
  chance): stripes 1.28-1.42, star 0.93-1.46, and at least 1.09 once the UNet trains. A run
  broken on purpose with ``--lr 1.0`` (1000x the default) drifts down to 0.2-0.5 from step 55 on,
  with L_u rising to about 3 by step 120: its longest raw streak below 0.5 was 12 steps, while its
  smoothed loss stays below 0.7 from about step 76. The floor 0.7 sits between the two kinds of
  run: below it D gives the right label a mean probability above about 0.7 on both halves, far
  from the healthy runs (raw losses never below 0.93, smoothed near 1.3-1.4), and with a patience
  of 20 the broken run stops at step 89 (measured). A false alarm would kill a long run, hence the
  patience; ``--collapse-floor 0`` turns the rule off. The record's ``doco.collapse_guard`` keeps
  the lowest loss and the longest streak of every run, so the margin can be re-checked.

Either guard raises :class:`~pipelines.errors.TrainingDiverged` before the optimiser step. A
collapse passes the trained tensors from before its streak began as the last good state: the
updates made while D was winning are the suspect ones. The copy is made once per streak (the
default ``esd-x-strict`` tensors are a fraction of a MB), so a healthy run never pays for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from pipelines.errors import TrainingDiverged


def require_finite(what: str, value: torch.Tensor | float, step: int, fix: str) -> None:
    """Raise :class:`TrainingDiverged` naming ``what`` if ``value`` (a loss, or a gradient's) is NaN/inf."""
    number = float(value.detach().float().sum()) if torch.is_tensor(value) else float(value)
    if not math.isfinite(number):
        raise TrainingDiverged(f"{what} became {number} at step {step + 1}. {fix}")


class CollapseGuard:
    """Counts the UNet steps in a row with D's smoothed loss below ``floor`` (see the module docstring)."""

    #: Weight of the newest step in the smoothed loss (a memory of about ten steps): D's loss is
    #: noisy step to step, and a drifting run dips below the floor in streaks that single noisy
    #: steps above it would otherwise keep breaking.
    SMOOTHING = 0.1

    def __init__(self, params: Mapping[str, torch.nn.Parameter], floor: float, patience: int, warm_up: int) -> None:
        self.params = params
        self.floor, self.patience, self.warm_up = floor, patience, warm_up
        self.streak = 0
        self.longest = 0
        self.lowest: float | None = None  # D's lowest loss once the UNet trains
        self.smoothed: float | None = None  # D's loss, exponentially smoothed, once the UNet trains
        self._start: tuple[int, dict[str, torch.Tensor]] | None = None

    def check(self, d_loss: float, step: int, fix: str) -> None:
        """Call with D's loss of ``step`` before the step's UNet update; raises on a collapse."""
        if step < self.warm_up:
            return
        self.lowest = d_loss if self.lowest is None else min(self.lowest, d_loss)
        self.smoothed = d_loss if self.smoothed is None else (1 - self.SMOOTHING) * self.smoothed + self.SMOOTHING * d_loss
        if self.floor <= 0 or self.smoothed >= self.floor:
            self.streak, self._start = 0, None
            return
        if self.streak == 0:  # the tensors as they were before the first step D won outright
            self._start = (step, {n: p.detach().cpu().clone() for n, p in self.params.items()})
        self.streak += 1
        self.longest = max(self.longest, self.streak)
        if self.streak >= self.patience:
            start, tensors = self._start
            raise TrainingDiverged(
                f"the discriminator collapsed the game: its loss, smoothed over about ten steps, stayed below "
                f"--collapse-floor {self.floor} for {self.streak} UNet steps in a row (steps {start + 1}-{step + 1}, "
                f"last {d_loss:.3g}, smoothed {self.smoothed:.3g}; healthy runs stay "
                f"near 2 ln 2 = 1.39), so the UNet's outputs are no longer pulled toward the anchor's. The last good "
                f"state is from before step {start + 1}. {fix}",
                last_good_step=start, last_good=tensors,
            )

    def summary(self) -> dict:
        return {"floor": self.floor, "patience": self.patience, "smoothing": self.SMOOTHING,
                "d_loss_min_after_warm_up": self.lowest, "longest_streak": self.longest}
