"""AdvUnlearn on the shipped mini-canvas model, judged by the mini-canvas judge (`erase eval`).

Default config (100 iterations, 20 warm-up, 5 attacker steps reusing each iteration's x_t,
te-full, lr 1e-3, 2 retain prompts), stripes; `erase eval` on seed 0 (10 prompts per class).
Measured (seed 0, 2-core CPU shared with other jobs, 2026-11-26, one run, OMP_NUM_THREADS=1):
UA 100.0, IRA 83.3, CRA 100.0 (the base model's own IRA on styles is about 88); training took
140 s (`cost.train_seconds`), `erase eval` about 5 minutes of wall time on the loaded machine.
With OMP_NUM_THREADS=2 on the loaded machine the run thrashed (46 s for one iteration): keep one
thread when the cores are shared. Every-target numbers are benchmark commands, not this test.
"""

import pytest

from tests.erase.efficacy import assert_floors, run_and_evaluate

pytestmark = pytest.mark.slow

# measured 100.0 / 83.3 / 100.0 (module docstring); floors leave room for seed and platform noise
THRESHOLDS = {"ua": 85.0, "ira": 70.0, "cra": 80.0}


def test_advunlearn_erases_stripes_from_mini_canvas(tmp_path):
    record, metrics = run_and_evaluate(tmp_path, "advunlearn", "stripes")
    assert record["attack"]["count"] == 100 and set(record["config"]) >= {"attack_steps", "retain_weight"}
    assert_floors(metrics, THRESHOLDS)
