"""Several erasures in one pipeline: artifacts that change different tensors, applied to their shared base.

AdvUnlearn's text encoder is meant to be plugged in front of any UNet that shares its tokenizer
(the official release is such a text encoder). In front of another erasure's UNet (ESD's), an
adversarial prompt has to get past both edits. Each artifact is checked against the base on the
tensors it changes (:meth:`ErasureResult.check_base`), so artifacts made from different bases are
refused; two that change the same tensor are refused too, rather than one silently overwriting
the other. One-step generators (SFD) sample differently and are refused.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .artifact import ErasureResult
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
    """What a stacked pipeline holds: the base and each artifact's method, concepts and components."""
    return {
        "schema": 1,
        "base": results[0].record["base"]["model"],
        "artifacts": [{"path": folder, "method": r.method, "concepts": r.concepts, "components": sorted(r.components)}
                      for folder, r in zip(folders, results)],
    }
