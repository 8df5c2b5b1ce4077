"""The training-time command reads train seconds from each run's record and takes the median."""

import statistics

from eval.bench.timing import measure


def test_measure_times_every_run_of_a_method(tiny_folder):
    result = measure("fewshot", tiny_folder, ["stripes", "star"], 1, {"steps": 1, "epoch": 1})
    assert [r["concept"] for r in result["runs"]] == ["stripes", "star"]
    seconds = [r["train_seconds"] for r in result["runs"]]
    assert all(s > 0 for s in seconds)
    assert result["median_train_seconds"] == round(statistics.median(seconds), 3) and result["max_train_seconds"] == max(seconds)


def test_the_judged_choice_counts_in_the_cost_per_concept(tiny_folder):
    result = measure("fewshot", tiny_folder, ["stripes"], 1, {"steps": 1, "probe_seeds": 1, "probe_steps": 2})
    run = result["runs"][0]
    assert run["select_seconds"] > 0  # no --epoch: the stopping rule probed the epochs
    assert result["median_train_and_select_seconds"] == round(run["train_seconds"] + run["select_seconds"], 3)
