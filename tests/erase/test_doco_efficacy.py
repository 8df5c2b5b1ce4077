"""DoCo on the shipped mini-canvas model, judged by the mini-canvas judge (`erase eval`).

Default config (600 steps of which 100 train the discriminator alone, the state kept from 300 on by the judged
stopping rule, cross-attention key and
value, UNet lr 3e-4, DoCo's concept-preserving gradient, every other style as the anchor, drawn
by the base model), stripes; `erase eval` on seed 0 (10 prompts per class). Measured (seed 0,
2-core CPU shared with a bench, 2026-11-28, one run, OMP_NUM_THREADS=1): UA 100.0, IRA 87.78,
CRA 100.0, the same as at 300 steps (with the single-class anchor "solid", 2026-11-27: 100.0 /
77.8 / 100.0). Version 4 (anchors no longer mirrored, 2026-11-29, idle 2 cores, OMP_NUM_THREADS=2):
90.0 / 88.89 / 100.0, 153 s. Version 5 (600 steps, the state kept by the judged stopping rule;
2026-11-29, beside the bench's two processes, OMP_NUM_THREADS=1): 90.0 / 87.78 / 100.0. The base
model's own style IRA is about 90. The floors sit one to two images per class below the
measurement, so a DoCo that does not erase, or that wrecks the other styles or the objects, fails.
"""

import pytest

from tests.erase.efficacy import assert_floors, run_and_evaluate

pytestmark = pytest.mark.slow

THRESHOLDS = {"ua": 85.0, "ira": 75.0, "cra": 90.0}


def test_doco_erases_stripes_from_mini_canvas(tmp_path):
    record, metrics = run_and_evaluate(tmp_path, "doco", "stripes")
    guard = record["doco"]["collapse_guard"]
    assert guard["longest_streak"] < guard["patience"], guard  # a healthy run: D never won the game
    assert_floors(metrics, THRESHOLDS)
