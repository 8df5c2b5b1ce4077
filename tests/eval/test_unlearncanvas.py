"""The real-UnlearnCanvas path with tiny random stand-ins of its timm ViT classifiers (nothing downloads)."""

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from eval.canvas.unlearncanvas import OBJECTS, PHOTO_STYLE, SAMPLING, SEEDS, STYLES, unlearncanvas
from eval.judges.protocol import AxisJudge
from eval.judges.unlearncanvas_judge import UnlearnCanvasJudge
from pipelines.errors import EraseError

ARCH = "vit_large_patch16_224.augreg_in21k"
TINY = {"depth": 1, "embed_dim": 16, "num_heads": 2, "img_size": 32, "patch_size": 16}


def test_spec_is_unlearncanvas():
    spec = unlearncanvas()
    assert len(STYLES) == 51 and len(OBJECTS) == 20 and STYLES.index(PHOTO_STYLE) == 38
    assert spec.prompt("Bears", "Van_Gogh") == "A Bears image in Van Gogh style."
    assert spec.canonical("seed_image") == PHOTO_STYLE and spec.kind("meteor shower") == "style"
    assert SEEDS == (188, 288, 588, 688, 888) and SAMPLING == {"steps": 100, "guidance": 9.0}


def _checkpoint(path, classes, layout):
    """A random tiny ViT in UnlearnCanvas's checkpoint layout (their format, inside a tmp dir only)."""
    torch.manual_seed(classes)
    state = timm.create_model(ARCH, pretrained=False, num_classes=classes, **TINY).state_dict()
    if layout == "torch":
        torch.save({"model_state_dict": state, "epoch": 3}, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    return str(path)


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uc")
    style = _checkpoint(folder / "style50.pth", 51, "torch")
    obj = _checkpoint(folder / "style50_cls.safetensors", 20, "safetensors")
    return UnlearnCanvasJudge.load(style, obj, unlearncanvas(), arch=ARCH, arch_kwargs=TINY, image_size=32)


def test_judge_follows_the_protocol_and_predicts_both_axes(judge):
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    objects, styles = judge.predict(images)
    assert isinstance(judge, AxisJudge)
    assert objects.shape == styles.shape == (3,) and objects.max() < 20 and styles.max() < 51
    expected_style = np.array([STYLES[s] == "Van Gogh" for s in styles])
    assert np.array_equal(judge.verdict(images, "van_gogh"), expected_style)
    assert np.array_equal(judge.verdict(images, OBJECTS[objects[0]]), objects == objects[0])
    assert judge.record()["style_sha256"] and judge.record()["arch"] == ARCH


def test_preprocessing_is_unlearncanvas_s(judge):
    image = np.full((1, 8, 8, 3), 255, dtype=np.uint8)
    x = judge._tensor(image)
    assert x.shape == (1, 3, 32, 32) and torch.allclose(x, torch.ones_like(x))  # Normalize(0.5, 0.5): 1 -> 1


def test_missing_checkpoint_names_its_flag(tmp_path):
    style = _checkpoint(tmp_path / "s.pth", 51, "torch")
    with pytest.raises(EraseError, match="--object-classifier"):
        UnlearnCanvasJudge.load(style, str(tmp_path / "nope.pth"), unlearncanvas(), arch=ARCH, arch_kwargs=TINY)
    with pytest.raises(EraseError, match="--style-classifier"):
        UnlearnCanvasJudge.load(None, style, unlearncanvas(), arch=ARCH, arch_kwargs=TINY)


def test_wrong_class_count_is_a_clear_error(tmp_path):
    twenty = _checkpoint(tmp_path / "cls.pth", 20, "torch")
    with pytest.raises(EraseError, match="51 classes"):
        UnlearnCanvasJudge.load(twenty, twenty, unlearncanvas(), arch=ARCH, arch_kwargs=TINY)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model_state_dict": {"w": torch.zeros(1)}, "hook": __import__("fractions").Fraction(1, 3)}, path)
    with pytest.raises(EraseError, match="could not read"):
        UnlearnCanvasJudge.load(str(path), str(path), unlearncanvas(), arch=ARCH, arch_kwargs=TINY)


def test_metrics_on_unlearncanvas_leave_the_photo_domain_out(judge):
    from eval.canvas.answers import canvas_answer_set, unlearncanvas_benchmark
    from eval.metrics.accuracy import Judged, unlearning_metrics

    benchmark = unlearncanvas_benchmark()
    answers = canvas_answer_set(benchmark, (188,), 9.0)
    photo = answers.styles == STYLES.index(PHOTO_STYLE)
    target = answers.styles == STYLES.index("Van Gogh")
    predicted_styles = np.where(photo | target, (answers.styles + 1) % 51, answers.styles)  # photo and target misread
    judged = Judged(answers.objects, answers.styles, answers.objects, predicted_styles)
    assert unlearning_metrics(judged, "Van Gogh", "style", benchmark.axes) == {"ua": 100.0, "ira": 100.0, "cra": 100.0}
