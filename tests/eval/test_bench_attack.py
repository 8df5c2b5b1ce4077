"""One attacked bench cell for real, on tiny models: erase, ``erase eval``, ``erase attack``, one record."""

import json
import os
from pathlib import Path

import pytest

from eval.bench.cell import ATTACK_KEY_FILE, run_cell
from eval.bench.cells import Cell, is_done


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    """An untrained mini-canvas judge: real verdicts, meaningless but deterministic."""
    from eval.canvas import mini_canvas
    from eval.judges.canvas_judge import CanvasJudge, JudgeConfig, JudgeNet

    world, config = mini_canvas(), JudgeConfig(channels=(8, 16))
    path = tmp_path_factory.mktemp("judge") / "judge.safetensors"
    return str(CanvasJudge(JudgeNet(config, 10, 10), config, world.objects, world.styles).save(path))


def test_an_attacked_cell_records_pre_asr_and_asr_from_erase_attack(tiny_folder, judge, tmp_path):
    from erase import ESDConfig
    from pipelines import load_pipeline

    quick = {"judge": judge, "steps": 2, "seeds": 1, "no_cache": True, "device": "cpu"}
    cell = Cell(method="esd", target="stripes", kind="style", method_version="2", model=tiny_folder,
                config=ESDConfig(concepts=["stripes"], steps=1, ddim_steps=2).to_dict(),
                eval_settings={**quick, "limit": 20, "metrics": "ua", "bootstrap": 50},
                attack={"attack": "unlearndiffatk", "limit": 2, "stages": 1, "iterations": 1, **quick})
    record = run_cell(cell, str(tmp_path), load_pipeline(tiny_folder), progress=False)
    folder = cell.folder(str(tmp_path))
    attack = json.loads(Path(folder, "attack", "attack.json").read_text())
    assert attack["budget"]["stages"] == 1 and attack["counts"]["evaluated"] == 2  # the bench's budget reached the attack
    assert attack["settings"]["model"] == os.path.join(folder, "artifact")  # the cell's erased model was attacked
    robustness = record["robustness"]
    assert (robustness["pre_asr"], robustness["asr"]) == (attack["pre_asr"], attack["asr"])
    assert robustness["pre_asr"] == pytest.approx(100 - record["metrics"]["ua"])  # same judge, same first-seed images
    assert robustness["key"] == cell.attack_key == Path(folder, "attack", ATTACK_KEY_FILE).read_text().strip()
    assert record["cost"]["attack_seconds"] > 0 and is_done(cell, str(tmp_path))
    assert not is_done(Cell(**{**cell.__dict__, "attack": {**cell.attack, "stages": 2}}), str(tmp_path))
