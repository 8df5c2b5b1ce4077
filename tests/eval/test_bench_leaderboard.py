"""The leaderboard's aggregation, pinned on hand-made cell records."""

import json
import os

from eval.bench.cells import Cell
from eval.bench.leaderboard import aggregate, markdown


def record(method, target, kind, ua, ira, cra, seconds=10.0):
    return {
        "method": method, "target": target, "kind": kind,
        "metrics": {"ua": ua, "ira": ira, "cra": cra, "fid": 1.0, "clip": 30.0},
        "cost": {"train_seconds": seconds, "peak_rss_mb": 100.0, "artifact_mb": 0.5},
    }


def test_style_and_object_targets_are_averaged_apart():
    records = [
        record("esd", "stripes", "style", 90, 80, 70),
        record("esd", "dots", "style", 70, 60, 50, seconds=30.0),
        record("esd", "star", "object", 100, 100, 100),
        record("salun", "star", "object", 10, 20, 30),
    ]
    board = aggregate(records)
    assert board["esd"]["style"]["ua"] == 80.0 and board["esd"]["style"]["cra"] == 60.0
    assert board["esd"]["style"]["train_seconds"] == 20.0 and board["esd"]["style"]["targets"] == 2
    assert board["esd"]["object"]["ua"] == 100.0 and board["esd"]["object"]["ua_ci"] is None  # one target: no interval
    lo, hi = board["esd"]["style"]["ua_ci"]
    assert 70 <= lo <= 80 <= hi <= 90
    assert "style" not in board["salun"] and board["salun"]["object"]["ira"] == 20.0
    table = markdown(board, records)
    assert "| esd | 2+1 | 80.0 | 70.0 | 60.0 | 100.0 | 100.0 | 100.0 |" in table
    assert table.count("\n| esd |") == 4  # the summary row and three cell rows


def test_cell_key_changes_with_config_and_version_only():
    base = {"method": "esd", "target": "stripes", "kind": "style", "config": {"lr": 1e-5}, "method_version": "1",
            "model": "mini-canvas"}
    same = Cell(**base)
    assert Cell(**base).key == same.key
    assert Cell(**{**base, "config": {"lr": 2e-5}}).key != same.key
    assert Cell(**{**base, "method_version": "2"}).key != same.key
    assert Cell(**{**base, "target": "dots"}).key != same.key


def test_a_cell_under_another_config_checkpoints_beside_the_old_one_not_into_it(tmp_path):
    from eval.bench.cell import checkpoint_dir

    base = {"method": "salun", "target": "circle", "kind": "object", "config": {"pseudo": "next-class"},
            "method_version": "1", "model": "mini-canvas"}
    old, new = Cell(**base), Cell(**{**base, "config": {"pseudo": "farthest-object"}})
    folder = str(tmp_path / "cell")
    assert checkpoint_dir(old, folder) != checkpoint_dir(new, folder)  # a killed run's checkpoint no longer blocks the redo
    assert checkpoint_dir(old, folder) == checkpoint_dir(Cell(**base), folder)  # the same config resumes its own
    assert os.path.dirname(checkpoint_dir(old, folder)) == os.path.dirname(checkpoint_dir(new, folder))  # one root to clean


def attacked(rec, pre_asr, asr):
    rec["robustness"] = {"attack": "unlearndiffatk", "pre_asr": pre_asr, "asr": asr}
    return rec


def test_pre_asr_and_asr_are_averaged_over_attacked_cells_only():
    records = [
        attacked(record("esd", "stripes", "style", 90, 80, 70), 0.0, 20.0),
        attacked(record("esd", "star", "object", 100, 100, 100), 40.0, 60.0),
        attacked(record("esd", "heart", "object", 100, 100, 100), 20.0, 100.0),
        record("esd", "dots", "style", 70, 60, 50),  # not attacked: no part of the averages
    ]
    board = aggregate(records)
    assert board["esd"]["attacked"]["attacked"] == 3
    assert board["esd"]["attacked"]["pre_asr"] == 20.0 and board["esd"]["attacked"]["asr"] == 60.0
    assert board["esd"]["object"]["attacked"] == 2 and board["esd"]["object"]["asr"] == 80.0
    assert board["esd"]["style"]["attacked"] == 1 and board["esd"]["style"]["pre_asr"] == 0.0
    table = markdown(board, records)
    assert table.splitlines()[2].endswith("| 3 | 20.0 | 60.0 |")
    assert "| esd | heart | object | 100 | 100 | 100 | 1.0 | 30.0 | 20.0 | 100.0 |" in table
    assert "| esd | dots | style | 70 | 60 | 50 | 1.0 | 30.0 | – | – |" in table


def test_a_method_without_attacked_cells_shows_no_asr():
    board = aggregate([record("salun", "star", "object", 10, 20, 30)])
    assert board["salun"]["attacked"] == {"attacked": 0, "pre_asr": None, "pre_asr_ci": None, "asr": None, "asr_ci": None}
    assert markdown(board, []).splitlines()[2].endswith("| 0 | – | – |")


def planned_keys(*argv):
    import argparse

    from eval.bench import cli

    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "--methods", "esd", "--targets", "stripes", "--out", "unused", *argv])
    return [cell.key for cell in cli.plan_cells(args) if cell.target == "stripes"]


def test_one_seed_setting_keys_the_same_cells_however_it_is_spelt():
    quick = planned_keys("--quick")
    assert planned_keys("--seeds", "2") == planned_keys("--seeds", " 2 ") == quick
    assert planned_keys("--seeds", "0, 1") == planned_keys("--seeds", "0,1") != quick
    assert planned_keys("--seeds", "3") != quick and planned_keys() != quick


def test_drift_is_the_top_class_other_than_the_target_with_its_share_of_all_images():
    from eval.metrics.accuracy import drift

    counts = {"heart": 5, "star": 7, "arrow": 4, "diamond": 4}
    assert drift(counts, "heart") == {"seen_as": "star", "share": 35.0, "tied": [], "images": 20, "counts": counts}
    assert drift({"star": 12, "heart": 8}, "star")["seen_as"] == "heart"  # the target never counts as its own drift
    tie = drift({"arrow": 4, "star": 2, "diamond": 4}, "star")
    assert (tie["seen_as"], tie["tied"], tie["share"]) == ("arrow", ["diamond"], 40.0)


def test_an_intact_target_or_no_counts_give_no_drift():
    from eval.metrics.accuracy import drift

    assert drift({"star": 20}, "star") is None
    assert drift({"star": 20, "arrow": 0}, "star") is None
    assert drift({}, "star") is None and drift(None, "star") is None


def eval_json(folder, target, predicted_as, model_seconds=3.0, images=300):
    folder.mkdir(parents=True)
    (folder / "eval.json").write_text(json.dumps({"target": target, "per_class": {"target_predicted_as": predicted_as},
                                                  "cost": {"model_seconds": model_seconds}, "settings": {"images": images}}))


def test_a_record_without_drift_or_sampling_cost_is_filled_from_its_eval_json(tmp_path):
    from eval.bench import readme
    from eval.bench.cells import with_eval_columns

    bench = tmp_path / "bench"
    for target, predicted_as in (("star", {"star": 6, "crescent": 8, "arrow": 6}), ("heart", {"heart": 20})):
        cell = bench / "cells" / "esd" / target
        eval_json(cell / "eval", target, predicted_as)
        (cell / "cell.json").write_text(json.dumps({**record("esd", target, "object", 60, 90, 90), "status": "done"}))
    found = {r["target"]: r for r in readme.records(str(bench))}
    assert found["star"]["drift"]["seen_as"] == "crescent" and found["star"]["drift"]["share"] == 40.0
    assert "drift" in found["heart"] and found["heart"]["drift"] is None
    assert found["star"]["cost"]["sample_ms_per_image"] == 10.0 and found["star"]["cost"]["train_seconds"] == 10.0
    kept = {**record("esd", "star", "object", 60, 90, 90), "drift": None}
    kept["cost"]["sample_ms_per_image"] = 5.0
    assert with_eval_columns(kept, str(bench / "cells" / "esd" / "star")) is kept  # a record's own columns are not re-read
    bare = record("esd", "dots", "style", 60, 90, 90)
    assert with_eval_columns(bare, str(tmp_path / "no-such-cell")) == bare  # no eval.json: left as it was


def test_the_cell_table_shows_where_each_target_went():
    rows = [record("esd", "star", "object", 60, 90, 90), record("esd", "heart", "object", 0, 90, 90),
            record("esd", "dots", "style", 80, 90, 90)]
    rows[0]["drift"] = {"seen_as": "crescent", "share": 40.0, "tied": []}
    rows[1]["drift"] = None
    rows[2]["drift"] = {"seen_as": "grid", "share": 20.0, "tied": ["solid", "split", "stripes"]}
    lines = markdown(aggregate(rows), rows).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method | target |"))
    column = lines[start].split(" | ").index("seen as")
    cells = {line.split(" | ")[1]: line.split(" | ")[column] for line in lines[start + 2:]}
    assert cells == {"star": "crescent 40%", "heart": "–", "dots": "grid 20%, solid 20%, +2 more"}
