import numpy as np
import pytest
import torch
from PIL import Image

from erase.data import canvas_sets, encode_latents, farthest_classes, folder_set, next_class, read_prompts, relabelled_caption
from eval.canvas import mini_canvas
from pipelines import backbone_for
from pipelines.errors import ConfigError, EraseError


def test_canvas_sets_split_on_the_target():
    spec = mini_canvas()
    forget, retain = canvas_sets(spec, "striped", per_pair=2)  # any name of the concept
    assert len(forget) == 2 * len(spec.objects) and len(retain) == 2 * len(spec.objects) * (len(spec.styles) - 1)
    assert all("stripes" in p for p in forget.prompts)
    assert not any(spec.mentions(p, "stripes") for p in retain.prompts)
    assert forget.images.shape[1:] == (32, 32, 3) and forget.images.dtype == np.uint8
    objects_forget, _ = canvas_sets(spec, "star", per_pair=1)
    assert len(objects_forget) == len(spec.styles)


def test_folder_set_reads_captions_and_refuses_bad_folders(tmp_path):
    with pytest.raises(EraseError, match="has no images"):
        folder_set(str(tmp_path), 16)
    Image.new("RGB", (20, 20), "red").save(tmp_path / "a.png")
    with pytest.raises(EraseError, match="no caption"):
        folder_set(str(tmp_path), 16)
    (tmp_path / "a.txt").write_text("a red square")
    images = folder_set(str(tmp_path), 16)
    assert images.prompts == ["a red square"] and images.images.shape == (1, 16, 16, 3)


def test_latents_have_the_model_shape(tiny_pipe):
    bb = backbone_for(tiny_pipe)
    forget, _ = canvas_sets(mini_canvas(), "dots", per_pair=1)
    z = encode_latents(bb, forget)
    assert z.shape == (len(forget), *bb.latent_shape(1)[1:])


def test_read_prompts_strips_blank_lines_and_names_the_flag_on_bad_files(tmp_path):
    good = tmp_path / "p.txt"
    good.write_text("  a star  \n\n a cross\n", encoding="utf-8")
    assert read_prompts(str(good), "--x-prompts") == ["a star", "a cross"]
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="--x-prompts .* has no prompts"):
        read_prompts(str(tmp_path / "empty.txt"), "--x-prompts")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="--y-prompts .* is not a readable text file"):
        read_prompts(str(tmp_path / "bin.txt"), "--y-prompts")
    with pytest.raises(ConfigError, match="is not a readable text file"):
        read_prompts(str(tmp_path / "missing.txt"), "--y-prompts")


def test_next_class_skips_targets_and_wraps_around():
    order = ("a", "b", "c", "d")
    assert next_class(order, "b", {"a"}) == "b"  # not a target: unchanged
    assert next_class(order, "b", {"b", "c"}) == "d"
    assert next_class(order, "d", {"d", "a"}) == "b"  # wraps past the end
    with pytest.raises(ConfigError, match="every class of an axis is a target"):
        next_class(order, "a", set(order))


def test_relabelled_caption_swaps_each_axis_for_its_fixed_concept_or_the_next_class():
    spec = mini_canvas()
    assert relabelled_caption(spec, "star", "dots", {"star"}) == spec.prompt("cross", "dots")
    assert relabelled_caption(spec, "star", "dots", {"star"}, ("house",)) == spec.prompt("house", "dots")
    assert relabelled_caption(spec, "star", "dots", {"star", "dots"}, ("house",)) == spec.prompt("house", "grid")
    assert relabelled_caption(spec, "star", "dots", {"star", "dots"}, ("house", "solid")) == spec.prompt("house", "solid")


class _LineEncoder:
    """Conditioning that puts each object at its index on a line and ignores the style: distances are known."""

    def __init__(self, spec):
        self.spec = spec

    def encode(self, prompts):
        place = [next(i for i, o in enumerate(self.spec.objects) if self.spec.mentions(p, o)) for p in prompts]
        return torch.tensor(place, dtype=torch.float32).view(-1, 1, 1)


def test_farthest_classes_maximise_the_distance_to_the_nearest_target():
    spec = mini_canvas()
    line = _LineEncoder(spec)
    first, last = spec.objects[0], spec.objects[-1]
    assert farthest_classes(spec, line, {first}) == (last,)
    assert farthest_classes(spec, line, {first, last}) == (spec.objects[4],)  # 4 and 5 tie at 4: the world's order decides
    assert farthest_classes(spec, line, {first, last, spec.objects[5]}) == (spec.objects[2],)
    with pytest.raises(ConfigError, match="every class of an axis is a target"):
        farthest_classes(spec, line, set(spec.objects))
