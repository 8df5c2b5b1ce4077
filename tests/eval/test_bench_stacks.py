"""``erase bench`` stack rows (``esd+advunlearn``): real erasures on the tiny model, merged into one
artifact per target, a finished part taken from its own row; ``erase eval`` and ``erase attack`` faked."""

import argparse
import json
import os

import pytest
import torch

import eval.bench.cell as cell_module
from eval.bench import cli
from pipelines import ErasureResult
from pipelines.errors import ConfigError

QUICK = {"esd": {"steps": 2, "ddim_steps": 4},
         "advunlearn": {"steps": 3, "warmup": 1, "ddim_steps": 4, "attack_steps": 2, "retain_batch": 2, "lr": 1e-2}}


class FakeCommands:
    """``erase eval`` / ``erase attack`` stand-ins that record which artifact they were given."""

    def __init__(self):
        self.calls = []

    def __call__(self, module, argv, progress):
        model, out = argv[argv.index("--model") + 1], argv[argv.index("--out") + 1]
        method = ErasureResult.load(model).method
        self.calls.append((module, method))
        os.makedirs(out, exist_ok=True)
        name = "eval.json" if module == "eval.cli" else "attack.json"
        score = 10.0 * len(method)  # differs between rows, the same on a rerun
        record = ({"metrics": {k: score for k in ("ua", "ira", "cra", "fid", "clip")}, "ci": {}, "cost": {}}
                  if module == "eval.cli" else
                  {"attack": argv[1], "pre_asr": 0.0, "asr": score, "counts": {},
                   "cost": {"wall_seconds": 1.0, "resumed_seconds": 2.5}})
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(record, f)


@pytest.fixture
def commands(monkeypatch):
    fake = FakeCommands()
    monkeypatch.setattr(cell_module, "command", fake)
    monkeypatch.setattr(cell_module, "machine", lambda: {"cpu": "test", "cores": 2, "threads": 1, "gpu": None})
    return fake


def bench_args(tmp_path, tiny_folder, methods, *extra, quick=QUICK):
    files = []
    for method, values in quick.items():
        path = tmp_path / f"{method}-{len(files)}.json"
        path.write_text(json.dumps(values))
        files += ["--method-config", f"{method}={path}"]
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "--methods", methods, "--targets", "star", "--model", tiny_folder,
                              "--out", str(tmp_path / "bench"), *files, *extra])
    args.quiet = True
    return args


def test_a_stack_row_merges_its_parts_and_takes_a_finished_part_from_its_own_row(commands, tmp_path, tiny_folder):
    args = bench_args(tmp_path, tiny_folder, "esd,esd+advunlearn", "--attack", "--attack-targets", "star")
    assert cli.run(args) == 0
    out = tmp_path / "bench" / "cells"
    stacked = ErasureResult.load(str(out / "esd+advunlearn" / "star" / "artifact"))
    assert stacked.method == "esd+advunlearn" and stacked.components == {"unet", "text_encoder"}
    esd_path, adv_path = (part["path"] for part in stacked.record["stack"])
    assert esd_path == str(out / "esd" / "star" / "artifact")  # ESD's row had finished: its artifact, not a new one
    assert adv_path == str(out / "esd+advunlearn" / "star" / "parts" / "advunlearn" / "artifact")  # no row: trained here
    assert not (out / "esd+advunlearn" / "star" / "parts" / "esd").exists()
    esd = ErasureResult.load(esd_path)
    assert all(torch.equal(stacked.tensors[name], t) for name, t in esd.tensors.items())
    adv = ErasureResult.load(adv_path)
    assert set(stacked.tensors) == set(esd.tensors) | set(adv.tensors)
    costs = [esd.record["cost"], adv.record["cost"]]  # making the stack cost both trainings, one after the other
    assert stacked.record["cost"]["train_seconds"] == pytest.approx(sum(c["train_seconds"] for c in costs), abs=2e-3)
    assert stacked.record["cost"]["peak_rss_mb"] == max(c["peak_rss_mb"] for c in costs)
    assert sorted(commands.calls) == sorted([("eval.cli", "esd"), ("attacks.cli", "esd"),
                                             ("eval.cli", "esd+advunlearn"), ("attacks.cli", "esd+advunlearn")])
    record = json.loads((out / "esd+advunlearn" / "star" / "cell.json").read_text())
    assert record["method"] == "esd+advunlearn" and record["robustness"]["asr"] == 140.0
    assert record["cost"]["attack_seconds"] == 3.5  # a resumed attack's seconds count its interrupted runs too
    assert [p["method"] for p in record["config"]["stack"]] == ["esd", "advunlearn"]
    board = json.loads((tmp_path / "bench" / "leaderboard.json").read_text())["leaderboard"]
    assert set(board) == {"esd", "esd+advunlearn"}

    commands.calls.clear()
    assert cli.run(args) == 0
    assert commands.calls == []  # finished: the stack's key is stable

    changed = {**QUICK, "advunlearn": {**QUICK["advunlearn"], "lr": 5e-3}}
    assert cli.run(bench_args(tmp_path, tiny_folder, "esd,esd+advunlearn", quick=changed)) == 0
    assert commands.calls == [("eval.cli", "esd+advunlearn")]  # a changed part redoes the stack only
    again = json.loads((out / "esd+advunlearn" / "star" / "cell.json").read_text())
    assert again["config"]["stack"][1]["config"]["lr"] == 5e-3


def test_a_sequential_row_trains_its_top_part_in_front_of_the_finished_under_part(commands, tmp_path, tiny_folder):
    assert cli.run(bench_args(tmp_path, tiny_folder, "esd,advunlearn@esd")) == 0
    out = tmp_path / "bench" / "cells"
    result = ErasureResult.load(str(out / "advunlearn@esd" / "star" / "artifact"))
    esd = ErasureResult.load(str(out / "esd" / "star" / "artifact"))
    assert result.method == "advunlearn" and result.components == {"unet", "text_encoder"}
    assert result.record["unet_from"]["path"] == str(out / "esd" / "star" / "artifact")  # ESD's row's, not retrained
    assert all(torch.equal(result.tensors[name], t) for name, t in esd.tensors.items())
    assert not (out / "advunlearn@esd" / "star" / "parts").exists()
    record = json.loads((out / "advunlearn@esd" / "star" / "cell.json").read_text())
    assert [p["method"] for p in record["config"]["stack"]] == ["esd", "advunlearn"]
    assert record["cost"]["train_seconds"] > esd.record["cost"]["train_seconds"]  # it pays for the UNet it stands on
    assert ("eval.cli", "advunlearn") in commands.calls

    commands.calls.clear()
    assert cli.run(bench_args(tmp_path, tiny_folder, "esd,advunlearn@esd")) == 0
    assert commands.calls == []  # finished: the key is stable, although the artifact path is not in it


@pytest.mark.parametrize("methods, extra, message", [
    ("esd@advunlearn", [], "esd cannot be trained in front of another erasure"),
    ("advunlearn@esd@salun", [], "TOP@UNDER, two methods"),
    ("advunlearn@esd+salun", [], "TOP@UNDER, two methods"),
    ("esd+esd", [], "names esd twice"),
    ("esd+", [], "joins two or more methods"),
    ("esd+nosuch", [], "unknown method 'nosuch'"),
    ("esd+sfd", [], "sfd makes a one-step generator"),
    ("advunlearn@sfd", [], "sfd makes a one-step generator"),
    ("advunlearn@fewshot", [], "fewshot trains te-mlp-final-attn \\(text_encoder\\)"),
    ("esd", ["--variant", "x=esd+advunlearn:lr=1"], "a stack row has no options of its own"),
    ("esd+advunlearn", ["--timing-only"], "time its parts \\(--methods esd,advunlearn\\)"),
])
def test_bad_stack_rows_fail_with_one_clear_error_before_any_cell(commands, tmp_path, tiny_folder, methods, extra, message):
    with pytest.raises(ConfigError, match=message):
        cli.run(bench_args(tmp_path, tiny_folder, methods, *extra))
    assert commands.calls == [] and not (tmp_path / "bench" / "cells").exists()
