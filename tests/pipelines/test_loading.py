import os
import shutil

import pytest
import torch

from pipelines import MINI_CANVAS, load_pipeline, resolve_device
from pipelines.errors import ConfigError, ModelLoadError


def test_loads_a_local_folder(tiny_folder):
    pipe = load_pipeline(tiny_folder)
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.unet.dtype == torch.float32 and pipe.safety_checker is None


def test_v_prediction_folder(tiny_v_folder):
    assert load_pipeline(tiny_v_folder).scheduler.config.prediction_type == "v_prediction"


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_pipeline(str(tmp_path / "nowhere"))


def test_folder_without_model_index(tmp_path):
    with pytest.raises(ModelLoadError, match="model_index.json"):
        load_pipeline(str(tmp_path))


def test_corrupt_weights_name_the_folder(tiny_folder, tmp_path):
    broken = str(tmp_path / "broken")
    shutil.copytree(tiny_folder, broken)
    weights = os.path.join(broken, "unet", "diffusion_pytorch_model.safetensors")
    with open(weights, "r+b") as f:
        f.truncate(100)
    with pytest.raises(ModelLoadError, match="could not load the diffusers folder"):
        load_pipeline(broken)


def test_hub_id_offline_teaches_local_paths(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="--model DIR"):
        load_pipeline("someone/some-model")


def test_single_file_without_config_asks_for_one(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\0" * 16)
    with pytest.raises(ModelLoadError, match="--model-config"):
        load_pipeline(str(path))


def test_mini_canvas_name_is_recognised():
    # Before the mini-canvas weights are shipped this is a clear error, afterwards a pipeline.
    try:
        pipe = load_pipeline(MINI_CANVAS)
    except ModelLoadError as e:
        assert "mini-canvas" in str(e)
    else:
        assert type(pipe).__name__ == "StableDiffusionPipeline"


def test_resolve_device_defaults_and_refuses_bad_names(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="--device 'gpu0' is not a torch device"):
        resolve_device("gpu0")
    with pytest.raises(ConfigError, match="--device cuda:1 asked for CUDA but no CUDA device is available"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None) == "cuda" and resolve_device("cuda:1") == "cuda:1"
