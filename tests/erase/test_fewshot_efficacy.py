"""Few-shot erasure on the shipped mini-canvas model, judged by the mini-canvas judge (`erase eval`).

Default config (lr 3e-3, 5 epochs of 4 renders, te-mlp-final-attn, stopping rule), one probe
seed to keep it CI-sized; `erase eval` on seed 0 (100 prompts, 10 per class).
Measured (seed 0, 2-core CPU shared with other jobs at load 6, 2026-11-26, one run): UA 100.0,
IRA 81.1, CRA 86.0; the rule kept epoch 4 in tuning. The test used 87 s of CPU (one thread) and
took 346 s of wall time on that loaded machine.
Every-target numbers are `erase bench --methods fewshot`, not this test.
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

# measured 100.0 / 81.1 / 86.0 (module docstring); floors leave room for seed and platform noise
THRESHOLDS = {"ua": 90.0, "ira": 70.0, "cra": 75.0}


def test_fewshot_erases_stripes_from_mini_canvas(tmp_path):
    from erase.cli import main

    artifact, report = str(tmp_path / "no-stripes"), str(tmp_path / "eval")
    assert main(["-q", "run", "fewshot", "--concept", "stripes", "--probe-seeds", "1", "--no-pipeline", "--out", artifact]) == 0
    with open(os.path.join(artifact, "erasure.json")) as f:
        epochs = json.load(f)["epochs"]
    assert epochs["scores"][epochs["chosen"]]["target"] <= 30.0  # the rule kept an epoch that erases on its probes
    assert main(["-q", "eval", "--model", artifact, "--target", "stripes", "--seeds", "1", "--metrics", "ua,ira,cra",
                 "--cache-dir", str(tmp_path / "cache"), "--out", report]) == 0
    with open(os.path.join(report, "eval.json")) as f:
        metrics = json.load(f)["metrics"]
    print(json.dumps(metrics))
    for key, floor in THRESHOLDS.items():
        assert metrics[key] >= floor, (key, metrics)
