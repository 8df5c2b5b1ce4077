"""Load a base text-to-image pipeline from wherever the user has it.

Sources, in the order they are recognised:

* ``"mini-canvas"``: the small SD-architecture model shipped inside the package (the default).
* an erasure artifact folder (has ``erasure.json``): its exported ``pipeline/`` if present,
  otherwise the delta applied to the recorded base model. A one-step generator (SFD; its
  record's ``sampling`` block, also read when its ``pipeline/`` is given directly) comes back
  as a pipeline whose plain call samples in one step (``pipelines.one_step``).
* a local diffusers folder (has ``model_index.json``).
* a single-file checkpoint (``.safetensors``, or legacy ``.ckpt``), which needs a local
  diffusers folder of the same architecture as ``config`` to work offline.
* a Hugging Face hub id (``org/name``): used from the local cache, or downloaded when online;
  offline and uncached, it fails with an error that says how to pass a local path.

Everything is loaded with ``local_files_only`` unless the source is a hub id that is not cached,
so that nothing is ever downloaded silently.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import torch

from .errors import ConfigError, ModelLoadError
from .shipped import MINI_CANVAS, mini_canvas_file

logger = logging.getLogger(__name__)

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")


def _dtype_kwargs(dtype: torch.dtype | None) -> dict[str, Any]:
    """diffusers renamed ``torch_dtype`` to ``dtype``; pass whichever this version expects."""
    if dtype is None:
        return {}
    from diffusers.pipelines import pipeline_utils

    key = "dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype"
    return {key: dtype}


def _quiet_pipeline(**kwargs: Any) -> dict[str, Any]:
    """No safety checker: an erasure toolkit must see what the model really generates."""
    return {"safety_checker": None, "requires_safety_checker": False, **kwargs}


def _from_folder(folder: str, dtype: torch.dtype | None) -> Any:
    from diffusers import DiffusionPipeline

    try:
        with open(os.path.join(folder, "model_index.json"), encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"'{folder}/model_index.json' is not readable JSON ({e}); re-export the pipeline folder") from None
    extra = _quiet_pipeline() if "safety_checker" in index else {}
    try:
        return DiffusionPipeline.from_pretrained(folder, local_files_only=True, **extra, **_dtype_kwargs(dtype))
    except Exception as e:  # diffusers raises OSError, ValueError, SafetensorError, ... for bad folders
        raise ModelLoadError(
            f"could not load the diffusers folder '{folder}': {_short(e)}; check that every component "
            "folder is complete and its weights are not truncated (re-download or re-export it)"
        ) from None


def _from_single_file(path: str, config: str | None, dtype: torch.dtype | None) -> Any:
    from diffusers import StableDiffusionPipeline

    if config is None:
        raise ModelLoadError(
            f"single-file checkpoint '{path}' needs a local config folder to load offline: pass "
            "--model-config DIR (Python: config=DIR), where DIR is a diffusers folder of the same "
            "architecture (e.g. an SD 1.5 folder for an SD 1.5 fine-tune)"
        )
    if not os.path.isdir(config):
        raise ModelLoadError(f"config folder '{config}' does not exist; pass a local diffusers folder as --model-config")
    try:
        return StableDiffusionPipeline.from_single_file(
            path, config=config, local_files_only=True, **_quiet_pipeline(), **_dtype_kwargs(dtype)
        )
    except Exception as e:
        raise ModelLoadError(
            f"could not load the checkpoint '{path}' with config '{config}': {_short(e)}; check that the "
            "file is complete and that the config folder matches its architecture"
        ) from None


def _from_hub(repo_id: str, dtype: torch.dtype | None) -> Any:
    from diffusers import DiffusionPipeline

    kwargs = {**_dtype_kwargs(dtype)}
    try:
        return DiffusionPipeline.from_pretrained(repo_id, local_files_only=True, **kwargs)
    except Exception as cached_error:
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
            reason = f"HF_HUB_OFFLINE is set and it is not in the local cache ({_short(cached_error)})"
        else:
            try:
                return DiffusionPipeline.from_pretrained(repo_id, **kwargs)
            except Exception as e:
                reason = f"it is not in the local cache and could not be downloaded ({_short(e)})"
    raise ModelLoadError(
        f"cannot load '{repo_id}' from the Hugging Face hub: {reason}. Download it on a machine with "
        f"internet (`huggingface-cli download {repo_id} --local-dir DIR`), copy DIR here and pass "
        "--model DIR (a local diffusers folder), or pass a single .safetensors file with --model-config"
    )


def local_weights(source: str) -> str | None:
    """The file or folder that holds ``source``'s weights on this machine (the shipped pipeline
    folder for ``mini-canvas``), for fingerprinting a model without loading it; None for a hub id."""
    source = os.path.expanduser(source)
    if source == MINI_CANVAS:
        return mini_canvas_file("pipeline")
    return source if os.path.exists(source) else None


def resolve_device(name: str | None) -> str:
    """The torch device a ``--device`` flag names, checked before anything is loaded.

    ``None`` picks CUDA when available, else the CPU. A name torch does not know, or a CUDA
    device on a machine without one, is a :class:`ConfigError` naming the flag, so that every
    command (run, eval, attack, demo, mini-canvas train) fails the same way before minutes of
    loading rather than with a torch traceback.
    """
    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device '{name}' is not a torch device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} asked for CUDA but no CUDA device is available; use --device cpu")
    return name


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def load_pipeline(
    source: str = MINI_CANVAS,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = torch.float32,
    config: str | None = None,
    torch_dtype: torch.dtype | None = None,
    force: bool = False,
) -> Any:
    """Load a text-to-image pipeline (see the module docstring for the accepted sources).

    ``dtype`` (or its older name ``torch_dtype``) defaults to float32: training needs fp32
    master weights, and fp16 on a CPU is an order of magnitude slower. ``config`` is the local
    config folder for single-file checkpoints. ``force`` applies an artifact's delta even if the
    recorded base fingerprint does not match.
    """
    if torch_dtype is not None:
        dtype = torch_dtype
    if not isinstance(source, str) or not source.strip():
        raise ModelLoadError("no model given; pass --model mini-canvas, a local folder or a .safetensors file")
    source = os.path.expanduser(source)
    if source == MINI_CANVAS:
        pipe = _from_folder(mini_canvas_file("pipeline"), dtype)
    elif os.path.isdir(source):
        if os.path.exists(os.path.join(source, "erasure.json")):
            from .artifact import load_erased

            pipe = load_erased(source, device=device, dtype=dtype, force=force)
        elif os.path.exists(os.path.join(source, "model_index.json")):
            pipe = _from_folder(source, dtype)
            from .artifact import exported_t_init

            t_init = exported_t_init(source)  # an artifact's pipeline/ of a one-step generator
            if t_init is not None:
                from .one_step import one_step_pipeline

                pipe = one_step_pipeline(pipe, t_init)
        else:
            raise ModelLoadError(
                f"'{source}' is neither a diffusers pipeline folder (no model_index.json) nor an erasure "
                "artifact (no erasure.json); pass the folder that holds model_index.json"
            )
    elif os.path.isfile(source):
        if not source.endswith(SINGLE_FILE_SUFFIXES):
            raise ModelLoadError(
                f"'{source}' is a file but not a .safetensors or .ckpt checkpoint; pass a diffusers folder or a "
                "single-file checkpoint"
            )
        pipe = _from_single_file(source, config, dtype)
    elif source.startswith((".", "/", "~")) or source.endswith(SINGLE_FILE_SUFFIXES) or source.count("/") != 1:
        raise ModelLoadError(
            f"model path '{source}' does not exist; pass an existing diffusers folder, a .safetensors file, "
            "or 'mini-canvas' for the built-in model"
        )
    else:
        pipe = _from_hub(source, dtype)
    if device is not None:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe
