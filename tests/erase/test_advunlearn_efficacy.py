"""AdvUnlearn on the shipped mini-canvas model, judged by the mini-canvas judge (`erase eval`).

Default config (100 iterations, 20 warm-up, 5 attacker steps reusing each iteration's x_t,
te-full, lr 1e-3, 2 retain prompts), stripes; `erase eval` on seed 0 (10 prompts per class).
Measured (seed 0, 2-core CPU shared with other jobs, 2026-11-26, one run, OMP_NUM_THREADS=1):
UA 100.0, IRA 83.3, CRA 100.0 (the base model's own IRA on styles is about 88); training took
140 s (`cost.train_seconds`), `erase eval` about 5 minutes of wall time on the loaded machine.
With OMP_NUM_THREADS=2 on the loaded machine the run thrashed (46 s for one iteration): keep one
thread when the cores are shared. Every-target numbers are benchmark commands, not this test.
"""

import json
import os

import pytest

from pipelines.shipped import mini_canvas_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(os.path.join(mini_canvas_dir(), "manifest.json")),
                       reason="the shipped mini-canvas model is not built"),
]

# measured 100.0 / 83.3 / 100.0 (module docstring); floors leave room for seed and platform noise
THRESHOLDS = {"ua": 85.0, "ira": 70.0, "cra": 80.0}


def test_advunlearn_erases_stripes_from_mini_canvas(tmp_path):
    from erase.cli import main

    artifact, report = str(tmp_path / "no-stripes"), str(tmp_path / "eval")
    assert main(["-q", "run", "advunlearn", "--concept", "stripes", "--no-pipeline", "--out", artifact]) == 0
    with open(os.path.join(artifact, "erasure.json")) as f:
        record = json.load(f)
    assert record["attack"]["count"] == 80 and set(record["config"]) >= {"attack_steps", "retain_weight"}
    assert main(["-q", "eval", "--model", artifact, "--target", "stripes", "--seeds", "1", "--metrics", "ua,ira,cra",
                 "--cache-dir", str(tmp_path / "cache"), "--out", report]) == 0
    with open(os.path.join(report, "eval.json")) as f:
        metrics = json.load(f)["metrics"]
    print(json.dumps(metrics))
    for key, floor in THRESHOLDS.items():
        assert metrics[key] >= floor, (key, metrics)
