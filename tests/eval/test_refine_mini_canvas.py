"""``erase mini-canvas refine``: a second training phase from a built folder, recorded, never in place."""

import json
import os
import shutil

import pytest
import torch

from eval.canvas.training.refine import refine_mini_canvas
from pipelines import load_pipeline
from pipelines.errors import ConfigError, EraseError
from pipelines.fingerprint import file_sha256, weights_sha256
from pipelines.shipped import mini_canvas_dir


@pytest.fixture
def small_canvas(tmp_path):
    """The shipped folder, its manifest asking for 2 training images per pair (so the test renders 200, not 20,000)."""
    folder = str(tmp_path / "canvas")
    shutil.copytree(mini_canvas_dir(), folder)
    path = os.path.join(folder, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    manifest["budget_settings"]["images_per_pair"] = 2
    with open(path, "w") as f:
        json.dump(manifest, f)
    return folder


def test_refine_trains_unet_and_text_encoder_only_and_records_where_it_started(small_canvas, tmp_path):
    out = str(tmp_path / "refined")
    phases_before = len(json.load(open(os.path.join(small_canvas, "manifest.json"))).get("refined", []))
    manifest = refine_mini_canvas(small_canvas, out, steps=2, lr=1e-3, progress=False)
    before, after = load_pipeline(os.path.join(small_canvas, "pipeline")), load_pipeline(os.path.join(out, "pipeline"))
    changed = lambda a, b: any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert changed(before.unet, after.unet) and changed(before.text_encoder, after.text_encoder)
    assert not changed(before.vae, after.vae)
    assert file_sha256(os.path.join(out, "judge.safetensors")) == file_sha256(os.path.join(small_canvas, "judge.safetensors"))
    phase = manifest["refined"][-1]
    assert phase["steps"] == 2 and phase["seed"] == phases_before + 1 and phase["started_from_sha256"] == weights_sha256(os.path.join(small_canvas, "pipeline"))
    assert "one_step" not in manifest and not os.path.exists(os.path.join(out, "one_step"))  # distilled from the old UNet
    assert json.load(open(os.path.join(out, "manifest.json"))) == json.loads(json.dumps(manifest))
    with pytest.raises(EraseError, match="--overwrite"):
        refine_mini_canvas(small_canvas, out, steps=2, lr=1e-3, progress=False)


def test_refine_refuses_to_write_over_its_own_input_or_from_a_folder_that_is_not_built(small_canvas, tmp_path):
    with pytest.raises(ConfigError, match="--out must differ"):
        refine_mini_canvas(small_canvas, small_canvas, steps=2, lr=1e-3, progress=False)
    with pytest.raises(ConfigError, match="erase mini-canvas train"):
        refine_mini_canvas(str(tmp_path), str(tmp_path / "out"), steps=2, lr=1e-3, progress=False)
    with pytest.raises(ConfigError, match="must be positive"):
        refine_mini_canvas(small_canvas, str(tmp_path / "out"), steps=0, lr=1e-3, progress=False)
