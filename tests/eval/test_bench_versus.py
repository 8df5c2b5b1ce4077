"""``python -m eval.bench.versus``: per target, rows against a reference under a bar, from cell records."""

import json

import pytest

from eval.bench.versus import Bar, main, table
from pipelines.errors import ConfigError

BUDGET = {"stages": 50, "iterations": 40}


def cell(method, target, kind, asr, ua=95.0, ira=90.0, cra=90.0, budget=BUDGET):
    return {"status": "done", "method": method, "target": target, "kind": kind, "cost": {}, "drift": None,
            "metrics": {"ua": ua, "ira": ira, "cra": cra},
            "robustness": {"asr": asr, "budget": budget}}


CELLS = [
    cell("esd", "house", "object", 40.0), cell("adv", "house", "object", 20.0), cell("stack", "house", "object", 25.0),
    cell("esd", "split", "style", 80.0), cell("adv", "split", "style", 30.0, ira=79.0), cell("stack", "split", "style", 10.0),
    cell("esd", "star", "object", 30.0), cell("adv", "star", "object", 5.0),  # no stack cell: star is left out
    {**cell("esd", "grid", "style", 0.0), "robustness": None},  # not attacked
]


def test_each_target_is_bold_where_the_bar_holds_and_the_holds_are_counted():
    text = table(CELLS, ["adv", "stack"], "esd", Bar(0.5, 85, 80, 80))
    lines = text.splitlines()
    assert lines[0] == "| target | esd ASR | adv ASR | adv UA / IRA / CRA | stack ASR | stack UA / IRA / CRA |"
    assert lines[2] == "| split (style) | 80.0 | 30.0 | 95 / 79 / 90 | **10.0** | **95 / 90 / 90** |"  # adv: IRA under 80
    assert lines[3] == "| house (object) | 40.0 | **20.0** | **95 / 90 / 90** | 25.0 | 95 / 90 / 90 |"  # 20 is half of 40
    assert len(lines) == 6 and lines[-1].endswith("Holds on: adv 1 of 2; stack 1 of 2.")


def test_rows_attacked_under_another_budget_or_on_no_common_target_are_refused(tmp_path, capsys):
    other = [*CELLS[:2], {**CELLS[1], "method": "weak", "robustness": {"asr": 0.0, "budget": {"stages": 10}}}]
    with pytest.raises(ConfigError, match="weak on house was attacked under another budget"):
        table(other, ["weak"], "esd", Bar(0.5, 85, 80, 80))
    with pytest.raises(ConfigError, match="no target is attacked under both esd and nosuch"):
        table(CELLS, ["nosuch"], "esd", Bar(0.5, 85, 80, 80))
    for record in CELLS[:3]:
        folder = tmp_path / "cells" / record["method"] / record["target"]
        folder.mkdir(parents=True)
        (folder / "cell.json").write_text(json.dumps(record))
    assert main(["--bench", str(tmp_path), "--methods", "adv,stack"]) == 0
    assert "| house (object) | 40.0 | **20.0** |" in capsys.readouterr().out
    assert main(["--bench", str(tmp_path), "--methods", "nosuch"]) == 2
    assert "error: no target is attacked" in capsys.readouterr().err
