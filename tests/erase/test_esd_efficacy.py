"""ESD with its default settings erases from the shipped mini-canvas model, as the judge sees it.

One style and one object, each erased with ``ESDConfig(concepts=[c], seed=0)`` and nothing else,
then judged on fresh generations (20 DDIM steps, guidance 5):

* UA:  images of prompts naming the target whose target-kind label is *not* the target;
* IRA: images of the other concepts of the same kind that the judge still reads correctly;
* CRA: images of the other kind (objects when a style is erased) still read correctly.

Thresholds sit below what this test's own sample measured with the defaults (stripes UA 100 /
IRA 77.8 / CRA 100, the base at 86.1 IRA; seed 0, 2-core CPU) by a margin for the small CI sample
(20 target and 36 other images: one image moves UA 5 points, IRA 2.8), and agree with ``erase bench
--methods esd``. Star is ESD's weak object: on earlier base models it read 95 / 97.2 / 83.3 here
(the two-phase model's bench: 65 / 95.0 / 95.0); on the three-phase model shipped since 2026-11-28 it reads
75 / 88.9 / 91.7 here (base 0 / 100 / 88.9) and 75 / 91.7 / 96.0 in the bench (README), so its UA floor
is 70, one image below.
"""

import numpy as np
import pytest

from erase import ESDConfig, erase
from eval.canvas import mini_canvas
from pipelines import backbone_for
from pipelines.generation import SamplerSettings, generate
from tests.erase.efficacy import shipped_pipeline

pytestmark = pytest.mark.slow

SEEDS = (0, 1)
# target: (kind, minimum UA, minimum IRA, minimum CRA), percent
EXPECTED = {
    "stripes": ("style", 90, 70, 95),
    "star": ("object", 70, 85, 75),
}


@pytest.fixture(scope="module")
def world():
    return mini_canvas()


@pytest.fixture(scope="module")
def pipe():
    return shipped_pipeline()


def judged(world, pipe, pairs):
    """(object, style) judge labels for every (object, style, seed) triple."""
    images = generate(backbone_for(pipe), [world.prompt(o, s) for o, s, _ in pairs], [k for _, _, k in pairs], SamplerSettings(), batch_size=64)
    return world.judge().predict(images)


def accuracies(world, pipe, target, kind):
    names = world.styles if kind == "style" else world.objects
    partners = world.objects if kind == "style" else world.styles
    as_pair = (lambda c, p: (p, c)) if kind == "style" else (lambda c, p: (c, p))
    target_pairs = [(*as_pair(target, p), k) for p in partners for k in SEEDS]
    others = [c for c in names if c != target]
    other_pairs = [(*as_pair(c, partners[(i * 3 + j) % len(partners)]), 0) for i, c in enumerate(others) for j in range(4)]
    obj, sty = judged(world, pipe, target_pairs + other_pairs)
    same, cross = (sty, obj) if kind == "style" else (obj, sty)
    n = len(target_pairs)
    same_truth = np.array([names.index(c) for c in [target] * n + [c for c in others for _ in range(4)]])
    cross_names = world.objects if kind == "style" else world.styles
    cross_truth = np.array([cross_names.index(o if kind == "style" else s) for o, s, _ in target_pairs + other_pairs])
    return {
        "ua": 100 * float((same[:n] != same_truth[:n]).mean()),
        "ira": 100 * float((same[n:] == same_truth[n:]).mean()),
        "cra": 100 * float((cross[n:] == cross_truth[n:]).mean()),
    }


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_esd_defaults_erase_the_target_and_keep_the_rest(world, pipe, target):
    kind, min_ua, min_ira, min_cra = EXPECTED[target]
    before = accuracies(world, pipe, target, kind)
    assert before["ua"] <= 10, f"the base model should draw {target}: {before}"
    result = erase(pipe, ESDConfig(concepts=[target], seed=0), progress=False)
    with result.applied(pipe):
        after = accuracies(world, pipe, target, kind)
    assert after["ua"] >= min_ua, (before, after)
    assert after["ira"] >= min_ira, (before, after)
    assert after["cra"] >= min_cra, (before, after)
