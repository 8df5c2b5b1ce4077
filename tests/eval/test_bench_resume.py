"""``erase bench`` as a whole, with the erasure and the two subcommands faked (no model runs):
resume after a kill, what a changed config or attack budget redoes, and two processes
splitting the cells."""

import hashlib
import json
import os
import threading
import time

import pytest

import eval.bench.cell as cell_module
import pipelines
from eval.bench import cli
from pipelines import sharding
from pipelines.errors import ConfigError

TARGETS = "stripes,dots,star,heart"


def _number(*parts) -> float:
    """A fixed 'measurement' per cell, so that two runs of the same cell agree and cells differ."""
    return round(int(hashlib.sha256(repr(parts).encode()).hexdigest()[:6], 16) % 1000 / 10, 1)


def _write(path, record):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f)


class Fakes:
    """Stand-ins for the erasure, ``erase eval`` and ``erase attack``, counting every call."""

    def __init__(self, kill_eval_of=None):
        self.calls = []
        self.kill_eval_of = kill_eval_of
        self.lock = threading.Lock()
        self.seconds = {}  # method -> how long its fake erasure takes

    def erase(self, cell, folder, pipe, progress):
        with self.lock:
            self.calls.append(("erase", cell.method, cell.target, threading.current_thread().name))
        time.sleep(self.seconds.get(cell.method, 0.0))
        lr = cell.config.get("lr")
        _write(os.path.join(folder, "artifact", "erasure.json"),
               {"lr": lr, "cost": {"train_seconds": 5.0, "wall_seconds": 6.0, "peak_rss_mb": 100.0, "artifact_mb": 0.5}})

    def command(self, module, argv, progress):
        out = argv[argv.index("--out") + 1]
        folder = os.path.dirname(out)
        target = argv[argv.index("--target" if module == "eval.cli" else "--concept") + 1]
        with open(os.path.join(folder, "artifact", "erasure.json"), encoding="utf-8") as f:
            lr = json.load(f)["lr"]
        with self.lock:
            self.calls.append((module, target))
        if module == "eval.cli":
            if target == self.kill_eval_of:
                self.kill_eval_of = None
                raise KeyboardInterrupt  # the bench is killed in the middle of this cell, after its erasure
            metrics = {k: _number(k, target, lr) for k in ("ua", "ira", "cra", "fid", "clip")}
            _write(os.path.join(out, "eval.json"), {"metrics": metrics, "ci": {}, "cost": {"eval_seconds": 2.0},
                                                    "per_class": {"target_predicted_as": {target: 6, "crescent": 4}}})
        else:
            stages = argv[argv.index("--stages") + 1]
            pre = _number("pre", target, lr)
            _write(os.path.join(out, "attack.json"),
                   {"attack": argv[1], "pre_asr": pre, "asr": max(pre, _number("asr", target, lr, stages)),
                    "budget": {"stages": int(stages)}, "seconds_per_prompt": 1.0, "counts": {"evaluated": 10},
                    "cost": {"wall_seconds": 10.0}})


@pytest.fixture
def fakes(monkeypatch):
    made = Fakes()
    monkeypatch.setattr(cell_module, "_erase", made.erase)
    monkeypatch.setattr(cell_module, "command", made.command)
    monkeypatch.setattr(cell_module, "machine", lambda: {"cpu": "test", "cores": 2, "threads": 1, "gpu": None})
    monkeypatch.setattr(pipelines, "load_pipeline", lambda *a, **k: None)
    return made


def bench(out, *extra):
    import argparse

    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "--methods", "esd,salun", "--targets", TARGETS, "--out", str(out),
                              "--attack", "--attack-targets", "dots,star", *extra])
    args.quiet = True
    return cli.run(args)


def outputs(out):
    with open(out / "leaderboard.json", encoding="utf-8") as f:
        summary = json.load(f)
    summary.pop("seconds_this_run")
    return summary, (out / "leaderboard.md").read_text(), (out / "retain_vs_forget.png").read_bytes(), (out / "asr.png").read_bytes()


def test_resume_after_a_kill_mid_cell_gives_the_same_leaderboard(fakes, tmp_path):
    assert bench(tmp_path / "whole") == 0
    fakes.calls.clear()
    fakes.kill_eval_of = "heart"
    with pytest.raises(KeyboardInterrupt):
        bench(tmp_path / "killed")
    assert not (tmp_path / "killed" / "leaderboard.md").exists()
    before = list(fakes.calls)
    fakes.calls.clear()
    assert bench(tmp_path / "killed") == 0
    assert outputs(tmp_path / "killed") == outputs(tmp_path / "whole")
    erased_again = [c[1:3] for c in fakes.calls if c[0] == "erase"]
    assert ("esd", "heart") not in erased_again  # its erasure had finished before the kill: not trained again
    assert next(c for c in fakes.calls if c[0] == "eval.cli") == ("eval.cli", "heart")  # the killed cell resumes first
    assert not set(erased_again) & {c[1:3] for c in before if c[0] == "erase"}  # nothing finished is redone
    summary = outputs(tmp_path / "whole")[0]
    assert summary["cells"] == 8 and summary["leaderboard"]["esd"]["attacked"]["attacked"] == 2


def test_changed_config_redoes_only_its_cells_and_a_changed_attack_only_the_attacks(fakes, tmp_path):
    out = tmp_path / "bench"
    assert bench(out) == 0
    first = outputs(out)[0]
    fakes.calls.clear()
    assert bench(out) == 0
    assert fakes.calls == []  # everything finished: nothing runs

    config = tmp_path / "esd.yaml"
    config.write_text("lr: 0.002\n")
    assert bench(out, "--method-config", f"esd={config}") == 0
    assert sorted(c[1:3] for c in fakes.calls if c[0] == "erase") == [("esd", t) for t in sorted(TARGETS.split(","))]
    assert sorted(c[1] for c in fakes.calls if c[0] == "attacks.cli") == ["dots", "star"]  # esd's two, not salun's
    second = outputs(out)[0]
    assert second["leaderboard"]["salun"] == first["leaderboard"]["salun"]
    assert second["leaderboard"]["esd"] != first["leaderboard"]["esd"]

    fakes.calls.clear()
    assert bench(out, "--method-config", f"esd={config}", "--attack-stages", "3") == 0
    assert sorted(c[:2] for c in fakes.calls) == [("attacks.cli", t) for t in ("dots", "dots", "star", "star")]
    record = json.loads((out / "cells" / "salun" / "star" / "cell.json").read_text())
    assert record["robustness"]["budget"] == {"stages": 3}

    fakes.calls.clear()
    assert bench(out, "--method-config", f"esd={config}", "--attack-stages", "3", "--attack-targets", "dots") == 0
    assert fakes.calls == []  # fewer attacked targets: no work, star's finished attack stays in its record
    assert outputs(out)[0]["leaderboard"]["salun"]["attacked"]["attacked"] == 2


def test_a_record_from_before_the_drift_key_gets_it_from_its_eval_json_and_is_not_redone(fakes, tmp_path):
    out = tmp_path / "bench"
    assert bench(out) == 0
    path = out / "cells" / "esd" / "star" / "cell.json"
    record = json.loads(path.read_text())
    assert record["drift"]["seen_as"] == "crescent" and record["drift"]["share"] == 40.0
    del record["drift"]  # as cell.py wrote records before it kept the drift
    path.write_text(json.dumps(record))
    fakes.calls.clear()
    assert bench(out) == 0
    assert fakes.calls == []  # same key: the cell is not redone
    summary, table = outputs(out)[:2]
    assert summary["drift"]["esd"]["star"]["seen_as"] == "crescent"
    assert next(line for line in table.splitlines() if line.startswith("| esd | star |")).count("| crescent 40% |") == 1


def test_a_bad_attack_option_fails_before_any_cell_runs(fakes, tmp_path, capsys):
    with pytest.raises(ConfigError, match="attack-option") as error:
        bench(tmp_path / "bench", "--attack-option", "no_such_flag=1")
    assert "unrecognized arguments: --no-such-flag 1" in str(error.value)  # the message names the bad flag
    assert "usage:" not in capsys.readouterr().err  # and no argparse usage text comes before it
    assert fakes.calls == []


class FakeProcess:
    """accelerate's state as one of two processes sees it."""

    def __init__(self, index, barrier):
        self.num_processes, self.process_index, self.is_main_process = 2, index, index == 0
        self.barrier = barrier

    def wait_for_everyone(self):
        self.barrier.wait(timeout=60)


def test_two_processes_split_the_cells_without_overlap(fakes, monkeypatch, tmp_path):
    """Each process takes the next free cell: both get some of the slow ESD cells, which a
    contiguous split (the first half of the list to process 0) would give to one of them alone."""
    fakes.seconds = {"esd": 0.3}
    barrier, states, errors = threading.Barrier(2), threading.local(), []
    monkeypatch.setattr(sharding, "_accelerate_state", lambda: states.value)
    monkeypatch.setattr("eval.bench.plots.write_plots", lambda out, records: [])  # two threads drawing at once: not tested here

    def process(index):
        states.value = FakeProcess(index, barrier)
        try:
            bench(tmp_path / "bench")
        except Exception as error:  # noqa: BLE001 - any failure of a thread is reported below
            errors.append(error)

    threads = [threading.Thread(target=process, args=(i,), name=f"process{i}") for i in (0, 1)]
    threads[0].start()
    time.sleep(1.0)  # process 1 starts late: without the barrier, process 0 would finish cells before 1 plans its share
    threads[1].start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    cells = {0: set(), 1: set()}
    for _, method, target, thread in (c for c in fakes.calls if c[0] == "erase"):
        cells[int(thread[-1])].add((method, target))
    assert not cells[0] & cells[1]
    assert all(any(method == "esd" for method, _ in share) for share in cells.values())
    assert len(cells[0]) + len(cells[1]) == 8 == len([c for c in fakes.calls if c[0] == "erase"])
    assert json.loads((tmp_path / "bench" / "leaderboard.json").read_text())["cells"] == 8


def test_cells_recorded_on_other_base_weights_are_redone(fakes, monkeypatch, tmp_path, caplog):
    """The key names the base model; its weights hash, kept in each record, catches a retrained one.
    A record from before the hash was kept is reused, and the bench says so."""
    out = tmp_path / "bench"
    monkeypatch.setattr(cli, "base_model_sha256", lambda model: "weights-a")
    bench(out)
    assert json.loads((out / "cells" / "esd" / "star" / "cell.json").read_text())["model_sha256"] == "weights-a"
    fakes.calls.clear()
    bench(out)
    assert [c for c in fakes.calls if c[0] == "erase"] == []  # same weights: nothing redone
    legacy = out / "cells" / "esd" / "star" / "cell.json"
    legacy.write_text(json.dumps({k: v for k, v in json.loads(legacy.read_text()).items() if k != "model_sha256"}))
    monkeypatch.setattr(cli, "base_model_sha256", lambda model: "weights-b")
    with caplog.at_level("WARNING", logger="erase"):
        bench(out)
    erased = {c[1:3] for c in fakes.calls if c[0] == "erase"}
    assert len(erased) == 7 and ("esd", "star") not in erased
    assert "1 finished cells" in caplog.text and "--rerun" in caplog.text


def test_the_weights_hash_follows_the_files(tmp_path):
    from pipelines.fingerprint import weights_sha256
    from pipelines.loading import local_weights

    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "w.safetensors").write_bytes(b"one")
    (tmp_path / "model_index.json").write_text("{}")
    first = weights_sha256(local_weights(str(tmp_path)))
    (tmp_path / "model_index.json").write_text('{"changed": "not weights"}')
    assert weights_sha256(str(tmp_path)) == first
    (tmp_path / "unet" / "w.safetensors").write_bytes(b"two")
    assert weights_sha256(str(tmp_path)) != first
    assert local_weights("owner/some-hub-model") is None and local_weights("mini-canvas").endswith("pipeline")


def test_records_kept_elsewhere_resume_a_bench_whose_folder_is_gone(fakes, tmp_path):
    """A session ends and takes ``--out`` with it: the next one resumes from ``--records`` alone,
    runs only what the records lack, and writes the same leaderboard."""
    records = tmp_path / "records"
    assert bench(tmp_path / "first", "--records", str(records)) == 0
    kept = sorted(p.relative_to(records).as_posix() for p in records.rglob("*") if p.is_file())
    assert len(kept) == 8 and all(p.endswith("/cell.json") for p in kept)  # the records only, no artifact

    (records / "cells" / "salun" / "dots" / "cell.json").unlink()  # this cell never finished in the first session
    fakes.calls.clear()
    assert bench(tmp_path / "second", "--records", str(records)) == 0
    assert sorted(c[:3] for c in fakes.calls if c[0] == "erase") == [("erase", "salun", "dots")]
    assert outputs(tmp_path / "second") == outputs(tmp_path / "first")
    assert (records / "cells" / "salun" / "dots" / "cell.json").exists()  # kept once it finished

    fakes.calls.clear()
    assert bench(tmp_path / "third", "--records", str(records), "--attack-stages", "3") == 0
    attacked = sorted(c[1] for c in fakes.calls if c[0] == "attacks.cli")
    assert attacked == ["dots", "dots", "star", "star"]  # a changed attack: restored cells have no artifact, so
    assert len([c for c in fakes.calls if c[0] == "erase"]) == 4  # the attacked ones are erased again first
    record = json.loads((records / "cells" / "esd" / "star" / "cell.json").read_text())
    assert record["robustness"]["budget"] == {"stages": 3}  # and the new record replaces the kept one


def test_finished_records_replace_the_stale_cells_of_an_old_bench_folder(fakes, tmp_path):
    """A local ``--out`` last run under older defaults, records finished elsewhere under today's:
    nothing is trained again, and the stale cells are moved aside, not deleted."""
    config = tmp_path / "esd.yaml"
    config.write_text("lr: 0.002\n")
    old, records = tmp_path / "old", tmp_path / "records"
    assert bench(old) == 0  # the old defaults
    assert bench(tmp_path / "elsewhere", "--method-config", f"esd={config}", "--records", str(records)) == 0
    (records / "cells" / "esd" / "heart" / "cell.json").unlink()  # not finished elsewhere either
    fakes.calls.clear()
    assert bench(old, "--method-config", f"esd={config}", "--records", str(records)) == 0
    assert [c[1:3] for c in fakes.calls if c[0] == "erase"] == [("esd", "heart")]
    assert outputs(old) == outputs(tmp_path / "elsewhere")
    aside = old / "superseded"
    stale = json.loads((aside / "esd" / "star.1" / "cell.json").read_text())
    assert stale["config"].get("lr") != 0.002 and (aside / "esd" / "star.1" / "artifact").is_dir()
    assert not (aside / "esd" / "heart.1").exists()  # redone in place, as any stale cell
    assert not (aside / "salun").exists()  # finished as planned: its own, kept
    assert sorted(p.name for p in (old / "cells" / "esd").iterdir()) == sorted(TARGETS.split(","))  # readers see no stale cell


def test_records_in_the_bench_folder_itself_are_refused(fakes, tmp_path):
    with pytest.raises(ConfigError, match="folder of its own"):
        bench(tmp_path / "bench", "--records", str(tmp_path / "bench"))
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        bench(tmp_path / "bench", "--records", str(tmp_path / "file"))
    assert fakes.calls == []  # refused before any cell ran
