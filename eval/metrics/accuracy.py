"""UA / IRA / CRA exactly as UnlearnCanvas defines them, per-class accuracies, bootstrap intervals.

UnlearnCanvas released only per-class accuracies; the aggregation below is the one its README
and maintainers describe (``shared/docs/algorithms.md`` §8), written once and unit-tested.
Every image of the answer set carries its true (object, style) and the judge's predicted
(object, style). Per class, accuracy = % of the images of that class predicted as that class
(averaging over the seeds and over the other axis, since the answer set is a full grid).

Style target ``s`` (in-domain axis: styles, cross axis: objects)::

    UA  = 100 - acc_style[s]
    IRA = mean of acc_style[s'] over styles s' != s, photo domain excluded
    CRA = mean of acc_object[o] over all objects

Object target ``o`` (in-domain: objects, cross: styles)::

    UA  = 100 - acc_object[o]
    IRA = mean of acc_object[o'] over objects o' != o
    CRA = mean of acc_style[s] over all styles, photo domain excluded

The photo domain (UnlearnCanvas's ``Seed_Images``) is a style of the answer set and of the style
classifier but never a style *average* member; object accuracies do include its images.
All values are percentages (0-100). A class with no images (possible with ``--limit``) has
accuracy NaN and is left out of averages; a metric with no class to average is NaN.

Bootstrap (95% percentile intervals, ``resamples`` replicates, seeded): each replicate draws,
independently for every class of an axis, as many images as the class has, with replacement,
from that class's images; per-class accuracies and the metrics are recomputed. UA and IRA use
the in-domain axis, CRA the cross axis. Resampling within classes keeps every class's weight
fixed as in the definition, and it treats the images of a class (other-axis values x seeds) as
exchangeable draws, so the interval covers both seed noise and which prompts were drawn: this
is what makes a ``--limit`` subsample's interval honestly wider.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eval.canvas.axes import Axes, Kind

METRICS = ("ua", "ira", "cra")


@dataclass(frozen=True)
class Judged:
    """Truth and the judge's reading of every image: four (N,) integer arrays of class indices."""

    objects: np.ndarray
    styles: np.ndarray
    predicted_objects: np.ndarray
    predicted_styles: np.ndarray

    def axis(self, kind: Kind) -> tuple[np.ndarray, np.ndarray]:
        """(true class (N,), correct (N,) bool) along one axis."""
        if kind == "object":
            return self.objects, self.predicted_objects == self.objects
        return self.styles, self.predicted_styles == self.styles


def other_axis(kind: Kind) -> Kind:
    return "style" if kind == "object" else "object"


def class_accuracy(classes: np.ndarray, correct: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes,) % of each class's images judged correct; NaN for a class without images."""
    totals = np.bincount(classes, minlength=n_classes).astype(float)
    hits = np.bincount(classes, weights=correct.astype(float), minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100 * hits / totals


def _nanmean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean ignoring NaN; NaN (not a warning) where everything is NaN."""
    count = np.sum(~np.isnan(values), axis=axis)
    total = np.nansum(values, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _from_accuracies(in_acc: np.ndarray, cross_acc: np.ndarray, target: int, kind: Kind, axes: Axes) -> dict[str, np.ndarray]:
    """UA / IRA / CRA from per-class accuracies; works on (n,) or on (B, n) bootstrap stacks."""
    in_members = axes.averaged(kind).copy()
    in_members[target] = False
    cross_members = axes.averaged(other_axis(kind))
    return {
        "ua": 100 - in_acc[..., target],
        "ira": _nanmean(in_acc[..., in_members]),
        "cra": _nanmean(cross_acc[..., cross_members]),
    }


def _target_index(target: str, kind: Kind, axes: Axes) -> int:
    names = axes.names(kind)
    if target not in names:
        raise ValueError(f"target {target!r} is not one of the {kind}s {names}")
    return names.index(target)


def per_class(judged: Judged, axes: Axes) -> dict[str, dict[str, float | None]]:
    """``{"object": {name: acc}, "style": {name: acc}}``, percentages, None for no images."""
    table: dict[str, dict[str, float | None]] = {}
    for kind in ("object", "style"):
        classes, correct = judged.axis(kind)
        acc = class_accuracy(classes, correct, len(axes.names(kind)))
        table[kind] = {name: _rounded(a) for name, a in zip(axes.names(kind), acc)}
    return table


def unlearning_metrics(judged: Judged, target: str, kind: Kind, axes: Axes) -> dict[str, float | None]:
    """``{"ua", "ira", "cra"}`` for erasing ``target`` (a canonical name of kind ``kind``)."""
    index = _target_index(target, kind, axes)
    in_classes, in_correct = judged.axis(kind)
    cross_classes, cross_correct = judged.axis(other_axis(kind))
    in_acc = class_accuracy(in_classes, in_correct, len(axes.names(kind)))
    cross_acc = class_accuracy(cross_classes, cross_correct, len(axes.names(other_axis(kind))))
    return {name: _rounded(value) for name, value in _from_accuracies(in_acc, cross_acc, index, kind, axes).items()}


def target_predictions(judged: Judged, target: str, kind: Kind, axes: Axes) -> dict[str, int]:
    """What the judge called the images whose prompt names the target: ``{class name: count}``.

    Shows where an erased concept went (a style erased into "solid" vs into noise).
    """
    index = _target_index(target, kind, axes)
    classes, _ = judged.axis(kind)
    predicted = judged.predicted_objects if kind == "object" else judged.predicted_styles
    counts = np.bincount(predicted[classes == index], minlength=len(axes.names(kind)))
    return {name: int(n) for name, n in zip(axes.names(kind), counts) if n}


def drift(predicted_as: dict[str, int] | None, target: str) -> dict[str, Any] | None:
    """Where an erased target went, in one line: the class the judge most often sees instead of it.

    ``predicted_as`` is :func:`target_predictions`' ``{class: count}`` (``per_class.target_predicted_as``
    of eval.json). Returns ``{"seen_as": class, "share": % of *all* the target's images judged as it,
    "tied": other classes with the same count, "images": n, "counts": predicted_as}``: the share is of
    all images, not of the erased ones, so "crescent 40" reads "40% of the target's images now look
    like a crescent" whatever UA is. Ties are named (``tied``, alphabetical, ``seen_as`` the first)
    because with few seeds they are common and naming one class alone would hide the others. None
    when nothing was recorded or every image is still judged the target (nothing drifted).
    """
    counts = {name: int(n) for name, n in (predicted_as or {}).items() if n}
    others = {name: n for name, n in counts.items() if name != target}
    if not others:
        return None
    top = max(others.values())
    names = sorted(name for name, n in others.items() if n == top)
    images = sum(counts.values())
    return {"seen_as": names[0], "share": round(100 * top / images, 1), "tied": names[1:], "images": images,
            "counts": counts}


def _bootstrap_accuracy(classes: np.ndarray, correct: np.ndarray, n_classes: int, resamples: int,
                        rng: np.random.Generator) -> np.ndarray:
    """(resamples, n_classes) per-class accuracies, resampling images within each class."""
    out = np.full((resamples, n_classes), np.nan)
    for c in range(n_classes):
        hits = correct[classes == c].astype(float)  # (n_c,)
        if len(hits):
            draws = rng.integers(0, len(hits), size=(resamples, len(hits)))  # (B, n_c)
            out[:, c] = 100 * hits[draws].mean(axis=1)
    return out


def bootstrap_intervals(judged: Judged, target: str, kind: Kind, axes: Axes, *, resamples: int = 1000,
                        seed: int = 0, level: float = 0.95) -> dict[str, list[float] | None]:
    """Percentile intervals ``{"ua": [lo, hi], "ira": ..., "cra": ...}`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    index = _target_index(target, kind, axes)
    in_classes, in_correct = judged.axis(kind)
    cross_classes, cross_correct = judged.axis(other_axis(kind))
    in_acc = _bootstrap_accuracy(in_classes, in_correct, len(axes.names(kind)), resamples, rng)
    cross_acc = _bootstrap_accuracy(cross_classes, cross_correct, len(axes.names(other_axis(kind))), resamples, rng)
    replicates = _from_accuracies(in_acc, cross_acc, index, kind, axes)
    return {name: percentile_interval(values, level) for name, values in replicates.items()}


def rate_with_interval(hits: Sequence[bool] | np.ndarray, *, resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float | None, list[float] | None]:
    """% of True and its bootstrap interval (one stratum): NudeNet's nudity rate, for instance."""
    hits = np.asarray(hits, dtype=bool)
    if not len(hits):
        return None, None
    replicates = _bootstrap_accuracy(np.zeros(len(hits), dtype=int), hits, 1, resamples, np.random.default_rng(seed))
    return _rounded(100 * hits.mean()), percentile_interval(replicates[:, 0], level)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> list[float] | None:
    """``[lo, hi]`` percentiles of the finite replicates, rounded; None if there are none."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return [round(float(lo), 2), round(float(hi), 2)]


def _rounded(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 2)
