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
    base = dict(method="esd", target="stripes", kind="style", config={"lr": 1e-5}, method_version="1", model="mini-canvas")
    same = Cell(**base)
    assert Cell(**base).key == same.key
    assert Cell(**{**base, "config": {"lr": 2e-5}}).key != same.key
    assert Cell(**{**base, "method_version": "2"}).key != same.key
    assert Cell(**{**base, "target": "dots"}).key != same.key
