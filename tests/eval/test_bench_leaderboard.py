"""The leaderboard's aggregation, pinned on hand-made cell records."""

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
