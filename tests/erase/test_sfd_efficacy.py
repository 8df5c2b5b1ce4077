"""SFD stage two on the shipped mini-canvas model, judged by the mini-canvas judge (`erase eval`).

Default config: G starts from the shipped one-step generator (``pipelines/mini_canvas/one_step``,
SFD stage one), the teacher and the fake score from the shipped UNet; the target's prompts are
pulled to the next class's. `erase eval` draws the artifact in one step, seed 0 (10 prompts per
class). Measured (seed 0, 2-core CPU shared with other jobs, 2026-11-27, one run,
OMP_NUM_THREADS=1): UA 100.0, IRA 78.9, CRA 100.0 from the first shipped generator (style 82.5);
from the current one (5000 iterations, style 88.75; OMP_NUM_THREADS=2, one run): UA 100.0,
IRA 96.7, CRA 100.0, 2 min; with every eval image from its own noise (the protocol since
2026-11-27): UA 100.0, IRA 86.67, CRA 100.0. The floors sit below the measurement by about one
image per class, so an SFD that does not forget, or a generator that no longer draws the other
styles or the objects, fails.
"""

import pytest

from tests.erase.efficacy import assert_floors, run_and_evaluate

pytestmark = pytest.mark.slow

THRESHOLDS = {"ua": 85.0, "ira": 78.0, "cra": 90.0}


def test_sfd_makes_a_one_step_generator_that_forgot_stripes(tmp_path):
    record, metrics = run_and_evaluate(tmp_path, "sfd", "stripes")
    assert record["sampling"]["one_step"] and record["data"]["generator_init"].startswith("shipped")
    assert_floors(metrics, THRESHOLDS)
