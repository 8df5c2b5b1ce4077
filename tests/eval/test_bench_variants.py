"""``erase bench --variant``: named configs of one method get their own folders, rows and keys; a plain
method's cells keep the key they always had (erasure and eval faked as in test_bench_resume)."""

import json

import pytest

import eval.bench.cells as cells_module
from eval.bench import cli
from eval.bench.cells import Cell
from eval.bench.variants import parse_variant
from pipelines.errors import ConfigError
from tests.eval.test_bench_resume import fakes  # noqa: F401 - the fixture

ABLATION = ["--variant", "doco-off=doco:surgery=off", "--variant", "doco-pcgrad=doco:surgery=pcgrad"]


def args_for(out, *extra):
    import argparse

    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "--methods", "doco", "--targets", "stripes,star", "--out", str(out), *extra])
    args.quiet = True
    return args


def test_variants_get_their_own_folders_rows_and_keys(fakes, tmp_path):  # noqa: F811
    out = tmp_path / "bench"
    plain = {c.target: c.key for c in cli.plan_cells(args_for(out))}
    assert cli.run(args_for(out, *ABLATION)) == 0
    erased = sorted(c[1:3] for c in fakes.calls if c[0] == "erase")
    assert erased == sorted(("doco", t) for t in ("stripes", "star") for _ in range(3))  # each variant runs doco itself
    for name, surgery in (("doco", "doco"), ("doco-off", "off"), ("doco-pcgrad", "pcgrad")):
        for target in ("stripes", "star"):
            record = json.loads((out / "cells" / name / target / "cell.json").read_text())
            assert record["method"] == name and record["config"]["surgery"] == surgery
            assert record.get("variant_of") == (None if name == "doco" else "doco")
    board = json.loads((out / "leaderboard.json").read_text())["leaderboard"]
    assert set(board) == {"doco", "doco-off", "doco-pcgrad"}
    assert "| doco-pcgrad | star |" in (out / "leaderboard.md").read_text()

    cells = cli.plan_cells(args_for(out, *ABLATION))
    assert {c.target: c.key for c in cells if c.variant is None} == plain  # variants beside it change no plain key
    assert len({c.key for c in cells}) == len(cells)
    fakes.calls.clear()
    assert cli.run(args_for(out, *ABLATION)) == 0
    assert fakes.calls == []  # all done: the keys are stable

    changed = ["--variant", "doco-off=doco:surgery=off", "--variant", "doco-pcgrad=doco:surgery=pcgrad,lam=0.5"]
    again = cli.plan_cells(args_for(out, *changed))
    moved = {(c.label, c.target) for c in again if c.key not in {k.key for k in cells}}
    assert moved == {("doco-pcgrad", "stripes"), ("doco-pcgrad", "star")}  # the override changes only its variant's key
    assert cli.run(args_for(out, *changed)) == 0
    assert sorted(c[2] for c in fakes.calls if c[0] == "erase") == ["star", "stripes"]
    assert json.loads((out / "cells" / "doco-pcgrad" / "star" / "cell.json").read_text())["config"]["lam"] == 0.5


def test_a_plain_methods_key_is_the_one_it_always_had(monkeypatch):
    # Computed with eval/bench/cells.py as it was before variants existed (commit 64f2710): a plain
    # cell's key may only change with BENCH_SCHEMA (bumped on purpose when the eval's images change:
    # 2, every image from its own noise), or every finished bench would be redone.
    cell = Cell(method="esd", target="star", kind="object", config={"concepts": ["star"], "lr": 1e-5, "params": "esd-x"},
                method_version="2", model="mini-canvas", eval_settings={"seeds": 2})
    assert cell.key == "39ad7ee471353069ff37309b6f8ddfc6582692a89ec8fdaf7367553636669599"
    monkeypatch.setattr(cells_module, "BENCH_SCHEMA", 1)
    assert cell.key == "bdd16a599c4822b5c0cc169d54200a117fe00d21d29ce4c5697bc2a4e8a48403"
    assert cell.folder("R") == "R/cells/esd/star" and cell.label == "esd"
    variant = Cell(**{**cell.__dict__, "variant": "esd-slow"})
    assert variant.key != cell.key and variant.folder("R") == "R/cells/esd-slow/star"


def test_override_values_are_read_as_json_or_text():
    v = parse_variant("doco-x=doco: lam=0.5 , hflip=false,surgery=pcgrad")
    assert (v.name, v.method, v.overrides) == ("doco-x", "doco", {"lam": 0.5, "hflip": False, "surgery": "pcgrad"})
    assert parse_variant("doco-same=doco").overrides == {}


@pytest.mark.parametrize("entries, message", [
    (["doco-off"], "give NAME=METHOD"),
    (["doco-off="], "give NAME=METHOD"),
    (["doco off=doco:surgery=off"], "names a folder"),
    (["doco=doco:surgery=off"], "a method's own name"),
    (["x=doco:surgery"], "'surgery' is not KEY=VALUE"),
    (["x=doco:no_such=1"], "unknown config key 'no_such'"),
    (["x=nosuch:lr=1"], "unknown method 'nosuch'"),
    (['x=doco:concepts=["star"]'], "leave 'concepts' out"),
    (["x=doco:surgery=off", "x=doco:surgery=pcgrad"], "given 2 times"),
])
def test_bad_variants_fail_with_one_clear_error_before_any_cell(fakes, tmp_path, entries, message):  # noqa: F811
    extra = [part for entry in entries for part in ("--variant", entry)]
    with pytest.raises(ConfigError, match=message):
        cli.run(args_for(tmp_path / "bench", *extra))
    assert fakes.calls == []
