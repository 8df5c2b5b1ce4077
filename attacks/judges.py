"""Which judge decides whether an attack succeeded, built from local files and recorded so a
replay can build the same one.

* ``mini-canvas``: the shipped object/style classifier (or ``--judge FILE``), for mini-canvas
  objects and styles;
* ``unlearncanvas``: UnlearnCanvas's two ViT-L classifiers (``--style-classifier``,
  ``--object-classifier``), for its styles and objects;
* ``nudenet``: NudeNet with UnlearnDiffAtk's nine labels and threshold 0.45 (options), for nudity.

The default follows the concept: nudity -> NudeNet, ``--benchmark unlearncanvas`` -> its
classifiers, else the mini-canvas judge. Every judge comes from ``eval/judges`` and answers
``verdict(images, concept)``; nothing downloads, and a missing file names its flag.
"""

from __future__ import annotations

import os
from typing import Any

from eval.judges.nudenet import CONCEPTS as NUDITY_NAMES
from eval.judges.protocol import Judge
from pipelines.errors import ConfigError
from pipelines.fingerprint import file_sha256

JUDGES = ("mini-canvas", "unlearncanvas", "nudenet")


def default_kind(concept: str, benchmark: str) -> str:
    if concept.strip().lower() in NUDITY_NAMES:
        return "nudenet"
    return "unlearncanvas" if benchmark == "unlearncanvas" else "mini-canvas"


def build_judge(kind: str, concept: str, *, judge_path: str | None = None, style_classifier: str | None = None,
                object_classifier: str | None = None, classifier_arch: str | None = None,
                nudenet_labels: list[str] | None = None, nudenet_threshold: float | None = None,
                nudenet_model: str | None = None, device: str = "cpu") -> tuple[Judge, dict[str, Any]]:
    """The judge of ``kind`` for ``concept`` and its record (``{"kind": ..., how to rebuild it}``)."""
    if kind == "mini-canvas":
        return _mini_canvas(concept, judge_path)
    if kind == "unlearncanvas":
        return _unlearncanvas(concept, style_classifier, object_classifier, classifier_arch, device)
    if kind == "nudenet":
        return _nudenet(concept, nudenet_labels, nudenet_threshold, nudenet_model)
    raise ConfigError(f"unknown judge {kind!r}; choose from {', '.join(JUDGES)}")


def judge_from_record(info: dict[str, Any], device: str = "cpu", judge_path: str | None = None) -> Judge:
    """Rebuild the judge an ``attack.json`` recorded (``judge_path`` replaces a moved mini-canvas file)."""
    kind = info.get("kind")
    concept = info.get("concept", "")
    if kind == "mini-canvas":
        judge, rebuilt = _mini_canvas(concept, judge_path or info.get("path"))
    elif kind == "unlearncanvas":
        judge, rebuilt = _unlearncanvas(concept, info.get("style_classifier"), info.get("object_classifier"),
                                        info.get("arch"), device)
    elif kind == "nudenet":
        judge, rebuilt = _nudenet(concept, info.get("labels"), info.get("threshold"), info.get("model_path"))
    else:
        raise ConfigError(f"the recorded judge {info.get('name', kind)!r} cannot be rebuilt from files; replay it from "
                          "Python with attacks.replay.replay(folder, judge=...)")
    changed = [key for key, value in info.items() if key.endswith("sha256") and value and rebuilt.get(key) != value]
    if changed:
        raise ConfigError(f"the judge's files differ from the ones the attack used ({', '.join(changed)} changed); "
                          "pass the original files (mini-canvas: --judge FILE)")
    return judge


def _mini_canvas(concept: str, path: str | None) -> tuple[Judge, dict[str, Any]]:
    from eval.canvas import mini_canvas
    from pipelines.shipped import mini_canvas_file

    world = mini_canvas()
    world.canonical(concept)  # an unknown concept fails here, naming the world's concepts
    path = os.path.abspath(path or mini_canvas_file("judge.safetensors"))
    judge = world.judge(path)
    report = judge.report or {}
    return judge, {"kind": "mini-canvas", "name": "mini-canvas judge", "concept": concept, "path": path,
                   "sha256": file_sha256(path),
                   "heldout_accuracy": {"object": report.get("object_accuracy"), "style": report.get("style_accuracy")}}


def _unlearncanvas(concept: str, style: str | None, obj: str | None, arch: str | None,
                   device: str) -> tuple[Judge, dict[str, Any]]:
    from eval.canvas.unlearncanvas import CLASSIFIER_ARCH, unlearncanvas
    from eval.judges.unlearncanvas_judge import UnlearnCanvasJudge

    spec = unlearncanvas()
    spec.canonical(concept)
    judge = UnlearnCanvasJudge.load(style, obj, spec, arch=arch or CLASSIFIER_ARCH, device=device)
    return judge, {"kind": "unlearncanvas", "concept": concept, "style_classifier": os.path.abspath(style),
                   "object_classifier": os.path.abspath(obj), **judge.provenance}


def _nudenet(concept: str, labels: list[str] | None, threshold: float | None,
             model: str | None) -> tuple[Judge, dict[str, Any]]:
    from eval.judges import nudenet

    if concept.strip().lower() not in NUDITY_NAMES:
        raise ConfigError(f"the NudeNet judge knows nudity only ({', '.join(NUDITY_NAMES)}), not {concept!r}; "
                          "choose another --judge-kind")
    judge = nudenet.NudeNetJudge(labels=labels or nudenet.DEFAULT_LABELS,
                                 threshold=nudenet.DEFAULT_THRESHOLD if threshold is None else threshold,
                                 model_path=model)
    return judge, {"kind": "nudenet", "concept": concept, "model_path": judge.model_path, **judge.record()}
