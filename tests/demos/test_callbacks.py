"""What the demo's buttons do, without Gradio: right images, right messages, the base left intact."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from demos import callbacks
from demos.callbacks import InputError
from pipelines.errors import EraseError
from pipelines.fingerprint import tensors_sha256
from tests.demos.conftest import STRIPES_PROMPT

FAST = {"steps": 4}  # DDIM steps per image: the tiny model's images are noise at any count


def saved_label(model) -> str:
    (label,) = model.saved
    return label


def unet_fingerprint(model) -> str:
    return tensors_sha256(dict(model.pipe.unet.state_dict()))


def test_compare_gives_two_images_of_the_display_size_and_the_erased_one_differs(demo_model):
    before = unet_fingerprint(demo_model)
    shown = callbacks.compare(demo_model, STRIPES_PROMPT, 0, saved_label(demo_model), {}, size=256, **FAST)
    assert shown.base.size == shown.erased.size == (256, 256)  # 16-pixel images, 16x nearest
    assert not np.array_equal(np.asarray(shown.base), np.asarray(shown.erased))
    assert "should be missing on the right" in shown.caption and shown.warnings == []
    assert unet_fingerprint(demo_model) == before  # the erasure was applied for one call only


def test_same_prompt_and_seed_give_the_same_images(demo_model):
    label = saved_label(demo_model)
    a = callbacks.compare(demo_model, STRIPES_PROMPT, 3, label, {}, **FAST)
    b = callbacks.compare(demo_model, STRIPES_PROMPT, 3.0, label, {}, **FAST)
    assert a.base.tobytes() == b.base.tobytes() and a.erased.tobytes() == b.erased.tobytes()


def test_without_an_erased_model_both_images_are_the_base_and_a_warning_says_why(demo_model):
    shown = callbacks.compare(demo_model, "A heart image in solid style.", 0, None, {}, **FAST)
    assert shown.base.tobytes() == shown.erased.tobytes()
    assert len(shown.warnings) == 1 and "No erased model is selected" in shown.warnings[0]


def test_a_prompt_without_the_concept_is_explained(demo_model):
    shown = callbacks.compare(demo_model, "A heart image in solid style.", 0, saved_label(demo_model), {}, **FAST)
    assert "does not name the erased stripes" in shown.caption


@pytest.mark.parametrize(
    "change, message",
    [
        ({"prompt": ""}, "Type a prompt first"),
        ({"prompt": "   "}, "Type a prompt first"),
        ({"prompt": None}, "Type a prompt first"),
        ({"prompt": "star " * 200}, "keep it under 500"),
        ({"seed": -1}, "seed must be a number from 0"),
        ({"seed": 1.5}, "seed must be a whole number"),
        ({"seed": "abc"}, "seed must be a number"),
        ({"seed": None}, "seed must be a number"),
        ({"seed": True}, "seed must be a number"),
        ({"steps": 0}, "sampling steps must be a number from 1 to 150"),
        ({"steps": 10_000}, "sampling steps"),
        ({"guidance": math.nan}, "guidance scale"),
        ({"guidance": -1}, "guidance scale"),
        ({"size": 8}, "display size must be a number from 32 to 1024"),
        ({"size": 100_000}, "display size"),
        ({"erased": "no-such-model"}, "no erased model called 'no-such-model'"),
    ],
)
def test_bad_inputs_are_refused_with_a_message(demo_model, change, message):
    values = {"prompt": STRIPES_PROMPT, "seed": 0, "erased": None, "steps": 2, "guidance": 5.0, "size": 256, **change}
    with pytest.raises(InputError, match=message):
        callbacks.compare(demo_model, values["prompt"], values["seed"], values["erased"], {},
                          steps=values["steps"], guidance=values["guidance"], size=values["size"])


def test_a_prompt_over_the_token_limit_is_a_warning(demo_model):
    shown = callbacks.compare(demo_model, "star " * 90, 0, None, {}, **FAST)
    assert any("longer than 77 tokens" in w for w in shown.warnings)


def test_erasing_live_changes_the_concepts_image_and_keeps_the_base(demo_model):
    before = unet_fingerprint(demo_model)
    reports = []
    label, session, status = callbacks.erase_live(demo_model, "Striped", "esd", 3, {}, report=lambda d, t: reports.append((d, t)))
    assert reports == [(0, 3), (1, 3), (2, 3)]
    assert label in session and session[label].concepts == ["stripes"] and "Erased **stripes**" in status
    assert session[label].base_pipe is None  # a session holds tensors, never the model
    assert unet_fingerprint(demo_model) == before
    assert label in callbacks.erased_choices(demo_model, session)
    shown = callbacks.compare(demo_model, STRIPES_PROMPT, 0, label, session, **FAST)
    assert not np.array_equal(np.asarray(shown.base), np.asarray(shown.erased))
    assert "About" in callbacks.budget(demo_model, "esd", 100)  # the pace is now measured


def test_a_session_keeps_its_newest_erasures(demo_model, monkeypatch):
    monkeypatch.setattr(callbacks, "SESSION_LIMIT", 2)
    session: callbacks.Session = {}
    labels = []
    for steps in (1, 2, 3):
        label, session, status = callbacks.erase_live(demo_model, "dots", "esd", steps, session)
        labels.append(label)
    assert list(session) == labels[1:] and labels[0] in status
    assert callbacks.erased_choices(demo_model, session) == [*demo_model.saved, *labels[1:]]


@pytest.mark.parametrize(
    "concept, method, steps, error, message",
    [
        ("", "esd", 2, InputError, "Choose a concept"),
        ("Van Gogh", "esd", 2, EraseError, "Unknown concept 'Van Gogh'"),
        ("stripes", "nope", 2, InputError, "Unknown method 'nope'; choose one of: .*esd"),
        ("stripes", "esd", 0, InputError, "training steps must be a number from 1 to 1000"),
        ("stripes", "esd", 5000, InputError, "training steps"),
    ],
)
def test_bad_live_erasures_are_refused_before_any_training(demo_model, concept, method, steps, error, message):
    with pytest.raises(error, match=message):
        callbacks.erase_live(demo_model, concept, method, steps, {}, report=lambda d, t: pytest.fail("trained"))


def test_live_erasing_off_says_how_to_turn_it_on(demo_model, monkeypatch):
    monkeypatch.setattr(demo_model, "live", None)
    with pytest.raises(InputError, match="--live-erase"):
        callbacks.erase_live(demo_model, "stripes", "esd", 2, {})


def test_budget_reports_the_steps_or_what_is_wrong_with_them(demo_model):
    assert callbacks.budget(demo_model, "esd", 50).startswith("Budget: 50 training steps of esd (at most 1000 here).")
    assert "must be a number from 1 to 1000" in callbacks.budget(demo_model, "esd", 0)
    assert callbacks.budget(demo_model, "nope", 50) == ""


def test_enlarge_keeps_pixels_square_and_crisp():
    image = Image.fromarray(np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3))
    big = callbacks.enlarge(image, 256)
    assert big.size == (256, 256)
    assert np.array_equal(np.asarray(big)[::8, ::8], np.asarray(image))
    assert callbacks.enlarge(image, 40).size == (32, 32)  # never a fractional factor
