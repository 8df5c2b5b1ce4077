"""The bench's cells: one (method, target) pair each, in its own folder with its own record.

A cell is done when ``DIR/cells/<method>/<target>/cell.json`` exists with status ``done`` and
the same *key* as the cell now planned. The key is a hash of everything that decides the
cell's result (method name and version, its full config, the base model, the eval settings), so
a finished cell is never redone unless asked, and a cell whose method version or config changed
is redone, alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

BENCH_SCHEMA = 1


@dataclass(frozen=True)
class Cell:
    method: str
    target: str
    kind: str  # "style" or "object"
    config: dict[str, Any]  # the method's full config for this cell (concepts included)
    method_version: str
    model: str
    eval_settings: dict[str, Any] = field(default_factory=dict)
    attack: bool = False

    @property
    def key(self) -> str:
        payload = json.dumps(
            [BENCH_SCHEMA, self.method, self.method_version, self.target, self.config, self.model, self.eval_settings, self.attack],
            sort_keys=True, default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def folder(self, root: str) -> str:
        return os.path.join(root, "cells", self.method, self.target.replace(" ", "_"))


def read_record(cell: Cell, root: str) -> dict[str, Any] | None:
    path = os.path.join(cell.folder(root), "cell.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_done(cell: Cell, root: str) -> bool:
    record = read_record(cell, root)
    return record is not None and record.get("status") == "done" and record.get("key") == cell.key
