"""The training-time command reads train seconds from each run's record and takes the median."""

import statistics

from eval.bench.timing import measure


def test_measure_times_every_run_of_a_method(tiny_folder):
    result = measure("fewshot", tiny_folder, ["stripes", "star"], 1, {"steps": 1, "epoch": 1})
    assert [r["concept"] for r in result["runs"]] == ["stripes", "star"]
    seconds = [r["train_seconds"] for r in result["runs"]]
    assert all(s > 0 for s in seconds)
    assert result["median_train_seconds"] == round(statistics.median(seconds), 3) and result["max_train_seconds"] == max(seconds)
