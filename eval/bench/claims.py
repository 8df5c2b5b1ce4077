"""Which process runs which cell: each takes the next unclaimed one, so the cores stay busy.

A fixed split (each process a contiguous slice of the cells) leaves cores idle whenever the
slices cost differently, and they do: the cells come grouped by method, and on Stable Diffusion
one AdvUnlearn cell costs hours where a few-shot cell costs minutes. Here every process walks
the same list in the same order and claims a cell by creating its claim file with ``O_EXCL``,
which exactly one process can do; the others move on to the next cell.

Claims live in ``OUT/.claims/<run id>/``, outside the cell folders (a cell whose config changed
has its folder emptied by the process that redoes it). The run id is drawn by the main process
and shared with the others through a file when the bench starts (every process must see the
same ``OUT``), so the claims of a killed run (another id) never block the resumed one; the main
process removes those when the bench starts.
"""

from __future__ import annotations

import os
import shutil
import uuid

from pipelines.atomic import write_text
from pipelines.sharding import is_main_process, wait_for_everyone

from .cells import Cell

FOLDER = ".claims"


def start_run(out: str) -> str:
    """This invocation's run id, the same in every process: the main process removes the claims of
    earlier runs and writes a new id to ``OUT/.claims/current``, which the others read after the
    barrier (a collective: every process calls it, and none returns before all have arrived)."""
    root = os.path.join(out, FOLDER)
    current = os.path.join(root, "current")
    if is_main_process():
        os.makedirs(root, exist_ok=True)
        for name in os.listdir(root):
            if name != "current":
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        write_text(current, uuid.uuid4().hex)
    wait_for_everyone()
    with open(current, encoding="utf-8") as f:
        return f.read().strip()


def claim(cell: Cell, out: str, run_id: str) -> bool:
    """Take ``cell`` for this process; False if another process of this run took it first."""
    folder = os.path.join(out, FOLDER, run_id)
    os.makedirs(folder, exist_ok=True)
    name = "--".join(os.path.relpath(cell.folder(out), os.path.join(out, "cells")).split(os.sep))
    try:
        handle = os.open(os.path.join(folder, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(handle, f"{os.getpid()}\n".encode())
    os.close(handle)
    return True
