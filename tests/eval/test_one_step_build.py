"""``erase mini-canvas distil``: the one-step generator lands beside the pipeline with its bars."""

import json
import os
import shutil

import pytest

from eval.one_step import distil_one_step
from pipelines import ErasureResult, load_pipeline
from pipelines.errors import ConfigError, EraseError
from pipelines.shipped import mini_canvas_dir


def test_distil_writes_a_float16_generator_and_its_measured_bars_then_refuses_to_overwrite(tmp_path):
    folder = str(tmp_path / "canvas")
    os.makedirs(folder)
    for name in ("pipeline", "judge.safetensors", "manifest.json"):
        source = os.path.join(mini_canvas_dir(), name)
        (shutil.copytree if os.path.isdir(source) else shutil.copy)(source, os.path.join(folder, name))
    stale = os.path.join(folder, ".one_step.checkpoints", "checkpoint")  # an interrupted build of another config
    os.makedirs(stale)
    with open(os.path.join(stale, "state.json"), "w") as f:
        json.dump({"step": 1, "fingerprint": "another configuration"}, f)
    with pytest.raises(ConfigError, match="--fresh"):
        distil_one_step(folder, steps=2, progress=False, timing_repeats=1)
    entry = distil_one_step(folder, steps=2, fresh=True, progress=False, timing_repeats=1)
    generator = ErasureResult.load(os.path.join(folder, "one_step"))
    assert generator.t_init == 625 and {t.dtype.itemsize for t in generator.tensors.values()} == {2}
    assert json.load(open(os.path.join(folder, "manifest.json")))["one_step"] == json.loads(json.dumps(entry))
    assert entry["config"]["steps"] == 2 and 0 <= entry["quality"]["style"] <= 100 and entry["quality"]["speedup"] > 1
    assert not os.path.exists(os.path.join(folder, ".one_step.checkpoints"))  # the work folder is cleaned up
    assert load_pipeline(os.path.join(folder, "one_step")) is not None
    with pytest.raises(EraseError, match="--overwrite"):
        distil_one_step(folder, steps=2, progress=False, timing_repeats=1)


def test_distil_names_the_fix_for_a_folder_that_is_not_mini_canvas(tmp_path):
    with pytest.raises(EraseError, match="erase mini-canvas train"):
        distil_one_step(str(tmp_path), steps=1, progress=False)
