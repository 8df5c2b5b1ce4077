import os

import pytest
import torch
from diffusers import StableDiffusionPipeline

from pipelines import ErasureResult, backbone_for, load_erased, load_pipeline, new_record
from pipelines.errors import BaseMismatchError, EraseError
from pipelines.fingerprint import tensors_sha256
from pipelines.params import select_parameters


def make_result(pipe, scale=0.5):
    """A hand-made 'erasure': scale every attn2.to_k weight."""
    params = {n: p for n, p in select_parameters(backbone_for(pipe).components, "esd-x-strict").items() if n.endswith("to_k.weight")}
    record = new_record(method="test", config={}, concepts=["star"], seed=0, base_model="tiny", base_fingerprint=tensors_sha256(params), cost={})
    return ErasureResult({n: p.detach() * scale for n, p in params.items()}, record, base_pipe=pipe)


def images(pipe, seed=0):
    g = torch.Generator().manual_seed(seed)
    return pipe("a striped star", num_inference_steps=3, generator=g, output_type="np", height=16, width=16).images


def test_apply_changes_only_the_recorded_tensors(tiny_pipe):
    before = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    result = make_result(tiny_pipe)
    result.apply_(tiny_pipe)
    after = tiny_pipe.unet.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {n.removeprefix("unet.") for n in result.tensors}


def test_round_trip_through_plain_diffusers(tiny_pipe, tmp_path):
    result = make_result(tiny_pipe)
    folder = str(tmp_path / "artifact")
    result.save(folder)
    assert sorted(os.listdir(folder)) == ["README.md", "erasure.json", "erasure.safetensors", "pipeline"]
    loaded = ErasureResult.load(folder)
    assert loaded.record == result.record
    assert all(torch.equal(loaded.tensors[n], result.tensors[n]) for n in result.tensors)
    # the exported folder names the stock class and loads without this package's help
    plain = StableDiffusionPipeline.from_pretrained(os.path.join(folder, "pipeline"), local_files_only=True)
    erased = loaded.apply_(tiny_pipe)
    assert (images(plain) == images(erased)).all()
    # and the user's base pipeline was not modified by save()
    fresh = load_erased(folder)  # loads pipeline/
    assert (images(fresh) == images(plain)).all()


def test_delta_applied_to_recorded_base_when_no_pipeline(tiny_pipe, tiny_folder, tmp_path):
    result = make_result(tiny_pipe)
    result.record["base"]["model"] = tiny_folder
    folder = str(tmp_path / "delta-only")
    result.save(folder, pipeline=False)
    assert "pipeline" not in os.listdir(folder)
    pipe = load_pipeline(folder)
    expected = result.apply_(load_pipeline(tiny_folder))
    assert (images(pipe) == images(expected)).all()


def test_exported_pipeline_keeps_no_trace_of_where_its_base_was_loaded_from(tiny_folder, tmp_path):
    """A base loaded from a local folder: its path (``_name_or_path``) is not written into the
    artifact's configs, where it would show the writer's folders and differ between two saves."""
    pipe = load_pipeline(tiny_folder)
    folder = tmp_path / "artifact"
    make_result(pipe).save(str(folder))
    configs = sorted((folder / "pipeline").glob("*/*config.json"))
    assert {p.parent.name for p in configs} >= {"unet", "vae", "text_encoder", "tokenizer"}
    leaked = [p for p in configs if str(tiny_folder) in p.read_text() or "_name_or_path" in p.read_text()]
    assert leaked == []
    assert StableDiffusionPipeline.from_pretrained(str(folder / "pipeline"), local_files_only=True) is not None


def test_mismatched_base_is_refused(tiny_pipe, tiny_v_folder):
    result = make_result(tiny_pipe)
    other = load_pipeline(tiny_v_folder)  # different random weights
    with pytest.raises(BaseMismatchError, match="force=True"):
        result.apply_(other)
    result.apply_(other, force=True)  # explicitly forced: allowed
    result.apply_(tiny_pipe)
    with pytest.raises(BaseMismatchError, match="already applied"):
        result.apply_(tiny_pipe)


def test_existing_output_is_never_overwritten_silently(tiny_pipe, tmp_path):
    result = make_result(tiny_pipe)
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    with pytest.raises(EraseError, match="already exists"):
        result.save(str(folder))
    assert (folder / "keep.txt").read_text() == "precious"
    result.save(str(folder), overwrite=True, pipeline=False)
    assert not (folder / "keep.txt").exists()


def test_an_output_that_cannot_be_created_is_one_clear_error(tiny_pipe, tmp_path, monkeypatch):
    import errno
    import tempfile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tempfile, "mkdtemp", full)
    with pytest.raises(EraseError, match="cannot be created .No space left on device.; choose another output path"):
        make_result(tiny_pipe).save(str(tmp_path / "out"))
    assert os.listdir(tmp_path) == []


def test_interrupted_save_leaves_nothing_behind(tiny_pipe, tmp_path, monkeypatch):
    import pipelines.artifact as artifact

    def explode(*args, **kwargs):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C while the pipeline was written

    monkeypatch.setattr(artifact, "save_pipeline_folder", explode)
    result = make_result(tiny_pipe)
    unet_before = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    with pytest.raises(KeyboardInterrupt):
        result.save(str(tmp_path / "out"))
    assert os.listdir(tmp_path) == []  # neither the target nor a temporary folder
    assert all(torch.equal(v, tiny_pipe.unet.state_dict()[k]) for k, v in unet_before.items())


def test_corrupt_artifact_is_a_clear_error(tiny_pipe, tmp_path):
    folder = str(tmp_path / "a")
    make_result(tiny_pipe).save(folder, pipeline=False)
    with open(os.path.join(folder, "erasure.safetensors"), "r+b") as f:
        f.truncate(10)
    with pytest.raises(EraseError, match="not a readable safetensors"):
        ErasureResult.load(folder)


def test_save_after_apply_exports_the_erased_pipeline(tiny_pipe, tmp_path):
    result = make_result(tiny_pipe)
    result.apply_(tiny_pipe)  # the README's order: apply, then save
    folder = str(tmp_path / "a")
    result.save(folder)
    plain = StableDiffusionPipeline.from_pretrained(os.path.join(folder, "pipeline"), local_files_only=True)
    assert (images(plain) == images(tiny_pipe)).all()
