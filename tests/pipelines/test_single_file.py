import socket

import numpy as np
import pytest
import torch
from safetensors import safe_open

from pipelines import load_pipeline
from pipelines.errors import EraseError
from pipelines.single_file import export_single_file


def images(pipe):
    g = torch.Generator().manual_seed(0)
    return pipe("a star", num_inference_steps=3, height=16, width=16, generator=g, output_type="np").images


@pytest.fixture
def no_network(monkeypatch):
    """Fail on any connection attempt: a single file with a local config must load offline."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_round_trip_through_diffusers_is_exact(tiny_pipe, tiny_folder, tmp_path, no_network):
    path = export_single_file(tiny_pipe, str(tmp_path / "tiny.safetensors"))
    loaded = load_pipeline(path, config=tiny_folder)
    for name in ("unet", "vae", "text_encoder"):
        original, reloaded = getattr(tiny_pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert original.keys() == reloaded.keys(), name
        assert [k for k in original if not torch.equal(original[k], reloaded[k])] == [], name
    assert np.array_equal(images(tiny_pipe), images(loaded))


def test_file_uses_the_original_layout(tiny_pipe, tmp_path):
    path = export_single_file(tiny_pipe, str(tmp_path / "tiny.safetensors"))
    with safe_open(path, "pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        assert f.metadata() == {"format": "pt"}
    unet_layers = {".".join(k.split(".")[2:4]) for k in shapes if k.startswith("model.diffusion_model.") and "_block" in k}
    # Tiny UNet (2 blocks, 1 layer each): conv_in | res+attn | downsample | res, and back up:
    # res | res+upsample | res+attn | res+attn.
    assert unet_layers == {
        "input_blocks.0", "input_blocks.1", "input_blocks.2", "input_blocks.3",
        "middle_block.0", "middle_block.1", "middle_block.2",
        "output_blocks.0", "output_blocks.1", "output_blocks.2", "output_blocks.3",
    }  # fmt: skip
    assert "model.diffusion_model.input_blocks.2.0.op.weight" in shapes
    assert "model.diffusion_model.input_blocks.3.0.skip_connection.weight" in shapes
    assert "model.diffusion_model.output_blocks.1.1.conv.weight" in shapes
    assert "first_stage_model.decoder.up.1.upsample.conv.weight" in shapes  # decoder levels reversed
    assert shapes["first_stage_model.encoder.mid.attn_1.q.weight"] == (32, 32, 1, 1)  # 1x1 conv in LDM
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in shapes


def test_tensors_keep_the_pipeline_dtype(tiny_pipe, tmp_path):
    path = export_single_file(tiny_pipe.to(torch.float16), str(tmp_path / "half.safetensors"))
    with safe_open(path, "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}


def test_existing_file_needs_overwrite(tiny_pipe, tmp_path):
    path = str(tmp_path / "tiny.safetensors")
    export_single_file(tiny_pipe, path)
    with pytest.raises(EraseError, match="already exists"):
        export_single_file(tiny_pipe, path)
    export_single_file(tiny_pipe, path, overwrite=True)


def test_sd2_text_encoder_is_refused(tiny_pipe, tmp_path):
    tiny_pipe.text_encoder.config.hidden_act = "gelu"  # what marks SD 2.x's OpenCLIP encoder
    path = tmp_path / "sd2.safetensors"
    with pytest.raises(EraseError, match="SD 2.x is not supported"):
        export_single_file(tiny_pipe, str(path))
    assert not path.exists()


def test_unmappable_tensor_is_refused(tiny_pipe, tmp_path):
    tiny_pipe.unet.register_buffer("extra_scale", torch.ones(1))
    with pytest.raises(EraseError, match="extra_scale"):
        export_single_file(tiny_pipe, str(tmp_path / "odd.safetensors"))


def test_suffix_must_be_safetensors(tiny_pipe, tmp_path):
    with pytest.raises(EraseError, match=".safetensors"):
        export_single_file(tiny_pipe, str(tmp_path / "model.ckpt"))
