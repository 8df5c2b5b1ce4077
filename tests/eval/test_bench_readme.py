"""``python -m eval.bench.readme``: the README's leaderboard block, regenerated between its markers only."""

import json
import os

import pytest

from eval.bench import readme

BEFORE = "# Project\n\nintro\n\n"
AFTER = "\n\n## Next section\n\nkept as is\n"


def bench(root, ua=80.0, method="esd", model_sha256=None):
    folder = root / "bench-x"
    for target, kind in (("stripes", "style"), ("star", "object")):
        cell = folder / "cells" / method / target
        cell.mkdir(parents=True)
        (cell / "cell.json").write_text(json.dumps({
            **({"model_sha256": model_sha256} if model_sha256 else {}),
            "status": "done", "method": method, "target": target, "kind": kind,
            "metrics": {"ua": ua, "ira": 90.0, "cra": 100.0, "fid": 30.0, "clip": 60.0},
            "robustness": {"pre_asr": 10.0, "asr": 30.0},
            "cost": {"train_seconds": 100.0, "wall_seconds": 1800.0, "eval_seconds": 1800.0, "attack_seconds": None},
            "machine": {"cpu": "x86_64", "cores": 2, "threads": 1, "gpu": None}}))
    return folder


def test_the_block_between_the_markers_is_replaced_and_nothing_else(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(BEFORE + readme.START + "\nold table\n" + readme.END + AFTER)
    assets = tmp_path / "assets"
    assert readme.main(["--bench", str(bench(tmp_path)), "--readme", str(path), "--assets", str(assets),
                        "--command", "erase bench --out runs/bench-x"]) == 0
    text = path.read_text()
    assert text.startswith(BEFORE + readme.START + "\n") and text.endswith(readme.END + AFTER)
    assert "old table" not in text and "erase bench --out runs/bench-x" in text
    assert "| esd | 1+1 | 80.0 | 90.0 | 100.0 | 80.0 | 90.0 | 100.0 |" in text
    assert "![retain vs forget](assets/retain_vs_forget.png)" in text and "![asr](assets/asr.png)" in text
    assert "2 cells; 2.0 h of summed cell wall time" in text and "x86_64 (2 cores, 1 torch threads)" in text
    assert sorted(os.listdir(assets)) == ["asr.png", "leaderboard.json", "leaderboard.md", "retain_vs_forget.png"]

    readme.main(["--bench", str(bench(tmp_path / "again", ua=20.0)), "--readme", str(path), "--assets", str(assets)])
    again = path.read_text()
    assert "| esd | 1+1 | 20.0 |" in again and "80.0 | 90.0" not in again and again.endswith(readme.END + AFTER)


@pytest.mark.parametrize("body", ["no markers at all\n", readme.END + "\n" + readme.START + "\n",
                                  readme.START + "\n" + readme.END + "\n" + readme.START + "\n" + readme.END + "\n"])
def test_missing_or_misplaced_markers_change_nothing(tmp_path, capsys, body):
    path = tmp_path / "README.md"
    path.write_text(body)
    assets = tmp_path / "assets"
    assert readme.main(["--bench", str(bench(tmp_path)), "--readme", str(path), "--assets", str(assets)]) == 2
    err = capsys.readouterr().err
    assert "marker" in err and readme.START in err and "Traceback" not in err
    assert path.read_text() == body and not assets.exists()


def test_a_folder_without_cells_is_refused(tmp_path, capsys):
    path = tmp_path / "README.md"
    path.write_text(readme.START + "\n" + readme.END + "\n")
    assert readme.main(["--bench", str(tmp_path / "empty"), "--readme", str(path), "--assets", str(tmp_path / "a")]) == 2
    assert "no finished cells" in capsys.readouterr().err


def test_named_blocks_fill_only_their_own_markers(tmp_path):
    """A README with two leaderboards: --block fills one pair and leaves the other's text alone."""
    esd_start, esd_end = readme.markers("esd")
    assert (esd_start, esd_end) != (readme.START, readme.END) and "(esd)" in esd_start and "(esd)" in esd_end
    path = tmp_path / "README.md"
    other = readme.START + "\nthe other leaderboard\n" + readme.END + "\n"
    path.write_text(other + esd_start + "\nold\n" + esd_end + "\n")
    assert readme.main(["--bench", str(bench(tmp_path)), "--readme", str(path), "--assets", str(tmp_path / "a"),
                        "--block", "esd"]) == 0
    text = path.read_text()
    assert text.startswith(other) and "old\n" not in text and "| esd | 1+1 | 80.0 |" in text


def test_cells_measured_on_another_base_model_are_left_out_and_counted(tmp_path, monkeypatch):
    """After the shipped model is retrained, cells not yet re-run must not sit in one table with re-run ones."""
    from eval.bench import cli

    bench(tmp_path, ua=80.0, method="esd", model_sha256="new-weights")
    folder = bench(tmp_path, ua=20.0, method="salun", model_sha256="old-weights")
    monkeypatch.setattr(cli, "base_model_sha256", lambda model: "new-weights")
    path = tmp_path / "README.md"
    path.write_text(readme.START + "\n" + readme.END + "\n")
    assert readme.main(["--bench", str(folder), "--readme", str(path), "--assets", str(tmp_path / "a")]) == 0
    text = path.read_text()
    assert "| esd | 1+1 | 80.0 |" in text and "| salun |" not in text
    assert "Left out: 2 cells measured on another base model, not yet re-run on this one: salun (2)." in text

    monkeypatch.setattr(cli, "base_model_sha256", lambda model: "third-weights")
    assert readme.main(["--bench", str(folder), "--readme", str(path), "--assets", str(tmp_path / "a")]) == 2


def test_a_model_that_is_not_on_this_machine_is_refused(tmp_path, capsys):
    """A mistyped --model must not silently turn the base-model filter off."""
    path = tmp_path / "README.md"
    path.write_text(readme.START + "\n" + readme.END + "\n")
    assert readme.main(["--bench", str(bench(tmp_path)), "--readme", str(path), "--assets", str(tmp_path / "a"),
                        "--model", str(tmp_path / "no-such-model")]) == 2
    err = capsys.readouterr().err
    assert "is not on this machine" in err and "Traceback" not in err
    assert path.read_text() == readme.START + "\n" + readme.END + "\n"
