"""The bench's plots: PNG files, the same bytes for the same records, headless."""

import copy
from pathlib import Path

from eval.bench.plots import ASR, SCATTER, retained, write_plots

PNG = b"\x89PNG\r\n\x1a\n"


def records():
    rows = []
    for method, shift in (("esd", 0), ("salun", 10)):
        for i, (target, kind) in enumerate((("stripes", "style"), ("dots", "style"), ("star", "object"))):
            rows.append({"method": method, "target": target, "kind": kind,
                         "metrics": {"ua": 50 + 10 * i + shift, "ira": 90.0 - shift, "cra": 80.0},
                         "cost": {}, "robustness": {"pre_asr": 10.0 + shift, "asr": 40.0} if i < 2 else None})
    return rows


def test_plots_are_png_and_deterministic(tmp_path):
    first = write_plots(str(tmp_path / "a"), records())
    second = write_plots(str(tmp_path / "b"), records())
    assert [p.rsplit("/", 1)[1] for p in first] == [SCATTER, ASR]
    for a, b in zip(first, second):
        data = Path(a).read_bytes()
        assert data.startswith(PNG) and data == Path(b).read_bytes()


def test_plots_change_with_the_records(tmp_path):
    changed = copy.deepcopy(records())
    changed[0]["metrics"]["ua"] = 5
    changed[1]["robustness"]["asr"] = 95.0
    a = write_plots(str(tmp_path / "a"), records())
    b = write_plots(str(tmp_path / "b"), changed)
    assert all(Path(x).read_bytes() != Path(y).read_bytes() for x, y in zip(a, b))


def test_retained_is_the_mean_of_ira_and_cra():
    assert retained({"metrics": {"ira": 90.0, "cra": 70.0}}) == 80.0
    assert retained({"metrics": {"ira": 90.0, "cra": None}}) == 90.0
    assert retained({"metrics": {}}) is None


def test_no_records_no_plots(tmp_path):
    assert write_plots(str(tmp_path), []) == [] and not list(tmp_path.iterdir())
