"""Several erasures in one artifact: artifacts that change different tensors, merged over their shared base.

AdvUnlearn's text encoder is meant to be plugged in front of any UNet that shares its tokenizer
(the official release is such a text encoder). In front of another erasure's UNet (ESD's), an
adversarial prompt has to get past both edits. Each artifact is checked against the base on the
tensors it changes (:meth:`ErasureResult.check_base`), so artifacts made from different bases are
refused; two that change the same tensor are refused too, rather than one silently overwriting
the other. One-step generators (SFD) sample differently and are refused.

The merge is an ordinary :class:`ErasureResult` (method ``esd+advunlearn``, the union of the
tensors, the base fingerprint over all of them, and a ``stack`` block naming its parts), so
everything that takes an artifact takes a stack: ``erase eval``, ``erase attack``, the demo,
``load_pipeline``, and ``erase stack`` itself.
"""

from __future__ import annotations

from typing import Any

import torch

from .artifact import ErasureResult, new_record
from .backbone import backbone_for
from .errors import ConfigError
from .fingerprint import tensors_sha256
from .params import resolve_tensors


def stack_parts(folders: list[str]) -> list[ErasureResult]:
    """The artifacts in ``folders``, checked to be stackable (see the module docstring)."""
    if len(folders) < 2:
        raise ConfigError("a stack needs two or more artifacts, e.g. ESD's and AdvUnlearn's for the same concept")
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


def merged(folders: list[str], parts: list[ErasureResult], base: Any) -> ErasureResult:
    """One artifact holding every part's tensors; ``base`` is the parts' base pipeline (each part
    is checked against it) and becomes the result's, for its pipeline export."""
    for part in parts:
        part.check_base(base)  # refuses an artifact made from another base
    tensors = {n: t for part in parts for n, t in part.tensors.items()}
    fingerprint = tensors_sha256(resolve_tensors(backbone_for(base).components, list(tensors)))
    concepts = list(dict.fromkeys(c for part in parts for c in part.concepts))
    first = parts[0].record
    record = new_record(
        method="+".join(part.method for part in parts),
        config={"stack": [{"path": folder, "method": part.method, "config": part.record["config"]}
                          for folder, part in zip(folders, parts)]},
        concepts=concepts,
        seed=first["seed"],
        base_model=first["base"]["model"],
        base_fingerprint=fingerprint,
        cost=parts_cost(parts),
    )
    record["base"] = {**first["base"], "fingerprint": fingerprint}  # the first part's name and path, as recorded
    record["stack"] = [{"path": folder, "method": part.method, "concepts": part.concepts, "seed": part.record["seed"],
                        "components": sorted(part.components)} for folder, part in zip(folders, parts)]
    result = ErasureResult(tensors=tensors, record=record, base_pipe=base)
    record["cost"]["artifact_mb"] = round(result.size_mb, 3)
    return result


def parts_cost(parts: list[ErasureResult]) -> dict[str, float]:
    """What making the parts cost, one after the other: seconds summed, peak memory the largest part's
    (keys a part lacks are left out rather than counted as zero)."""
    costs = [p.record.get("cost", {}) for p in parts]
    cost = {}
    for key in ("train_seconds", "wall_seconds", "data_seconds"):
        if all(key in c for c in costs):
            cost[key] = round(sum(c[key] for c in costs), 3)
    for key in ("peak_rss_mb", "peak_gpu_mb"):
        if all(key in c for c in costs):
            cost[key] = max(c[key] for c in costs)
    return cost


def stack(folders: list[str], *, device: str | torch.device | None = None,
          dtype: torch.dtype | None = torch.float32) -> ErasureResult:
    """The artifacts in ``folders`` as one artifact, over their recorded base (loaded here)."""
    from .loading import load_pipeline

    parts = stack_parts(folders)
    return merged(folders, parts, load_pipeline(parts[0].base_source, device=device, dtype=dtype))


def load_stacked(folders: list[str], **kwargs: Any) -> Any:
    """The pipeline holding every artifact in ``folders`` (``device``, ``dtype`` as :func:`stack`)."""
    result = stack(folders, **kwargs)
    return result.apply_(result.base_pipe)
