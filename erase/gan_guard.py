"""Guards that stop an adversarial erasure (DoCo) before it diverges silently.

Two ways a GAN-trained erasure goes wrong without crashing:

* **A non-finite value** in one of the losses or in the corrected gradient: :func:`require_finite`
  names which one and at which step. The training loop's own check would catch the total too,
  but could not say which part went first.
* **A collapsing discriminator**: D separates the target's outputs from the anchor's outright,
  step after step, so the generator's loss no longer moves the target into the anchor's domain
  (or the UNet's outputs went so far off that D spots them trivially). :class:`CollapseGuard`
  stops the run when D's loss stays below ``floor`` for ``patience`` UNet steps in a row. Steps
  of D's warm-up do not count: D winning then is its job, the UNet has not had its turn.

  The rule is measured, not guessed: with the mini-canvas defaults (``erase run doco --concept
  stripes`` and ``--concept star``, ``--steps 120 --warm-up 40 --no-pipeline``, seed 0, the
  record's ``d_loss_curve``, every second step) D's loss stays around 2 ln 2 = 1.386 (D at
  chance): stripes 1.28-1.42, star 0.93-1.46, and at least 1.09 once the UNet trains. A loss
  below 0.1 means D gives the right label a mean probability above about 0.95 on both halves;
  20 such steps in a row are far outside anything a healthy run does. The rule is deliberately
  conservative (a false alarm kills a long run): a run broken on purpose with ``--lr 1.0``
  (1000x the default) drifts there, D's loss falling to 0.2-0.5 and L_u rising to about 3 by
  step 120, but has not tripped it yet by then; raise ``collapse_floor`` to catch such drift sooner. The record's ``doco.collapse_guard`` keeps
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
    """Counts the UNet steps in a row with D's loss below ``floor`` (see the module docstring)."""

    def __init__(self, params: Mapping[str, torch.nn.Parameter], floor: float, patience: int, warm_up: int) -> None:
        self.params = params
        self.floor, self.patience, self.warm_up = floor, patience, warm_up
        self.streak = 0
        self.longest = 0
        self.lowest: float | None = None  # D's lowest loss once the UNet trains
        self._start: tuple[int, dict[str, torch.Tensor]] | None = None

    def check(self, d_loss: float, step: int, fix: str) -> None:
        """Call with D's loss of ``step`` before the step's UNet update; raises on a collapse."""
        if step < self.warm_up:
            return
        self.lowest = d_loss if self.lowest is None else min(self.lowest, d_loss)
        if self.floor <= 0 or d_loss >= self.floor:
            self.streak, self._start = 0, None
            return
        if self.streak == 0:  # the tensors as they were before the first step D won outright
            self._start = (step, {n: p.detach().cpu().clone() for n, p in self.params.items()})
        self.streak += 1
        self.longest = max(self.longest, self.streak)
        if self.streak >= self.patience:
            start, tensors = self._start
            raise TrainingDiverged(
                f"the discriminator collapsed the game: its loss stayed below --collapse-floor {self.floor} for "
                f"{self.streak} UNet steps in a row (steps {start + 1}-{step + 1}, last {d_loss:.3g}; healthy runs stay "
                f"near 2 ln 2 = 1.39), so the UNet's outputs are no longer pulled toward the anchor's. The last good "
                f"state is from before step {start + 1}. {fix}",
                last_good_step=start, last_good=tensors,
            )

    def summary(self) -> dict:
        return {"floor": self.floor, "patience": self.patience, "d_loss_min_after_warm_up": self.lowest,
                "longest_streak": self.longest}
