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


def test_every_method_gets_a_row_the_largest_is_skipped_with_its_reason_and_projection_is_per_iteration_times_official(tmp_path, monkeypatch):
    sizes = estimates()  # builds and validates every method's official timing config
    *_, second, largest = sorted(sizes.values())
    assert largest > second, sizes  # SFD holds three UNets' worth: the budget can fall between
    timed = []

    def fake_measure(method, iterations, device, mixed_precision, options, gradient_checkpointing=False):  # the real one: next test (fits cost seconds each)
        timed.append(method)
        return {"seconds_per_iteration_median": 0.5 + len(timed), "timed_iterations": iterations - 2,
                "peak_gpu_mb": 0.0, "peak_rss_mb": 2048.0 * len(timed), "device": device}

    monkeypatch.setattr(scale, "measure", fake_measure)
    assert main(["-q", "bench", "--timing-only", "--timing-iterations", "3", "--device", "cpu",
                 "--memory-budget-gb", f"{(largest + second) / 2}", "--out", str(tmp_path)]) == 0

    summary = json.loads((tmp_path / "timing.json").read_text())
    rows = {r["method"]: r for r in summary["rows"]}
    assert list(rows) == list(erase.available())
    skipped = [m for m, r in rows.items() if r["status"] == "skipped"]
    assert skipped == [max(sizes, key=sizes.get)] and timed == [m for m in rows if m not in skipped]
    assert "budget" in rows[skipped[0]]["reason"] and f"{sizes[skipped[0]]:.1f} GB" in rows[skipped[0]]["reason"]
    table = (tmp_path / "timing.md").read_text()
    assert f"- {skipped[0]} skipped: needs at least" in table
    for i, name in enumerate(timed, 1):
        row = rows[name]
        assert row["official_iterations"] == schedule(erase.get_method(name)).iterations
        assert row["projected_seconds"] == pytest.approx((0.5 + i) * row["official_iterations"])
        assert row["peak_memory_gb"] == 2.0 * i and row["memory_kind"] == "RSS"
    for name in rows:
        assert any(line.startswith(f"| {name} |") for line in table.splitlines()), name
    assert rows["esd"]["paper"]["seconds"] == 6163 and rows["salun"]["paper"]["memory_gb"] == 30.8
    assert "| 6,163 | 17.8 |" in table


def test_real_timing_of_two_methods_on_tiny_models(tmp_path):
    assert main(["-q", "bench", "--timing-only", "--methods", "esd,fewshot", "--timing-iterations", "3", "--device", "cpu",
                 "--memory-budget-gb", "24", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "timing.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["esd", "fewshot"] and all(r["status"] == "timed" for r in rows)
    for row in rows:
        assert row["seconds_per_iteration"] > 0 and row["peak_memory_gb"] > 0
        assert row["projected_seconds"] == pytest.approx(row["seconds_per_iteration"] * row["official_iterations"], abs=0.05)


def test_a_method_without_an_official_schedule_is_skipped_by_name(tmp_path, monkeypatch):
    from erase.esd import ESD

    monkeypatch.setattr(ESD, "official", None)
    assert main(["-q", "bench", "--timing-only", "--methods", "esd", "--device", "cpu", "--out", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "timing.json").read_text())["rows"][0]
    assert row["status"] == "skipped" and "no official schedule" in row["reason"]
    assert "- esd skipped: no official schedule" in (tmp_path / "timing.md").read_text()


def test_bad_iteration_count_is_a_one_line_error(tmp_path, capsys):
    assert main(["bench", "--timing-only", "--timing-iterations", "0", "--out", str(tmp_path)]) == 2
    assert "--timing-iterations must be at least 1" in capsys.readouterr().err


def _fake_measure(seconds: float, interrupt_on: str | None = None, calls: list | None = None):
    def measure(method, iterations, device, mixed_precision, options, gradient_checkpointing=False):
        if calls is not None:
            calls.append((method, mixed_precision, gradient_checkpointing))
        if method == interrupt_on:
            raise KeyboardInterrupt  # the run killed while timing this method
        return {"seconds_per_iteration_median": seconds, "timed_iterations": iterations - 2,
                "peak_gpu_mb": 0.0, "peak_rss_mb": 1024.0, "device": device}
    return measure


def test_methods_timed_one_call_at_a_time_share_one_table_and_a_killed_run_keeps_its_finished_rows(tmp_path, monkeypatch):
    args = ["-q", "bench", "--timing-only", "--device", "cpu", "--memory-budget-gb", "24", "--out", str(tmp_path)]
    monkeypatch.setattr(scale, "measure", _fake_measure(1.0, interrupt_on="fewshot"))
    assert main([*args, "--methods", "salun,fewshot", "--timing-iterations", "6"]) == 130  # interrupted
    rows = json.loads((tmp_path / "timing.json").read_text())["rows"]
    assert [(r["method"], r["timing_iterations"]) for r in rows] == [("salun", 6)]

    monkeypatch.setattr(scale, "measure", _fake_measure(2.0))
    assert main([*args, "--methods", "fewshot,esd", "--timing-iterations", "4"]) == 0
    rows = {r["method"]: r for r in json.loads((tmp_path / "timing.json").read_text())["rows"]}
    assert list(rows) == [m for m in erase.available() if m in {"esd", "salun", "fewshot"}]  # registry order
    assert rows["salun"]["seconds_per_iteration"] == 1.0 and rows["salun"]["timing_iterations"] == 6
    assert rows["esd"]["seconds_per_iteration"] == 2.0 and rows["fewshot"]["timing_iterations"] == 4
    table = (tmp_path / "timing.md").read_text()
    assert "| salun | 1.000 | 6 |" in table and "| esd | 2.000 | 4 |" in table


def test_timings_of_another_device_in_out_are_refused_not_mixed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(scale, "measure", _fake_measure(1.0))
    args = ["bench", "--timing-only", "--methods", "esd", "--device", "cpu", "--memory-budget-gb", "24", "--out", str(tmp_path)]
    assert main(["-q", *args]) == 0
    summary = json.loads((tmp_path / "timing.json").read_text())
    assert summary["gradient_checkpointing"] is False
    (tmp_path / "timing.json").write_text(json.dumps({**summary, "device": "NVIDIA H200"}))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "holds timings on NVIDIA H200, mixed precision no, gradient checkpointing off" in err and "pass another --out" in err
    assert json.loads((tmp_path / "timing.json").read_text())["device"] == "NVIDIA H200"  # untouched

    del summary["gradient_checkpointing"]  # a table written before the setting existed: checkpointing was off
    (tmp_path / "timing.json").write_text(json.dumps(summary))
    assert main(["-q", *args, "--methods", "fewshot"]) == 0
    assert [r["method"] for r in json.loads((tmp_path / "timing.json").read_text())["rows"]] == ["esd", "fewshot"]


def test_precision_and_checkpointing_reach_the_timed_run_and_the_table(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(scale, "measure", _fake_measure(1.0, calls=calls))
    assert main(["-q", "bench", "--timing-only", "--methods", "salun", "--device", "cpu", "--memory-budget-gb", "24",
                 "--mixed-precision", "bf16", "--gradient-checkpointing", "--out", str(tmp_path)]) == 0
    assert calls == [("salun", "bf16", True)]
    assert "mixed precision bf16, gradient checkpointing on" in (tmp_path / "timing.md").read_text()
