"""Out of the box: with no arguments the demo serves the shipped mini-canvas model and erases live.

The first test stands the tiny random pipeline in for the shipped folder, so the defaults are
checked on every machine in seconds; the second runs the same steps on the real shipped model
(it needs ``pipelines/mini_canvas/``, which the package ships).
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import pipelines.shipped
from demos import callbacks
from demos.examples import example_prompts
from demos.model import load_demo_model
from tests.demos.conftest import FAST_ESD


def out_of_the_box(sampling_steps: int) -> None:
    """What a first visitor does: click the first example, erase its concept live, compare again."""
    model = load_demo_model(live_overrides=FAST_ESD)
    assert model.name == "mini-canvas" and model.saved == {} and model.live is not None
    assert "esd" in model.live.methods
    (prompt, seed), *_ = example_prompts(model.world)
    assert "stripes" in prompt
    shown = callbacks.compare(model, prompt, seed, None, {}, steps=sampling_steps)
    assert shown.base.size == shown.erased.size == (256, 256)
    label, session, _ = callbacks.erase_live(model, "stripes", "esd", 2, {})
    erased = callbacks.compare(model, prompt, seed, label, session, steps=sampling_steps)
    assert erased.base.tobytes() == shown.base.tobytes()  # the base is left as it was
    assert not np.array_equal(np.asarray(erased.base), np.asarray(erased.erased))


def test_with_no_arguments_the_demo_is_the_shipped_model_with_live_erasing(tiny_folder, tmp_path, monkeypatch):
    shipped = tmp_path / "mini_canvas"
    shutil.copytree(tiny_folder, shipped / "pipeline")
    (shipped / "manifest.json").write_text(json.dumps({"sampling": {"steps": 3, "guidance": 4.0}}))
    monkeypatch.setattr(pipelines.shipped, "_MINI_CANVAS_DIR", str(shipped))
    model = load_demo_model()
    assert (model.sampling.steps, model.sampling.guidance) == (3, 4.0)  # the manifest's settings
    out_of_the_box(sampling_steps=3)


@pytest.mark.slow
def test_the_shipped_model_works_out_of_the_box():
    assert os.path.isdir(os.path.join(pipelines.shipped.mini_canvas_dir(), "pipeline")), \
        "the shipped mini-canvas model is missing: build it with `erase mini-canvas train`"
    out_of_the_box(sampling_steps=10)
