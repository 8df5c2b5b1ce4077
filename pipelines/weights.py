"""Reading and writing weight files safely: safetensors only for what we write, no pickle.

``save_safetensors`` writes atomically and with normal permissions (``safetensors`` on its own
creates private 0600 files). ``read_state_dict`` reads a user's weights file (safetensors, or a
legacy torch file with ``weights_only=True`` so that no code runs); a missing file is an error
that names the flag which takes it.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch
from safetensors.torch import save

from .atomic import atomic_file
from .errors import EraseError


def save_safetensors(tensors: Mapping[str, torch.Tensor], path: str, metadata: dict[str, str] | None = None, overwrite: bool = True) -> str:
    """Write ``tensors`` to ``path`` atomically (contiguous CPU copies, the dtypes they have)."""
    data = save({n: t.detach().cpu().contiguous() for n, t in tensors.items()}, metadata=metadata)
    with atomic_file(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def read_state_dict(path: str | None, flag: str) -> dict[str, torch.Tensor]:
    """Tensors of a local weights file; a missing file is an error that names ``flag``.

    safetensors files are read as they are; ``.pth``/``.pt``/``.ckpt`` files with
    ``torch.load(weights_only=True)`` (no code runs), unwrapping ``{"model_state_dict": ...}`` or
    ``{"state_dict": ...}`` layouts.
    """
    if not path or not os.path.isfile(path):
        raise EraseError(f"weights file {path!r} not found; pass an existing local file with {flag} "
                         "(nothing is downloaded)")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            tensors: Any = load_file(path)
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors and torch raise many types for damaged or unsafe files
        raise EraseError(f"could not read {path} given with {flag} ({str(error).splitlines()[0][:200]}); pass a "
                         "safetensors file or a torch file of plain tensors") from None
    for key in ("model_state_dict", "state_dict"):
        if isinstance(tensors, dict) and isinstance(tensors.get(key), dict):
            tensors = tensors[key]
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise EraseError(f"{path} given with {flag} does not hold a state dict of tensors")
    return tensors
