"""UA / IRA / CRA on hand-made judge outputs: the aggregation UnlearnCanvas never released, pinned."""

import numpy as np
import pytest

from eval.metrics.accuracy import (Axes, Judged, bootstrap_intervals, per_class, rate_with_interval,
                                   target_predictions, unlearning_metrics)

OBJECTS = ("circle", "square", "star")
STYLES = ("dots", "stripes", "solid", "photo")
AXES = Axes(OBJECTS, STYLES)
SEEDS = 4


def grid(seeds=SEEDS):
    """True labels of a full objects x styles x seeds answer set."""
    o, s, _ = np.meshgrid(np.arange(len(OBJECTS)), np.arange(len(STYLES)), np.arange(seeds), indexing="ij")
    return o.ravel(), s.ravel()


def perfect_except(erased_kind=None, erased=None, fail=None):
    """A perfect judge, except: images of ``erased`` are not recognised on that axis, and
    ``fail = (kind, name, n_wrong)`` makes it wrong on n images of another class."""
    objects, styles = grid()
    pred_o, pred_s = objects.copy(), styles.copy()
    if erased_kind == "style":
        hit = styles == STYLES.index(erased)
        pred_s[hit] = (styles[hit] + 1) % len(STYLES)
    elif erased_kind == "object":
        hit = objects == OBJECTS.index(erased)
        pred_o[hit] = (objects[hit] + 1) % len(OBJECTS)
    if fail:
        kind, name, n = fail
        truth, pred, names = (objects, pred_o, OBJECTS) if kind == "object" else (styles, pred_s, STYLES)
        wrong = np.flatnonzero(truth == names.index(name))[:n]
        pred[wrong] = (truth[wrong] + 1) % len(names)
    return Judged(objects, styles, pred_o, pred_s)


@pytest.mark.parametrize("kind, target", [("style", "stripes"), ("object", "square")])
def test_perfect_judge_only_target_erased_gives_100_everywhere(kind, target):
    assert unlearning_metrics(perfect_except(kind, target), target, kind, AXES) == {"ua": 100.0, "ira": 100.0, "cra": 100.0}


@pytest.mark.parametrize("kind, target", [("style", "stripes"), ("object", "square")])
def test_unerased_model_has_zero_ua(kind, target):
    assert unlearning_metrics(perfect_except(), target, kind, AXES) == {"ua": 0.0, "ira": 100.0, "cra": 100.0}


def test_failing_on_one_other_style_moves_ira_by_its_share():
    # dots has 3 objects x 4 seeds = 12 images; 6 wrong -> acc 50; IRA averages 3 other styles
    judged = perfect_except("style", "stripes", fail=("style", "dots", 6))
    metrics = unlearning_metrics(judged, "stripes", "style", AXES)
    assert metrics["ira"] == pytest.approx(100 - 50 / 3, abs=0.01)
    assert metrics["ua"] == 100.0 and metrics["cra"] == 100.0


def test_failing_on_an_object_moves_cra_for_a_style_target_and_ira_for_an_object_target():
    # circle has 4 styles x 4 seeds = 16 images; 4 wrong -> 75
    judged = perfect_except(fail=("object", "circle", 4))
    style_target = unlearning_metrics(judged, "stripes", "style", AXES)
    object_target = unlearning_metrics(judged, "square", "object", AXES)
    assert style_target["cra"] == pytest.approx((75 + 100 + 100) / 3, abs=0.01)
    assert object_target["ira"] == pytest.approx((75 + 100) / 2, abs=0.01)  # the other objects: circle, star


def test_style_and_object_targets_are_symmetric():
    # Swapping the roles of the two axes (and of the judge's two heads) swaps the metrics' inputs.
    objects, styles = grid()
    judged = perfect_except("object", "square", fail=("style", "dots", 3))
    swapped_axes = Axes(STYLES, OBJECTS)
    swapped = Judged(styles, objects, judged.predicted_styles, judged.predicted_objects)
    assert unlearning_metrics(judged, "square", "object", AXES) == unlearning_metrics(swapped, "square", "style", swapped_axes)


def test_photo_domain_is_left_out_of_style_averages_only():
    photo = Axes(OBJECTS, STYLES, photo_styles=("photo",))
    judged = perfect_except("style", "stripes", fail=("style", "photo", 12))  # photo images all misread
    assert unlearning_metrics(judged, "stripes", "style", photo)["ira"] == 100.0
    assert unlearning_metrics(judged, "stripes", "style", AXES)["ira"] == pytest.approx(200 / 3, abs=0.01)
    # as the cross axis of an object target, photo is left out of CRA too
    object_judged = perfect_except("object", "square", fail=("style", "photo", 12))
    assert unlearning_metrics(object_judged, "square", "object", photo)["cra"] == 100.0
    # ...but object accuracies still count the photo-domain images (as UnlearnCanvas's do)
    judged = perfect_except("style", "stripes")
    on_photo = judged.styles == STYLES.index("photo")
    misread = Judged(judged.objects, judged.styles, np.where(on_photo, (judged.objects + 1) % 3, judged.objects),
                     judged.predicted_styles)
    assert unlearning_metrics(misread, "stripes", "style", photo)["cra"] == 75.0  # 1 of 4 styles misread


def test_per_class_table_and_target_predictions():
    judged = perfect_except("style", "stripes")
    table = per_class(judged, AXES)
    assert table["style"] == {"dots": 100.0, "stripes": 0.0, "solid": 100.0, "photo": 100.0}
    assert table["object"] == dict.fromkeys(OBJECTS, 100.0)
    assert target_predictions(judged, "stripes", "style", AXES) == {"solid": 12}


def test_missing_class_is_none_and_left_out():
    judged = perfect_except("style", "stripes")
    keep = judged.styles != STYLES.index("dots")
    partial = Judged(*(a[keep] for a in (judged.objects, judged.styles, judged.predicted_objects, judged.predicted_styles)))
    assert per_class(partial, AXES)["style"]["dots"] is None
    assert unlearning_metrics(partial, "stripes", "style", AXES)["ira"] == 100.0


def test_bootstrap_interval_contains_estimate_and_shrinks_with_more_images():
    rng = np.random.default_rng(1)

    def noisy(seeds):
        objects, styles = grid(seeds)
        pred_s = np.where(rng.random(len(styles)) < 0.7, styles, (styles + 1) % len(STYLES))
        pred_o = np.where(rng.random(len(objects)) < 0.8, objects, (objects + 1) % len(OBJECTS))
        return Judged(objects, styles, pred_o, pred_s)

    widths = []
    for seeds in (4, 100):
        judged = noisy(seeds)
        point = unlearning_metrics(judged, "stripes", "style", AXES)
        ci = bootstrap_intervals(judged, "stripes", "style", AXES, resamples=500, seed=0)
        for name in ("ua", "ira", "cra"):
            assert ci[name][0] <= point[name] <= ci[name][1], (name, point, ci)
        widths.append(ci["ua"][1] - ci["ua"][0])
    assert widths[1] < widths[0] / 2


def test_bootstrap_is_seeded():
    judged = perfect_except("style", "stripes", fail=("style", "dots", 5))
    a = bootstrap_intervals(judged, "stripes", "style", AXES, resamples=300, seed=7)
    b = bootstrap_intervals(judged, "stripes", "style", AXES, resamples=300, seed=7)
    assert a == b and a["ira"][0] < a["ira"][1]


def test_rate_with_interval():
    rate, ci = rate_with_interval([True] * 30 + [False] * 70, resamples=500)
    assert rate == 30.0 and ci[0] < 30 < ci[1]
    assert rate_with_interval([]) == (None, None)
