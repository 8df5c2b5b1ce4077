"""AdvUnlearn on the shipped mini-canvas model, judged by the mini-canvas judge (`erase eval`).

Default config (120 iterations, 20 warm-up, 5 attacker steps reusing each iteration's x_t,
te-full, lr 1e-3, eta 1.5, gamma 1 over 4 retain prompts), stripes; `erase eval` on seed 0
(10 prompts per class). Measured (seed 0, 2-core CPU shared with other jobs, 2026-11-26, one
run, OMP_NUM_THREADS=1): UA 100.0, IRA 70.0, CRA 91.0 (the base model's own IRA on styles is
about 88; the earlier defaults, gamma 0.3 over 2 prompts, eta 1, 100 iterations, gave 100.0 /
83.3 / 100.0 on stripes but CRA 61 on gradient and heart, see the sweep in AdvUnlearnConfig).
On the two-phase base model (commit 9735eda, which draws styles at 92.5 % instead of 86.75 %), the clean-clone CI
run of the same test read UA 80.0, IRA 68.89, CRA 100.0 (2-core CPU, 2026-11-27, one run): the better-drawn stripes
are harder to erase with the same budget, and the floors below follow that measurement.
With OMP_NUM_THREADS=2 on a loaded machine the run thrashed (46 s for one iteration): keep one
thread when the cores are shared. Every-target numbers are benchmark commands, not this test.
"""

import pytest

from tests.erase.efficacy import assert_floors, run_and_evaluate

pytestmark = pytest.mark.slow

# measured 80.0 / 68.89 / 100.0 on the two-phase base (module docstring); the floors sit about one image per class below
THRESHOLDS = {"ua": 70.0, "ira": 60.0, "cra": 85.0}


def test_advunlearn_erases_stripes_from_mini_canvas(tmp_path):
    record, metrics = run_and_evaluate(tmp_path, "advunlearn", "stripes")
    assert record["attack"]["count"] == 100 and set(record["config"]) >= {"attack_steps", "retain_weight"}
    assert_floors(metrics, THRESHOLDS)
