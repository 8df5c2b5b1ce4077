"""An attack's progress on disk, so that a killed run resumes instead of starting over.

UnlearnDiffAtk at its default budget spends up to a minute per prompt on mini-canvas on a CPU,
and hours on a few hundred prompts of a real model on a GPU; losing all of it to a crash, an out-of-memory error or a closed
laptop lid is not acceptable. After every searched batch the runner appends that batch's
outcomes (and the seconds they cost) to the journal; a new run with the same settings loads
them and searches only the prompts not yet done. A prompt's search depends only on its own
generator (seeded by the attack seed and its index), so a resumed run finds what an
uninterrupted one would: the same stages, verdicts and tokens, up to float noise from
the batch it shares.

A run's journal is ``ROOT/<key>/``, with one file of JSON lines per process
(``outcomes.<rank>.jsonl``); the key is the SHA-256 of everything that decides an outcome
(attack, its options but the batch size, concept, both models' weights, prompts, sampler,
judge). Progress made under other settings is therefore never mixed in, and never deleted
either: it waits in its own folder for its own command (a warning says so), until ``--fresh``
clears ``ROOT``. A finished run removes its folder, and ``ROOT`` once empty. A line torn by a
kill half-way through its write is ignored (its batch is searched again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from typing import Any

from pipelines.atomic import write_text
from pipelines.errors import EraseError

from .base import Outcome

logger = logging.getLogger(__name__)

#: Options that change how prompts are grouped, not what is found for each: a run that ran out
#: of memory resumes with a smaller ``--batch-size``.
UNKEYED_OPTIONS = ("batch_size",)
#: A run's own description in its journal folder (attack, concept, prompts), for ``erase attack --status``.
ABOUT = "run.json"


def journal_key(parts: dict[str, Any]) -> str:
    """SHA-256 of ``parts`` (JSON, sorted keys): what a journal's outcomes were found under."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def keyed_options(config: dict[str, Any]) -> dict[str, Any]:
    """The attack options that decide its outcomes (every field but :data:`UNKEYED_OPTIONS`)."""
    return {k: v for k, v in config.items() if k not in UNKEYED_OPTIONS}


class AttackJournal:
    """The outcomes an attack has found so far under ``root`` (see the module docstring)."""

    def __init__(self, root: str, key: str, rank: int = 0) -> None:
        self.root, self.folder, self.rank = root, os.path.join(root, key), rank
        self.outcomes: dict[int, Outcome] = {}
        self.seconds = [0.0, 0.0]  # target, search: what the journaled batches cost
        self._load(key)

    def _load(self, key: str) -> None:
        others = [name for name in os.listdir(self.root) if name != key] if os.path.isdir(self.root) else []
        if others and self.rank == 0:
            logger.warning("%s also holds the progress of %d attack(s) with other settings (model, prompts, options or "
                           "judge): left as they are; --fresh deletes them", self.root, len(others))
        if not os.path.isdir(self.folder):
            return
        for name in sorted(os.listdir(self.folder)):
            if name.startswith("outcomes.") and name.endswith(".jsonl"):
                self._read(os.path.join(self.folder, name))
        if self.outcomes and self.rank == 0:
            logger.info("resuming: %d prompts already searched (%s)", len(self.outcomes), self.folder)

    def _read(self, path: str) -> None:
        for outcomes, seconds in _batches(path, warn=True):
            self.outcomes.update((o.index, o) for o in outcomes)
            self.seconds = [a + b for a, b in zip(self.seconds, seconds)]

    def start(self, about: dict[str, Any] | None = None) -> None:
        """Create the folder (the main process, once every process has loaded), with ``about`` (what is
        attacked, how many prompts) in ``run.json`` for :func:`progress` to show."""
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as error:
            raise EraseError(f"cannot keep the attack's progress in '{self.root}' ({error.strerror or error}); move "
                             "what is in the way, or choose another --out") from None
        if about is not None:
            write_text(os.path.join(self.folder, ABOUT), json.dumps(about, sort_keys=True) + "\n")

    def append(self, outcomes: Iterable[Outcome], target_seconds: float, search_seconds: float) -> None:
        """Record one searched batch durably (flushed and synced before the next batch starts)."""
        line = json.dumps({"outcomes": [asdict(o) for o in outcomes], "target_seconds": target_seconds,
                           "search_seconds": search_seconds})
        path = os.path.join(self.folder, f"outcomes.{self.rank}.jsonl")
        with open(path, "a", encoding="utf-8") as f:
            if not _ends_with_newline(path):  # a torn line stays alone, never glued to this one
                f.write("\n")
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def finish(self) -> None:
        """Remove this run's progress, once its result is safely written, and the root if nothing else waits there."""
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(self.root)  # only when empty


def progress(root: str) -> list[dict[str, Any]]:
    """What each run journaled under ``root`` has done so far, newest first: its ``run.json`` (attack,
    concept, prompts) and ``searched``, ``successes``, ``seconds`` and ``updated`` (epoch seconds of
    its last batch). Read-only: a running attack may be appending at the same time."""
    runs = []
    for key in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        folder = os.path.join(root, key)
        if not os.path.isdir(folder):
            continue  # not a run's progress (the journal only makes folders here)
        files = [os.path.join(folder, n) for n in os.listdir(folder) if n.startswith("outcomes.") and n.endswith(".jsonl")]
        found: dict[int, Outcome] = {}
        seconds = 0.0
        for path in files:
            for outcomes, spent in _batches(path, warn=False):
                found.update((o.index, o) for o in outcomes)
                seconds += sum(spent)
        try:
            with open(os.path.join(folder, ABOUT), encoding="utf-8") as f:
                about = json.load(f)
        except (OSError, ValueError):
            about = {}
        updated = max((os.path.getmtime(p) for p in files), default=os.path.getmtime(folder))
        runs.append({**about, "key": key, "searched": len(found), "successes": sum(o.success for o in found.values()),
                     "seconds": round(seconds, 1), "updated": updated})
    return sorted(runs, key=lambda run: -run["updated"])


def _batches(path: str, warn: bool) -> Iterator[tuple[list[Outcome], list[float]]]:
    """``(outcomes, [target s, search s])`` of each whole line of one journal file; a torn line is skipped."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                batch = json.loads(line)
                outcomes = [Outcome(**o) for o in batch["outcomes"]]
                seconds = [float(batch["target_seconds"]), float(batch["search_seconds"])]
            except (ValueError, KeyError, TypeError):
                if warn:
                    logger.warning("ignoring line %d of %s (cut short by an interrupted write): its prompts are "
                                   "searched again", number, path)
                continue
            yield outcomes, seconds


def _ends_with_newline(path: str) -> bool:
    """Whether ``path`` is empty or its last byte ends a line."""
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
