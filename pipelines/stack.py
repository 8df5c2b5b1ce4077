"""Several erasures in one pipeline: artifacts that change different tensors, applied to their shared base.

AdvUnlearn's text encoder is meant to be plugged in front of any UNet that shares its tokenizer
(the official release is such a text encoder). In front of another erasure's UNet (ESD's), an
adversarial prompt has to get past both edits. Each artifact is checked against the base on the
tensors it changes (:meth:`ErasureResult.check_base`), so artifacts made from different bases are
refused; two that change the same tensor are refused too, rather than one silently overwriting
the other. One-step generators (SFD) sample differently and are refused.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from .artifact import ErasureResult, recorded_base
from .errors import ConfigError

#: The record written beside a stacked pipeline: which artifacts it holds, in order.
STACK_FILE = "stack.json"


def stack_results(folders: list[str]) -> list[ErasureResult]:
    """The artifacts in ``folders``, checked to be stackable (see the module docstring)."""
    if len(folders) < 2:
        raise ConfigError("a stack needs two or more artifacts, e.g. ESD's and AdvUnlearn's for the same concept")
    for folder in folders:
        if os.path.isfile(os.path.join(folder, STACK_FILE)):
            raise ConfigError(f"{folder} is a stacked pipeline, not an artifact; stack the artifacts its {STACK_FILE} lists")
    results = [ErasureResult.load(f) for f in folders]
    owner: dict[str, str] = {}
    for folder, result in zip(folders, results):
        if result.t_init is not None:
            raise ConfigError(f"{folder} is a one-step generator ({result.method}); it samples in one step and cannot "
                              "share a pipeline with other erasures")
        shared = sorted(set(result.tensors) & owner.keys())
        if shared:
            raise ConfigError(f"{folder} and {owner[shared[0]]} both change {shared[0]} ({len(shared)} tensors in "
                              "common); stack artifacts that change different tensors, e.g. AdvUnlearn's text "
                              "encoder on ESD's UNet")
        owner.update(dict.fromkeys(result.tensors, folder))
    return results


def apply_stack(results: list[ErasureResult], *, device: str | torch.device | None = None,
                dtype: torch.dtype | None = torch.float32) -> Any:
    """The first artifact's recorded base with every artifact's tensors applied, in order."""
    from .loading import load_pipeline

    pipe = load_pipeline(results[0].base_source, device=device, dtype=dtype)
    for result in results:
        result.apply_(pipe)  # refuses an artifact made from another base
    return pipe


def load_stacked(folders: list[str], **kwargs: Any) -> Any:
    """The pipeline holding every artifact in ``folders`` (``device``, ``dtype`` as :func:`apply_stack`)."""
    return apply_stack(stack_results(folders), **kwargs)


def stack_record(folders: list[str], results: list[ErasureResult]) -> dict[str, Any]:
    """What a stacked pipeline holds: the base (its ``erasure.json`` block: name, path, fingerprint
    of the tensors the first artifact changes) and each artifact's method, concepts and components."""
    return {
        "schema": 2,
        "base": dict(results[0].record["base"]),
        "artifacts": [{"path": folder, "method": r.method, "concepts": r.concepts, "components": sorted(r.components)}
                      for folder, r in zip(folders, results)],
    }


def read_stack(folder: str) -> dict[str, Any] | None:
    """The ``stack.json`` of a stacked pipeline folder; ``None`` for any other folder or name."""
    path = os.path.join(os.path.expanduser(folder), STACK_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as error:
        record, problem = None, str(error)
    else:
        problem = "it lacks 'base' or 'artifacts'"
    if not isinstance(record, dict) or not {"base", "artifacts"} <= record.keys():
        raise ConfigError(f"'{path}' is not a readable stack record ({problem}); re-run `erase stack` to rewrite it")
    return record


def stacked_base(record: dict[str, Any]) -> str | None:
    """Where to load a stack's base from (schema 1 recorded only its name)."""
    base = record["base"]
    return recorded_base(base if isinstance(base, dict) else {"model": base})


def stacked_components(record: dict[str, Any]) -> tuple[str, ...]:
    """The components (``unet``, ``text_encoder``) some artifact of the stack changed."""
    return tuple(sorted({c for artifact in record["artifacts"] for c in artifact.get("components", [])}))
