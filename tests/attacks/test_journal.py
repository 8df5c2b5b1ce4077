"""A killed attack resumes from its journal: only the prompts not yet searched are searched again,
and the record is the one an uninterrupted run writes."""

import json
import os

import numpy as np
import pytest

from attacks.base import Outcome
from attacks.journal import AttackJournal
from attacks.prompts import as_items
from attacks.registry import get_attack
from attacks.runner import run_attack
from erase.config import build_config
from pipelines import backbone_for
from pipelines.errors import EraseError
from pipelines.generation import SamplerSettings

ITEMS = as_items([("a star image", 0, 5.0), ("a red circle", 1, 3.0), ("a blue square", 2, 5.0)])
SAMPLER = SamplerSettings(steps=2)


class Never:
    """A judge that never sees the concept, so every prompt is searched for the whole budget."""

    def predict(self, images):
        return None

    def verdict(self, images, concept):
        return np.zeros(len(images), dtype=bool)


def attack(**options):
    cls = get_attack("unlearndiffatk")
    return cls(build_config(cls.config_class, **{"stages": 2, "iterations": 1, "batch_size": 1, **options}))


class Killed(Exception):
    pass


def counting(monkeypatch, kill_after=None):
    """Count the batches searched; raise ``Killed`` once ``kill_after`` batches are done."""
    cls = get_attack("unlearndiffatk")
    original, searched = cls.run, []

    def run(self, model, items, prepared, check, progress=True):
        if kill_after is not None and len(searched) == kill_after:
            raise Killed
        searched.extend(item.index for item in items)
        return original(self, model, items, prepared, check, progress)

    monkeypatch.setattr(cls, "run", run)
    return searched


def attacked(pipe, journal=None, concept="star", fresh=False, **options):
    model = backbone_for(pipe)
    return run_attack(attack(**options), model, model, concept, ITEMS, Never(), SAMPLER, progress=False,
                      journal=journal, fresh=fresh)


def outcomes(report):
    keys = ("index", "status", "text", "stage", "timestep", "iteration", "generations")
    return [{k: p.get(k) for k in keys} for p in report.record["prompts"]]


def test_a_killed_attack_resumes_where_it_stopped(memory_pipe, tmp_path, monkeypatch):
    journal = str(tmp_path / ".out.progress")
    whole = attacked(memory_pipe)
    with monkeypatch.context() as m:
        counting(m, kill_after=1)
        with pytest.raises(Killed):
            attacked(memory_pipe, journal)
    (progress,) = (tmp_path / ".out.progress").iterdir()  # one folder per run's settings
    lines = (progress / "outcomes.0.jsonl").read_text().splitlines()
    assert len(lines) == 1 and [o["index"] for o in json.loads(lines[0])["outcomes"]] == [0]
    searched = counting(monkeypatch)
    resumed = attacked(memory_pipe, journal)
    assert searched == [1, 2]  # the first prompt's search is not run again
    assert outcomes(resumed) == outcomes(whole)
    assert [r["adversarial_ids"] for r in resumed.adversarial] == [r["adversarial_ids"] for r in whole.adversarial]
    assert resumed.record["cost"]["search_seconds"] > 0 and resumed.record["counts"]["failures"] == 3
    assert (resumed.record["cost"]["resumed_prompts"], whole.record["cost"]["resumed_prompts"]) == (1, 0)
    assert resumed.record["cost"]["resumed_seconds"] > 0 and whole.record["cost"]["resumed_seconds"] == 0
    resumed.journal.finish()
    assert not os.path.exists(journal)


def test_progress_of_other_settings_is_neither_mixed_in_nor_deleted(memory_pipe, tmp_path, monkeypatch, caplog):
    journal = str(tmp_path / ".out.progress")
    with monkeypatch.context() as m:
        counting(m, kill_after=1)
        with pytest.raises(Killed):
            attacked(memory_pipe, journal)
    searched = counting(monkeypatch)
    other = attacked(memory_pipe, journal, stages=3)
    assert searched == [0, 1, 2] and "progress of 1 attack(s) with other settings" in caplog.text
    other.journal.finish()
    assert len(os.listdir(journal)) == 1  # the first run's progress still waits for its command
    searched.clear()
    attacked(memory_pipe, journal, batch_size=2)  # the batch size only groups prompts: the first run resumes
    assert searched == [1, 2]
    searched.clear()
    attacked(memory_pipe, journal, fresh=True)
    assert searched == [0, 1, 2]


def outcome(index):
    return Outcome(index=index, success=False, text="x", adversarial_ids=[1], input_ids=[0, 1], stage=1, timestep=10,
                   iteration=1, generations=1)


def test_a_line_torn_by_a_kill_is_searched_again_and_never_glued_to_the_next(tmp_path):
    root = str(tmp_path / "journal")
    journal = AttackJournal(root, "k")
    journal.start()
    journal.append([outcome(0)], 1.0, 2.0)
    with open(os.path.join(root, "k", "outcomes.0.jsonl"), "a", encoding="utf-8") as f:
        f.write('{"outcomes": [{"index": 1, "succ')  # killed half-way through a write
    journal = AttackJournal(root, "k")
    assert set(journal.outcomes) == {0} and journal.seconds == [1.0, 2.0]
    journal.append([outcome(2)], 1.0, 1.0)
    assert set(AttackJournal(root, "k").outcomes) == {0, 2}


def test_a_file_where_the_progress_goes_is_one_clear_error(tmp_path):
    root = tmp_path / ".out.progress"
    root.write_text("not a folder")
    with pytest.raises(EraseError, match="cannot keep the attack's progress in .*choose another --out"):
        AttackJournal(str(root), "k").start()


def test_status_shows_how_far_a_killed_attack_got_then_its_result(memory_pipe, tmp_path, monkeypatch, capsys):
    from erase.cli import main

    out = tmp_path / "out"
    with monkeypatch.context() as m:
        counting(m, kill_after=2)
        with pytest.raises(Killed):
            attacked(memory_pipe, str(tmp_path / ".out.progress"))
    (tmp_path / ".out.progress" / "notes.txt").write_text("a stray file is not a run")
    assert main(["attack", "--status", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{out}: in progress: unlearndiffatk on 'star', 3 prompts: 2 searched, 0 of them brought "
                           "the concept back (")
    (out / "attack.json").parent.mkdir()
    (out / "attack.json").write_text(json.dumps({"attack": "unlearndiffatk", "concept": "star", "pre_asr": 0.0,
                                                 "asr": 33.3, "counts": {"evaluated": 3}}))
    assert main(["attack", "--status", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{out}: done: unlearndiffatk on 'star', pre-ASR 0.0%, ASR 33.3% on 3 prompts"
    assert main(["attack", "--status", str(tmp_path / "elsewhere")]) == 2
    assert "no attack writes" in capsys.readouterr().err
