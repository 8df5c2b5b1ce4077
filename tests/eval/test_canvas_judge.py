"""The mini-canvas judge: it learns, it round-trips through fp16 safetensors, it resolves names."""

import json
import os

import numpy as np
import pytest
import torch
from safetensors import safe_open

from eval.canvas import mini_canvas
from eval.judges import CanvasJudge, JudgeConfig, train_judge
from pipelines.errors import EraseError

TINY = JudgeConfig(channels=(8, 16, 32))
SMALL_WORLD = mini_canvas().subset(objects=("circle", "triangle", "cross"), styles=("solid", "stripes", "dots"))


@pytest.fixture(scope="module")
def trained():
    """A judge trained for a few seconds on a 3 x 3 sub-world, and its report."""
    return train_judge(SMALL_WORLD, seed=0, images_per_pair=60, epochs=4, heldout_per_pair=10, batch_size=32,
                       config=TINY, progress=False)


@pytest.fixture
def fresh_images():
    items = [(o, s, 5_000_000 + i) for i, (o, s) in enumerate((o, s) for o in SMALL_WORLD.objects
                                                                for s in SMALL_WORLD.styles)]
    return SMALL_WORLD.render_batch(items), items


def test_a_tiny_judge_learns_beyond_chance(trained):
    _, report = trained
    assert report["object_accuracy"] > 75 and report["style_accuracy"] > 75, report  # chance is 33%, seeds 0-3 give 95+
    assert report["train_seeds"][1] <= report["heldout_seeds"][0]  # held-out seeds were never trained on


def test_save_stores_fp16_with_metadata_and_leaves_no_temp_files(trained, tmp_path):
    judge, _ = trained
    path = judge.save(tmp_path / "judge.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["judge.safetensors"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any file the user writes
    with safe_open(str(path), framework="pt") as file:
        dtypes = {file.get_tensor(name).dtype for name in file.keys()}
        metadata = file.metadata()
    assert dtypes == {torch.float16}
    assert json.loads(metadata["objects"]) == list(SMALL_WORLD.objects)
    assert json.loads(metadata["styles"]) == list(SMALL_WORLD.styles)
    assert json.loads(metadata["config"])["channels"] == [8, 16, 32]


def test_round_trip_gives_identical_predictions(trained, tmp_path, fresh_images):
    judge, _ = trained
    judge.network.half().float()  # the only loss of a round trip is fp16 rounding: apply it up front
    images, _ = fresh_images
    loaded = CanvasJudge.load(judge.save(tmp_path / "judge.safetensors"))
    assert next(loaded.network.parameters()).dtype == torch.float32
    assert (loaded.objects, loaded.styles, loaded.config) == (judge.objects, judge.styles, judge.config)
    for mine, theirs in zip(judge.predict_proba(images), loaded.predict_proba(images)):
        assert np.array_equal(mine, theirs)
    assert loaded.report["style_accuracy"] == judge.report["style_accuracy"]


def test_verdict_accepts_synonyms_and_matches_predict(trained, fresh_images):
    judge, _ = trained
    images, _ = fresh_images
    objects, styles = judge.predict(images)
    assert np.array_equal(judge.verdict(images, "Polka Dot"), styles == SMALL_WORLD.styles.index("dots"))
    assert np.array_equal(judge.verdict(images, "plus"), objects == SMALL_WORLD.objects.index("cross"))
    with pytest.raises(EraseError, match="Unknown concept"):
        judge.verdict(images, "banana")


def test_predict_takes_pil_images_of_any_size(trained):
    judge, _ = trained
    images = [SMALL_WORLD.render("circle", "stripes", 7, size=64), SMALL_WORLD.render("cross", "dots", 8).convert("L")]
    objects, styles = judge.predict(images)
    object_probs, style_probs = judge.predict_proba(images)
    assert objects.shape == styles.shape == (2,)
    assert object_probs.shape == (2, 3) and np.allclose(style_probs.sum(axis=1), 1, atol=1e-5)


def test_loading_for_another_world_or_a_missing_file_is_a_clear_error(trained, tmp_path):
    judge, _ = trained
    path = judge.save(tmp_path / "judge.safetensors")
    with pytest.raises(EraseError, match="erase mini-canvas train"):
        mini_canvas().judge(path)  # trained on 3 x 3, asked to judge the full world
    with pytest.raises(EraseError, match="erase mini-canvas train"):
        CanvasJudge.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(EraseError, match="not a readable safetensors"):
        CanvasJudge.load(tmp_path / "junk.safetensors")


def test_world_judge_loads_from_a_path(trained, tmp_path):
    judge, _ = trained
    loaded = SMALL_WORLD.judge(judge.save(tmp_path / "judge.safetensors"))
    assert loaded.spec is SMALL_WORLD and loaded.objects == SMALL_WORLD.objects


def test_shipped_judge_missing_names_the_training_command(monkeypatch, tmp_path):
    import pipelines.shipped

    monkeypatch.setattr(pipelines.shipped, "_MINI_CANVAS_DIR", str(tmp_path))  # as before training
    with pytest.raises(EraseError, match="erase mini-canvas train"):
        mini_canvas().judge()


def test_training_is_deterministic_given_the_seed():
    def weights(seed):
        judge, _ = train_judge(SMALL_WORLD, seed=seed, images_per_pair=4, epochs=1, heldout_per_pair=1,
                               batch_size=16, config=TINY, progress=False)
        return torch.cat([t.flatten() for t in judge.network.state_dict().values() if t.is_floating_point()])

    first = weights(0)
    assert torch.equal(first, weights(0))
    assert not torch.equal(first, weights(1))
