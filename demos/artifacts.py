"""Saved erasures the demo offers: ``--artifact DIR`` folders and every run under ``--runs DIR``.

An artifact is only its changed tensors (well under a few MB for the mini-canvas model), so the
demo loads each one as an :class:`~pipelines.ErasureResult` and applies it to the one shared base
pipeline when asked, instead of loading a second pipeline per artifact.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from pipelines import ErasureResult
from pipelines.artifact import RECORD_FILE
from pipelines.errors import ConfigError, EraseError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedErasure:
    """One artifact folder, loaded; ``explicit`` is False for folders found under ``--runs``."""

    folder: str
    result: ErasureResult
    explicit: bool

    @property
    def label(self) -> str:
        """What the dropdown shows: the folder name, the method and the erased concepts."""
        return f"{os.path.basename(os.path.normpath(self.folder))} · {self.result.method}: {', '.join(self.result.concepts)}"


def run_folders(runs: str) -> list[str]:
    """The artifact folders directly under ``runs`` (each holds an ``erasure.json``), sorted."""
    if not os.path.isdir(runs):
        raise ConfigError(f"--runs {runs} is not a folder; pass the folder that holds your `erase run --out` folders")
    names = sorted(os.listdir(runs))
    return [os.path.join(runs, n) for n in names if os.path.isfile(os.path.join(runs, n, RECORD_FILE))]


def load_saved(artifacts: list[str], runs: list[str]) -> list[SavedErasure]:
    """Load the named artifacts (any problem is an error) and the runs found under ``runs``.

    A broken folder under ``--runs`` is skipped with a warning rather than stopping the demo:
    a runs folder collects many experiments and one half-written run should not hide the rest.
    """
    saved = [SavedErasure(folder, ErasureResult.load(folder), explicit=True) for folder in artifacts]
    for folder in (f for r in runs for f in run_folders(r)):
        try:
            saved.append(SavedErasure(folder, ErasureResult.load(folder), explicit=False))
        except EraseError as error:
            logger.warning("skipping %s: %s", folder, error)
    return saved
