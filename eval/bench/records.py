"""A bench's finished-cell records kept where they outlive the bench folder: ``--records DIR``.

A bench folder (``--out``) holds every cell's artifact, images and checkpoints: hundreds of
megabytes, never committed, and gone with the machine it was on. The whole bench takes hours
on 2 CPU cores, more than one working session, so a bench that lives only in ``--out`` has to
start over each time. ``--records DIR`` keeps a copy of each finished cell's ``cell.json``
(a few kilobytes, meant for version control) under ``DIR/cells/<method>/<target>/`` and, at
the start of a run, puts back into ``--out`` every record ``--out`` lacks. A record holds
every figure the leaderboard shows, so a cell restored this way is finished without its
artifact; if its key, its base model or its attack settings changed, it is redone from the
start like any other cell (there is no artifact to reuse).
"""

from __future__ import annotations

import os
import shutil

from pipelines.atomic import atomic_file

from .cells import Cell

RECORD = "cell.json"


def _copy(source: str, destination: str) -> None:
    """``source`` to ``destination`` through a temporary file of its own (two processes may keep the
    same record at once), so that a reader never sees half a record."""
    with atomic_file(destination) as tmp:
        shutil.copyfile(source, tmp)


def restore(records: str, out: str, cells: list[Cell]) -> int:
    """Copy into ``out`` the record of every planned cell that ``records`` has and ``out`` lacks;
    return how many. A record already in ``out`` is never replaced (it is this run's own)."""
    restored = 0
    for cell in cells:
        source = os.path.join(cell.folder(records), RECORD)
        destination = os.path.join(cell.folder(out), RECORD)
        if os.path.exists(source) and not os.path.exists(destination):
            _copy(source, destination)
            restored += 1
    return restored


def keep(records: str, out: str, cell: Cell) -> None:
    """Copy ``cell``'s finished record from ``out`` into ``records`` (replacing an older one there)."""
    _copy(os.path.join(cell.folder(out), RECORD), os.path.join(cell.folder(records), RECORD))
