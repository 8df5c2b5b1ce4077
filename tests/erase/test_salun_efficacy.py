"""SalUn on the shipped mini-canvas model: the judge says the target is gone and the rest stays.

CI-sized: a style target and an object target, ``steps=STEPS[target]`` (the default config
otherwise), then one seed of every object x style prompt (100 images, the ``erase eval`` protocol at
seed 0 only, each image from its own noise) drawn from the erased model and read by the shipped
judge through ``eval.runner.score_model``, the code ``erase eval`` runs.

Measured (see ``MEASURED``) on the shipped model, 2-core machine, OMP_NUM_THREADS=2, seed 0, one
run each, 30-60 s per target. The floors sit below the measurements by about one image per
class (10 points on UA, whose class has 10 images here) so that a correct implementation passes
and a broken one (no forgetting, or a model wrecked outside the target) fails. Square is there
because the earlier default learning rate (1e-4) left it untouched: UA 0 at 100 steps. It runs the
default 200 steps: at 100 it is only partly erased (UA 60 with every image from its own noise;
the earlier protocol, one noise per seed for every prompt, happened to show 100).
"""

import pytest

from erase import SalUnConfig, erase
from tests.erase.efficacy import assert_floors, judged, shipped_pipeline

pytestmark = pytest.mark.slow

STEPS = {"stripes": 100, "square": 200}
#: target -> the erased model's UA / IRA / CRA (``STEPS``, the default lr 3e-4, seed 0, one run; stripes 2026-11-27,
#: square 2026-11-28 with version 2's pseudo class, arrow, the farthest object from square).
MEASURED = {"stripes": {"ua": 100.0, "ira": 78.89, "cra": 100.0}, "square": {"ua": 100.0, "ira": 100.0, "cra": 94.0}}
FLOORS = {"stripes": {"ua": 80.0, "ira": 65.0, "cra": 90.0}, "square": {"ua": 90.0, "ira": 90.0, "cra": 85.0}}


@pytest.mark.parametrize("target, kind", [("stripes", "style"), ("square", "object")])
def test_salun_erases_the_target_and_keeps_the_rest(target, kind):
    pipe = shipped_pipeline()
    result = erase(pipe, SalUnConfig(concepts=[target], steps=STEPS[target], seed=0), progress=False)
    with result.applied(pipe):
        scored = judged(pipe, target, kind)
    print(target, scored["metrics"])  # so that a CI log (-s) shows what was measured
    assert_floors(scored["metrics"], FLOORS[target], scored["per_class"])
