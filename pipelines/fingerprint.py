"""Content fingerprints of tensors and models.

An erasure artifact records the SHA-256 of the base tensors it changed, so it can refuse to be
applied to a different base. The hash is taken over a canonical form (sorted names, shapes and
float32 little-endian bytes) so that the same weights give the same fingerprint whether they
were loaded as float32 or as exactly-representable float16.
"""

from __future__ import annotations

import hashlib
import os
from typing import Mapping

import torch


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over ``(name, shape, float32 bytes)`` of every tensor, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        if t.is_floating_point():
            t = t.float()
        h.update(t.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def module_sha256(modules: Mapping[str, torch.nn.Module]) -> str:
    """Fingerprint of every parameter and buffer of several named modules (e.g. a pipeline)."""
    tensors = {}
    for prefix, module in modules.items():
        for name, t in module.state_dict().items():
            tensors[f"{prefix}.{name}"] = t
    return tensors_sha256(tensors)


def file_sha256(path: str) -> str:
    """SHA-256 of a file, read in chunks (weights files are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(path: str) -> str:
    """SHA-256 of a model's weights as stored: a checkpoint file's own hash, or, for a folder, the
    hash of its ``.safetensors`` files' hashes in sorted path order (nothing is loaded, so a
    multi-gigabyte model costs one read)."""
    if os.path.isfile(path):
        return file_sha256(path)
    weights = sorted(os.path.join(root, f) for root, _, files in os.walk(path) for f in files if f.endswith(".safetensors"))
    return hashlib.sha256("".join(file_sha256(w) for w in weights).encode()).hexdigest()
