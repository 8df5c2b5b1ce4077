"""``erase bench --timing-only`` on tiny models: a row per method, skips named with the reason, projection = s/it x official iterations."""

from __future__ import annotations

import json

import pytest
import torch

import erase
from erase.cli import main
from erase.official import schedule
from eval import scale
from eval.bench import cost


@pytest.fixture(autouse=True)
def tiny_sd15(monkeypatch):
    """SD 1.5's place taken by the tiny random pipeline (meta device included: the memory estimate)."""
    from tests.tiny import tiny_pipeline

    monkeypatch.setattr(scale, "sd15_pipeline", lambda device, dtype=torch.float32: tiny_pipeline().to(device, dtype))


def estimates() -> dict[str, float]:
    out = {}
    for name in erase.available():
        official = schedule(erase.get_method(name))
        out[name] = cost.estimate_gb(name, {**official.options, **official.timing}, official)["estimate_gb"]
    return out


def test_every_method_gets_a_row_the_largest_is_skipped_with_its_reason_and_projection_is_per_iteration_times_official(tmp_path):
    sizes = estimates()
    *_, second, largest = sorted(sizes.values())
    assert largest > second, sizes  # SFD holds three UNets' worth: the budget can fall between
    budget = (largest + second) / 2
    assert main(["-q", "bench", "--timing-only", "--timing-iterations", "3", "--device", "cpu",
                 "--memory-budget-gb", f"{budget}", "--out", str(tmp_path)]) == 0

    summary = json.loads((tmp_path / "timing.json").read_text())
    rows = {r["method"]: r for r in summary["rows"]}
    assert list(rows) == list(erase.available())
    skipped = [m for m, r in rows.items() if r["status"] == "skipped"]
    assert skipped == [max(sizes, key=sizes.get)]
    assert "budget" in rows[skipped[0]]["reason"] and f"{sizes[skipped[0]]:.1f} GB" in rows[skipped[0]]["reason"]
    table = (tmp_path / "timing.md").read_text()
    assert f"- {skipped[0]} skipped: needs at least" in table
    for name, row in rows.items():
        assert any(line.startswith(f"| {name} |") for line in table.splitlines()), name
        assert row["official_iterations"] == schedule(erase.get_method(name)).iterations
        if row["status"] == "timed":
            assert row["seconds_per_iteration"] > 0 and row["peak_memory_gb"] > 0 and row["memory_kind"] == "RSS"
            assert row["projected_seconds"] == pytest.approx(row["seconds_per_iteration"] * row["official_iterations"], abs=0.05)
    assert rows["esd"]["paper"]["seconds"] == 6163 and rows["salun"]["paper"]["memory_gb"] == 30.8
    assert "| 6,163 | 17.8 |" in table


def test_a_method_without_an_official_schedule_is_skipped_by_name(tmp_path, monkeypatch):
    from erase import official

    monkeypatch.setattr(official, "_PENDING", {})
    assert main(["-q", "bench", "--timing-only", "--methods", "esd", "--device", "cpu", "--out", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "timing.json").read_text())["rows"][0]
    assert row["status"] == "skipped" and "no official schedule" in row["reason"]
    assert "- esd skipped: no official schedule" in (tmp_path / "timing.md").read_text()


def test_bad_iteration_count_is_a_one_line_error(tmp_path, capsys):
    assert main(["bench", "--timing-only", "--timing-iterations", "0", "--out", str(tmp_path)]) == 2
    assert "--timing-iterations must be at least 1" in capsys.readouterr().err
