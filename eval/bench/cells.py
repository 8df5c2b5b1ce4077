"""The bench's cells: one (method, target) pair each, in its own folder with its own record.

A cell is done when ``DIR/cells/<method>/<target>/cell.json`` (``<variant>`` for a named variant
of a method, :mod:`eval.bench.variants`) exists with status ``done`` and
the same *key* as the cell now planned. The key is a hash of everything that decides the
cell's result (method name and version, its full config, the base model's name, the eval
settings, and the content of files the method reads beyond its config: ``external_inputs``), so a
finished cell is never redone unless asked, and a cell whose method version, config or inputs
changed is redone, alone. The base model enters the key by name; its weights are checked apart:
each record keeps the SHA-256 of the base model's weight files (``model_sha256``), and a cell
recorded on other weights (a retrained shipped model, a replaced checkpoint) is redone. Records
written before the bench kept that hash are trusted as they are (the bench says how many).

A cell on the attack subset also carries its attack settings (the ``erase attack`` flags). They
have a key of their own (``attack_key``, over the cell's key and those settings) that is not part
of the cell's: changing the attack's budget re-runs the attack of the attacked cells only, and
turning ``--attack`` on leaves every finished erasure and evaluation alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

#: 2: the eval draws a noise of its own for every image (``eval.canvas.answers.image_seed``);
#: cells measured with one noise per seed (schema 1) are redone, never mixed in.
BENCH_SCHEMA = 2


@dataclass(frozen=True)
class Cell:
    method: str
    target: str
    kind: str  # "style" or "object"
    config: dict[str, Any]  # the method's full config for this cell (concepts included)
    method_version: str
    model: str
    eval_settings: dict[str, Any] = field(default_factory=dict)
    attack: dict[str, Any] | None = None  # `erase attack` settings ({"attack": name, flag: value}); None: not attacked
    variant: str | None = None  # a named variant of `method` (eval.bench.variants); None: the method itself
    inputs: dict[str, str] = field(default_factory=dict)  # files the method reads beyond config and model (hashes)
    parts: tuple["Cell", ...] = ()  # a stack row's cell (eval.bench.stacks): its parts' own cells; its config names them

    @property
    def label(self) -> str:
        """What the folder and the leaderboard call the cell's method: the variant's name, or the method's."""
        return self.variant or self.method

    @property
    def key(self) -> str:
        # The last slot once held an `attack: bool` that was always False; it stays, so that the
        # records of benches run before the attack column keep their keys and are not redone.
        # A variant's name and a method's external inputs are appended; a plain method's payload is
        # exactly what it always was.
        parts = [BENCH_SCHEMA, self.method, self.method_version, self.target, self.config, self.model, self.eval_settings, False]
        if self.variant is not None:
            parts.append({"variant": self.variant})
        if self.inputs:  # appended only when present, so that other methods' keys stay what they were
            parts.append({"inputs": self.inputs})
        payload = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def attack_key(self) -> str | None:
        """What decides the attack's result: the attacked artifact (the cell's key) and the attack settings."""
        if self.attack is None:
            return None
        return hashlib.sha256(json.dumps([self.key, self.attack], sort_keys=True, default=str).encode()).hexdigest()

    def folder(self, root: str) -> str:
        return os.path.join(root, "cells", self.label, self.target.replace(" ", "_"))


def read_record(cell: Cell, root: str) -> dict[str, Any] | None:
    path = os.path.join(cell.folder(root), "cell.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def drift_of(evaluation: dict[str, Any], target: str) -> dict[str, Any] | None:
    """The cell's drift (``eval.metrics.accuracy.drift``) from its ``eval.json`` record."""
    from eval.metrics.accuracy import drift

    return drift((evaluation.get("per_class") or {}).get("target_predicted_as"), target)


def sample_ms_per_image(evaluation: dict[str, Any]) -> float | None:
    """Milliseconds per answer-set image of the erased model, with its own sampler (one UNet call for
    a one-step generator, 20 guided DDIM steps otherwise), text encoder and VAE included."""
    seconds = (evaluation.get("cost") or {}).get("model_seconds")
    images = (evaluation.get("settings") or {}).get("images")
    return round(1000 * seconds / images, 2) if seconds and images else None


def with_eval_columns(record: dict[str, Any], folder: str) -> dict[str, Any]:
    """``record`` with its ``drift`` and ``cost.sample_ms_per_image``, read from ``folder/eval/eval.json``
    when the record lacks them.

    Cells finished before the record kept these cost thousands of CPU-seconds each and are not
    redone for a display column (their key is unchanged); their eval.json already holds the
    figures. A cell folder without a readable eval.json keeps the record as it is (shown as "–").
    """
    if "drift" in record and "sample_ms_per_image" in record.get("cost", {}):
        return record
    try:
        with open(os.path.join(folder, "eval", "eval.json"), encoding="utf-8") as f:
            evaluation = json.load(f)
    except (OSError, ValueError):
        return record
    return {**record, "drift": drift_of(evaluation, record["target"]),
            "cost": {**record.get("cost", {}), "sample_ms_per_image": sample_ms_per_image(evaluation)}}


def same_model(record: dict[str, Any], model_sha256: str | None) -> bool:
    """False only when both the record and the bench know the base model's weights and they differ."""
    recorded = record.get("model_sha256")
    return recorded is None or model_sha256 is None or recorded == model_sha256


def is_done(cell: Cell, root: str, model_sha256: str | None = None) -> bool:
    """Finished with this very key on these very base weights, and, for an attacked cell, attacked
    with these very settings."""
    record = read_record(cell, root)
    if record is None or record.get("status") != "done" or record.get("key") != cell.key:
        return False
    if not same_model(record, model_sha256):
        return False
    return cell.attack is None or (record.get("robustness") or {}).get("key") == cell.attack_key
