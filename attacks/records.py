"""The attack's output folder: ``attack.json`` and ``adversarial_prompts.jsonl``, written atomically.

``attack.json`` holds the record (keys in ``shared/docs/contracts.md``: ``concept``,
``pre_asr``, ``asr``, ``budget``, ``seconds_per_prompt``, ``settings``, ``prompts``);
``adversarial_prompts.jsonl`` one line per searched prompt: the original prompt, seed and
guidance, the adversarial token ids and the text the image was drawn from, the stage,
timestep and iteration of the check, and the judge's verdict. With the model and the sampler
settings of the record, that is everything needed to regenerate the image and re-judge it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pipelines.atomic import atomic_folder
from pipelines.errors import EraseError

RECORD_FILE = "attack.json"
PROMPTS_FILE = "adversarial_prompts.jsonl"


def write(folder: str, record: dict[str, Any], rows: list[dict[str, Any]], overwrite: bool = False) -> str:
    """Write both files into ``folder`` in one atomic step (an existing folder needs ``overwrite``)."""
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        with open(os.path.join(tmp, RECORD_FILE), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
        with open(os.path.join(tmp, PROMPTS_FILE), "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return folder


def read(folder: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The record and the rows of an attack folder; a missing or damaged file is one clear error."""
    record_path, rows_path = os.path.join(folder, RECORD_FILE), os.path.join(folder, PROMPTS_FILE)
    for path in (record_path, rows_path):
        if not os.path.isfile(path):
            raise EraseError(f"{folder!r} is not an attack folder: {os.path.basename(path)} is missing; pass the --out "
                             "folder of an `erase attack` run")
    try:
        with open(record_path, encoding="utf-8") as f:
            record = json.load(f)
        with open(rows_path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as error:
        raise EraseError(f"{folder!r} holds an unreadable attack record ({error}); re-run the attack") from None
    if record.get("schema") != 1:
        raise EraseError(f"{record_path} has schema {record.get('schema')!r}; this erase reads schema 1")
    return record, rows
