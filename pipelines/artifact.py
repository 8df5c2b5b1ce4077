"""The erasure artifact: only the changed tensors, a JSON record and a model card.

An erasure method returns an :class:`ErasureResult`. It holds the new values of the tensors it
changed (keyed ``unet.<name>`` / ``text_encoder.<name>``, diffusers names) and a record of how
it was made, including the SHA-256 of the *base* values of those tensors, so that applying it
to a different base model is refused. Saved, it is a folder (``shared/docs/contracts.md``)::

    erasure.safetensors   changed tensors only
    erasure.json          the record (method, config, concepts, seed, base, versions, cost)
    README.md             the model card
    pipeline/             a complete stock StableDiffusionPipeline folder (plain diffusers loads it)
    text_encoder/         a plain CLIPTextModel folder, when only the text encoder changed

A one-step generator (SFD) also has a ``sampling`` block in its record
(``pipelines.one_step.sampling_block``); applying or loading it marks the pipeline so that every
sampler of this package draws it in one step, and ``apply_`` returns a pipeline whose plain
call does the same (``pipelines.one_step``).
"""

from __future__ import annotations

import json
import os
import platform
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from safetensors.torch import load_file

from .atomic import atomic_folder
from .backbone import backbone_for
from .errors import BaseMismatchError, EraseError
from .fingerprint import tensors_sha256
from .one_step import (
    mark_one_step,
    one_step_pipeline,
    one_step_scheduler,
    pipeline_t_init,
    record_t_init,
)
from .params import resolve_tensors
from .weights import save_safetensors

SCHEMA = 1
TENSORS_FILE = "erasure.safetensors"
RECORD_FILE = "erasure.json"
CARD_FILE = "README.md"
PIPELINE_DIR = "pipeline"
TEXT_ENCODER_DIR = "text_encoder"


def versions() -> dict[str, str]:
    """Versions of everything that can change a result, recorded with every artifact."""
    import diffusers
    import transformers

    try:
        from importlib.metadata import version

        ours = version("erase")
    except Exception:
        ours = "unknown"
    return {
        "erase": ours,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def recorded_base(base: dict[str, Any]) -> str | None:
    """Where to load a recorded base (an ``erasure.json`` ``base`` block) from: its path while it
    exists, else the name it was given (a hub id, ``mini-canvas``); a moved folder falls back to
    the name. The one rule every command uses to find the unerased model."""
    path = base.get("path")
    return path if path and os.path.exists(path) else base.get("model")


def new_record(
    *,
    method: str,
    config: dict[str, Any],
    concepts: list[str],
    seed: int,
    base_model: str,
    base_fingerprint: str,
    cost: dict[str, float],
) -> dict[str, Any]:
    """The ``erasure.json`` record, keys as in ``shared/docs/contracts.md``."""
    base = {"model": base_model, "fingerprint": base_fingerprint}
    if os.path.exists(base_model):
        base["path"] = os.path.abspath(base_model)
    return {
        "schema": SCHEMA,
        "method": method,
        "config": config,
        "concepts": list(concepts),
        "seed": seed,
        "base": base,
        "versions": versions(),
        "cost": cost,
    }


def stock_pipeline(pipe: Any, scheduler: Any = None) -> Any:
    """The same components in a plain ``StableDiffusionPipeline`` (never a subclass); ``scheduler``
    replaces the pipeline's (a one-step generator's Euler scheduler).

    diffusers writes the pipeline class into ``model_index.json``; a subclass of ours would make
    the folder unloadable without this package.
    """
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        scheduler=scheduler if scheduler is not None else pipe.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


#: Config keys that say where a component was loaded from on the machine that saved it (a local
#: path, whether it was found locally). Elsewhere they mean nothing, they show the writer's folders,
#: and they make two saves of the same weights differ: saved folders leave them out.
LOAD_TRACE_KEYS = ("_name_or_path", "name_or_path", "is_local", "local_files_only")


def save_pipeline_folder(pipe: Any, folder: str, scheduler: Any = None) -> None:
    """Write ``pipe`` as a stock diffusers folder (safetensors) into an existing empty folder."""
    from .tokenizer import add_legacy_tokenizer_files

    stock_pipeline(pipe, scheduler).save_pretrained(folder, safe_serialization=True)
    add_legacy_tokenizer_files(os.path.join(folder, "tokenizer"), pipe.tokenizer)
    drop_load_trace(folder)


def drop_load_trace(folder: str) -> None:
    """Remove :data:`LOAD_TRACE_KEYS` from the components' ``config.json`` and ``tokenizer_config.json``."""
    for component in sorted(os.listdir(folder)):
        for name in ("config.json", "tokenizer_config.json"):
            path = os.path.join(folder, component, name)
            if not os.path.isfile(path):
                continue
            with open(path, encoding="utf-8") as f:
                config = json.load(f)
            kept = {key: value for key, value in config.items() if key not in LOAD_TRACE_KEYS}
            if kept != config:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(json.dumps(kept, indent=2, ensure_ascii=False) + "\n")


@dataclass
class ErasureResult:
    """Changed tensors + record; apply, save, load, export (see the module docstring)."""

    tensors: dict[str, torch.Tensor]
    record: dict[str, Any]
    base_pipe: Any = field(default=None, repr=False, compare=False)

    # --- facts ---------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return self.record["method"]

    @property
    def concepts(self) -> list[str]:
        return self.record["concepts"]

    @property
    def components(self) -> set[str]:
        return {name.partition(".")[0] for name in self.tensors}

    @property
    def size_mb(self) -> float:
        return sum(t.numel() * t.element_size() for t in self.tensors.values()) / 2**20

    @property
    def t_init(self) -> int | None:
        """The timestep a one-step generator samples at; None for an ordinary (multi-step) model."""
        return record_t_init(self.record)

    @property
    def base_source(self) -> str:
        """Where to load the recorded base from (:func:`recorded_base`)."""
        return recorded_base(self.record["base"]) or self.record["base"]["model"]

    # --- applying ------------------------------------------------------------------------
    def _live(self, pipe: Any) -> dict[str, torch.Tensor]:
        return resolve_tensors(backbone_for(pipe).components, list(self.tensors))

    def check_base(self, pipe: Any) -> None:
        """Refuse a pipeline whose tensors are not the ones this artifact was made from."""
        live = self._live(pipe)
        expected = self.record["base"]["fingerprint"]
        if tensors_sha256(live) == expected:
            return
        if tensors_sha256(live) == tensors_sha256(self.tensors):
            raise BaseMismatchError("this erasure is already applied to the pipeline; apply it to an unmodified base")
        raise BaseMismatchError(
            f"this erasure was made from base '{self.record['base']['model']}' (fingerprint "
            f"{expected[:12]}…) and the given pipeline differs in the tensors it changes; load that base, "
            "or pass force=True (CLI: --force) to apply it anyway"
        )

    @torch.no_grad()
    def apply_(self, pipe: Any, force: bool = False) -> Any:
        """Write the erased tensors into ``pipe`` in place (its device and dtype are kept).

        Returns ``pipe``; for a one-step generator, ``pipe`` is also marked as one (this
        package's samplers then draw it in one step) and the return value is a pipeline sharing
        its modules whose plain call samples in one step (``pipe = result.apply_(pipe)``):
        ``pipe``'s own call and scheduler are left as they were.
        """
        if not force:
            self.check_base(pipe)
        for name, live in self._live(pipe).items():
            live.copy_(self.tensors[name].to(device=live.device, dtype=live.dtype))
        t_init = self.t_init
        if t_init is None:
            return pipe
        mark_one_step(pipe, t_init)
        return one_step_pipeline(pipe, t_init)

    @contextmanager
    def applied(self, pipe: Any, force: bool = False) -> Iterator[Any]:
        """Apply to ``pipe`` for the duration of the block, then restore the base tensors."""
        live = self._live(pipe)
        originals = {n: t.detach().clone() for n, t in live.items()}
        mark = pipeline_t_init(pipe)
        self.apply_(pipe, force=force)
        try:
            yield pipe
        finally:
            mark_one_step(pipe, mark)
            with torch.no_grad():
                for n, t in live.items():
                    t.copy_(originals[n])

    # --- saving and loading --------------------------------------------------------------
    def save(self, folder: str, *, overwrite: bool = False, pipeline: bool = True, base: Any = None, half: bool = False) -> str:
        """Write the artifact folder atomically; ``pipeline=True`` also exports a full pipeline.

        The pipeline export needs the base pipeline: the one the result was fitted on, or
        ``base``. An existing ``folder`` is only replaced with ``overwrite=True``. ``half`` stores
        the float tensors as float16 (they are applied in the pipeline's dtype): half the size, for
        a model retrained as a whole like the shipped one-step generator; a fine-tune's small
        changes can round away in float16, so erasures keep the default.
        """
        base = base if base is not None else self.base_pipe
        if pipeline and base is None:
            raise EraseError("exporting the full pipeline needs the base pipeline: pass base=pipe, or pipeline=False")
        tensors = {n: t.half() if half and t.is_floating_point() else t for n, t in self.tensors.items()}
        with atomic_folder(folder, overwrite=overwrite) as tmp:
            save_safetensors(tensors, os.path.join(tmp, TENSORS_FILE), metadata={"format": "erase-delta", "schema": str(SCHEMA)})
            with open(os.path.join(tmp, RECORD_FILE), "w", encoding="utf-8") as f:
                json.dump(self.record, f, indent=2, sort_keys=False)
                f.write("\n")
            from .card import model_card

            with open(os.path.join(tmp, CARD_FILE), "w", encoding="utf-8") as f:
                f.write(model_card(self))
            if pipeline:
                with self._erased_view(base):
                    os.makedirs(os.path.join(tmp, PIPELINE_DIR))
                    save_pipeline_folder(base, os.path.join(tmp, PIPELINE_DIR), self._export_scheduler(base))
                    if self.components == {"text_encoder"}:
                        base.text_encoder.save_pretrained(os.path.join(tmp, TEXT_ENCODER_DIR), safe_serialization=True)
        return folder

    def _export_scheduler(self, base: Any) -> Any:
        """A one-step generator (SFD) is exported with the stock scheduler that samples it in one step."""
        if self.t_init is None:
            return None
        return one_step_scheduler(base.scheduler.config)

    @contextmanager
    def _erased_view(self, pipe: Any) -> Iterator[Any]:
        """``pipe`` holding the erased tensors: as it is if already applied, else temporarily."""
        if tensors_sha256(self._live(pipe)) == tensors_sha256(self.tensors):
            yield pipe
        else:
            with self.applied(pipe):
                yield pipe

    @classmethod
    def load(cls, folder: str) -> "ErasureResult":
        """Read an artifact folder written by :meth:`save`."""
        tensors_path = os.path.join(folder, TENSORS_FILE)
        record_path = os.path.join(folder, RECORD_FILE)
        for path in (tensors_path, record_path):
            if not os.path.exists(path):
                raise EraseError(f"'{folder}' is not an erasure artifact: {os.path.basename(path)} is missing")
        try:
            tensors = load_file(tensors_path)
        except Exception as e:
            raise EraseError(f"'{tensors_path}' is not a readable safetensors file ({e}); re-run the erasure") from None
        try:
            with open(record_path, encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise EraseError(f"'{record_path}' is not readable JSON ({e}); re-run the erasure") from None
        if record.get("schema") != SCHEMA:
            raise EraseError(f"'{record_path}' has schema {record.get('schema')!r}; this erase reads schema {SCHEMA}")
        record_t_init(record)  # a damaged one-step block fails here, not half-way through an evaluation
        return cls(tensors=tensors, record=record)


def exported_t_init(folder: str) -> int | None:
    """``t_init`` when ``folder`` is the ``pipeline/`` of a one-step generator's artifact, else None.

    So ``load_pipeline("out/sfd/pipeline")`` (or ``erase eval --model`` on it) samples the
    generator in one step too; the folder itself stays stock, the record beside it says what it is.
    """
    folder = os.path.abspath(folder)
    record_path = os.path.join(os.path.dirname(folder), RECORD_FILE)
    if os.path.basename(folder) != PIPELINE_DIR or not os.path.isfile(record_path):
        return None
    try:
        with open(record_path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise EraseError(f"'{record_path}' beside the pipeline folder is not readable JSON ({e}); re-run the erasure") from None
    return record_t_init(record)


def load_erased(
    folder: str,
    base: Any = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = torch.float32,
    force: bool = False,
) -> Any:
    """An erased pipeline from an artifact folder.

    Without ``base``: the exported ``pipeline/`` if present, else the recorded base model with
    the delta applied. With ``base`` (a pipeline): the delta applied to it in place, refused if
    its fingerprint differs unless ``force``. A one-step generator comes back as the pipeline
    ``apply_`` returns for one: its plain call samples in one step.
    """
    from .loading import load_pipeline

    result = ErasureResult.load(folder)
    if base is None:
        exported = os.path.join(folder, PIPELINE_DIR)
        if os.path.isdir(exported):
            pipe = load_pipeline(exported, device=device, dtype=dtype)
            return pipe if result.t_init is None else one_step_pipeline(pipe, result.t_init)
        base = load_pipeline(result.base_source, device=device, dtype=dtype)
    return result.apply_(base, force=force)
