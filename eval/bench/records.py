"""A bench's finished-cell records kept where they outlive the bench folder: ``--records DIR``.

A bench folder (``--out``) holds every cell's artifact, images and checkpoints: hundreds of
megabytes, never committed, and gone with the machine it was on. The whole bench takes hours
on 2 CPU cores, more than one working session, so a bench that lives only in ``--out`` has to
start over each time. ``--records DIR`` keeps a copy of each finished cell's ``cell.json``
(a few kilobytes, meant for version control) under ``DIR/cells/<method>/<target>/`` and, at
the start of a run, puts back into ``--out`` every record ``--out`` has not finished as planned
now. A record holds every figure the leaderboard shows, so a cell restored this way is finished
without its artifact; if its key, its base model or its attack settings changed, it is redone
from the start like any other cell (there is no artifact to reuse).

An ``--out`` left from an older run of other defaults holds stale cells while the records (from a
later session, elsewhere) hold finished ones of today's: the records win, and the stale cell's
folder is moved aside (``OUT/superseded/<method>/<target>.N``), never deleted. Without that, every cell whose
method changed since ``--out`` was last run is trained again although its record is finished.
"""

from __future__ import annotations

import logging
import os
import shutil

from pipelines.atomic import atomic_file

from .cells import Cell, is_done

logger = logging.getLogger(__name__)

RECORD = "cell.json"


def _copy(source: str, destination: str) -> None:
    """``source`` to ``destination`` through a temporary file of its own (two processes may keep the
    same record at once), so that a reader never sees half a record."""
    with atomic_file(destination) as tmp:
        shutil.copyfile(source, tmp)


def restore(records: str, out: str, cells: list[Cell], model_sha256: str | None = None) -> int:
    """Copy into ``out`` the record of every planned cell that ``out`` has not finished as planned,
    where ``records`` has it: always when ``out`` lacks the cell, and over a stale cell of ``out``
    when the kept record is finished as planned (the stale folder moved aside first). A cell that
    ``out`` has finished as planned is never replaced (it is this run's own). Return how many."""
    restored = 0
    for cell in cells:
        source = os.path.join(cell.folder(records), RECORD)
        destination = os.path.join(cell.folder(out), RECORD)
        if not os.path.exists(source) or is_done(cell, out, model_sha256):
            continue
        if os.path.exists(cell.folder(out)):
            if not is_done(cell, records, model_sha256):
                continue  # neither is finished as planned: out's may be a half-run cell to resume
            _move_aside(out, cell)
        _copy(source, destination)
        restored += 1
    return restored


def _move_aside(out: str, cell: Cell) -> None:
    """Move a stale cell folder to the first free ``OUT/superseded/<method>/<target>.N``: out of
    ``OUT/cells``, which readers of a bench folder take as its finished cells."""
    folder = cell.folder(out)
    aside = os.path.join(out, "superseded", os.path.relpath(folder, os.path.join(out, "cells")))
    n = 1
    while os.path.exists(f"{aside}.{n}"):
        n += 1
    os.makedirs(os.path.dirname(aside), exist_ok=True)
    os.replace(folder, f"{aside}.{n}")
    logger.info("%s: superseded by a finished record of the current plan, moved to %s.%d", folder, aside, n)


def keep(records: str, out: str, cell: Cell) -> None:
    """Copy ``cell``'s finished record from ``out`` into ``records`` (replacing an older one there)."""
    _copy(os.path.join(cell.folder(out), RECORD), os.path.join(cell.folder(records), RECORD))
