"""AdvUnlearn on the shipped mini-canvas model, judged by the mini-canvas judge (`erase eval`).

Default config (120 iterations, 20 warm-up, an attacker of 3 word embeddings x 15 steps reusing
each iteration's x_t, te-full, lr 1e-3, eta 1.5, gamma 2 over 8 retain prompts), stripes; `erase
eval` on seed 0 (10 prompts per class). Measured on the two-phase base model (seed 0, 2-core CPU
shared with a bench, 2026-11-28, one run, OMP_NUM_THREADS=1): UA 100.0, IRA 75.56, CRA 81.0. The
earlier defaults (1 embedding x 5 steps, gamma 1 over 4 prompts) read 80.0 / 68.89 / 100.0 in a
clean-clone CI run (2026-11-27): stripes is the one target where the new defaults trade the
objects (CRA) for the other styles (the bench's stripes cell: CRA 81.0, IRA 77.2; see the
sweep in AdvUnlearnConfig), so the floors below follow this measurement.
With OMP_NUM_THREADS=2 on a loaded machine the run thrashed (46 s for one iteration): keep one
thread when the cores are shared. Every-target numbers are benchmark commands, not this test.
"""

import pytest

from tests.erase.efficacy import assert_floors, run_and_evaluate

pytestmark = pytest.mark.slow

# measured 100.0 / 75.56 / 81.0 (module docstring); the floors sit about one image per class below
THRESHOLDS = {"ua": 90.0, "ira": 65.0, "cra": 70.0}


def test_advunlearn_erases_stripes_from_mini_canvas(tmp_path):
    record, metrics = run_and_evaluate(tmp_path, "advunlearn", "stripes")
    assert record["attack"]["count"] == 100 and set(record["config"]) >= {"attack_steps", "retain_weight"}
    assert_floors(metrics, THRESHOLDS)
