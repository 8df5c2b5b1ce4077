"""An attack's progress on disk, so that a killed run resumes instead of starting over.

UnlearnDiffAtk at its default budget spends about a minute per prompt on the CPU and hours on a
few hundred prompts on a GPU; losing all of it to a crash, an out-of-memory error or a closed
laptop lid is not acceptable. After every searched batch the runner appends that batch's
outcomes (and the seconds they cost) to the journal; a new run with the same settings loads
them and searches only the prompts not yet done. A prompt's search depends only on its own
generator (seeded by the attack seed and its index), so a resumed run finds what an
uninterrupted one would: the same stages, verdicts and tokens, up to float noise from
the batch it shares.

The journal is a folder of JSON lines, one file per process (``outcomes.<rank>.jsonl``), plus
``key.json``: the SHA-256 of everything that decides an outcome (attack, its options but the
batch size, concept, both models' weights, prompts, sampler, judge). A journal written under
another key is never reused silently: the run stops and names the two ways out. A line torn
by a kill half-way through its write is ignored (its batch is searched again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from pipelines.atomic import write_text
from pipelines.errors import ConfigError

from .base import Outcome

logger = logging.getLogger(__name__)

KEY_FILE = "key.json"

#: Options that change how prompts are grouped, not what is found for each: a run that ran out
#: of memory resumes with a smaller ``--batch-size``.
UNKEYED_OPTIONS = ("batch_size",)


def journal_key(parts: dict[str, Any]) -> str:
    """SHA-256 of ``parts`` (JSON, sorted keys): what a journal's outcomes were found under."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def keyed_options(config: dict[str, Any]) -> dict[str, Any]:
    """The attack options that decide its outcomes (every field but :data:`UNKEYED_OPTIONS`)."""
    return {k: v for k, v in config.items() if k not in UNKEYED_OPTIONS}


class AttackJournal:
    """The outcomes an attack has found so far, in ``folder`` (see the module docstring)."""

    def __init__(self, folder: str, key: str, rank: int = 0) -> None:
        self.folder, self.key, self.rank = folder, key, rank
        self.outcomes: dict[int, Outcome] = {}
        self.seconds = [0.0, 0.0]  # target, search: what the journaled batches cost
        self._load()

    def _load(self) -> None:
        key_path = os.path.join(self.folder, KEY_FILE)
        if not os.path.isfile(key_path):
            return
        with open(key_path, encoding="utf-8") as f:
            saved = json.load(f).get("key")
        if saved != self.key:
            raise ConfigError(f"'{self.folder}' holds the progress of an attack with other settings (model, prompts, "
                              "options or judge); run the same command to resume it, or pass --fresh to discard it")
        for name in sorted(os.listdir(self.folder)):
            if name.startswith("outcomes.") and name.endswith(".jsonl"):
                self._read(os.path.join(self.folder, name))
        if self.outcomes:
            logger.info("resuming: %d prompts already searched (%s)", len(self.outcomes), self.folder)

    def _read(self, path: str) -> None:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    batch = json.loads(line)
                    outcomes = [Outcome(**o) for o in batch["outcomes"]]
                except (ValueError, KeyError, TypeError):
                    logger.warning("ignoring line %d of %s (cut short by an interrupted write): its prompts are "
                                   "searched again", number, path)
                    continue
                self.outcomes.update((o.index, o) for o in outcomes)
                self.seconds[0] += batch["target_seconds"]
                self.seconds[1] += batch["search_seconds"]

    def start(self) -> None:
        """Create the folder and its key (the main process, once every process has loaded)."""
        os.makedirs(self.folder, exist_ok=True)
        key_path = os.path.join(self.folder, KEY_FILE)
        if not os.path.isfile(key_path):
            write_text(key_path, json.dumps({"key": self.key}) + "\n")

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


def _ends_with_newline(path: str) -> bool:
    """Whether ``path`` is empty or its last byte ends a line."""
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
