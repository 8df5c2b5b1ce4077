"""``erase attack`` in-process: an attack end to end on tiny models, its replay, and every bad input
as one clear line with exit code 2."""

import json
import os

import numpy as np
import pytest

import attacks.replay
import attacks.setup
import erase.cli
from attacks.replay import replay
from pipelines import backbone_for, load_pipeline
from pipelines.errors import EraseError
from pipelines.generation import SamplerSettings, generate

RECORD_KEYS = {"schema", "attack", "concept", "pre_asr", "asr", "budget", "seconds_per_prompt", "settings", "prompts",
               "counts", "cost"}
BUDGET = ["--seeds", "1", "--limit", "4", "--steps", "2", "--stages", "2", "--iterations", "2"]


class ParityJudge:
    """A stand-in judge that reads the exact pixels: "yes" when the mean pixel's third decimal is even.

    Any change of prompt, seed or sampler flips it half the time, so a replay that does not
    regenerate the very same image disagrees.
    """

    def predict(self, images):
        return np.array([np.asarray(image, dtype=np.float64).mean() for image in images])

    def verdict(self, images, concept):
        return np.array([int(m * 1000) % 2 == 0 for m in self.predict(images)])


@pytest.fixture
def parity(monkeypatch):
    monkeypatch.setattr(attacks.setup, "build_judge", lambda kind, concept, **_: (ParityJudge(), {"kind": "parity"}))
    monkeypatch.setattr(attacks.replay, "judge_from_record", lambda info, device, path: ParityJudge())


def cli(capsys, *argv):
    code = erase.cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_folder):
    """A 1-step ESD artifact of the tiny pipeline (its UNet changed).

    The learning rate is pinned: the parity judge's verdicts depend on exact pixels, and this
    artifact is known to give the replay test at least one attack success to replay.
    """
    from erase import ESDConfig, erase

    root = tmp_path_factory.mktemp("attackcli")
    result = erase(load_pipeline(tiny_folder), ESDConfig(concepts=["stripes"], steps=1, ddim_steps=2, lr=1e-5),
                   model_name=tiny_folder, progress=False)
    artifact = result.save(str(root / "no-stripes"))
    return {"artifact": artifact, "root": root}


@pytest.fixture(scope="module")
def attacked(models, tmp_path_factory):
    """One attack run through the CLI with the parity judge: (out folder, record, rows, stderr)."""
    out = tmp_path_factory.mktemp("runs") / "attack"
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ERASE_CACHE", str(cache))
        mp.setattr(attacks.setup, "build_judge", lambda kind, concept, **_: (ParityJudge(), {"kind": "parity"}))
        before = sorted(os.listdir(models["artifact"]))
        code = erase.cli.main(["-q", "attack", "unlearndiffatk", "--model", models["artifact"], "--concept", "Striped",
                               "--out", str(out), "--device", "cpu", *BUDGET])
    assert code == 0
    assert sorted(os.listdir(models["artifact"])) == before  # never writes into the artifact
    assert os.listdir(cache / "answers")  # the base model's target images went to the shared image cache
    record = json.loads((out / "attack.json").read_text())
    rows = [json.loads(line) for line in (out / "adversarial_prompts.jsonl").read_text().splitlines()]
    return out, record, rows


def test_attack_writes_the_record_and_every_adversarial_prompt(attacked, models, tiny_folder):
    out, record, rows = attacked
    assert sorted(os.listdir(out)) == ["adversarial_prompts.jsonl", "attack.json"]
    assert os.listdir(out.parent) == ["attack"]  # the journal of its progress (.attack.progress) is gone
    assert set(record) == RECORD_KEYS and record["schema"] == 1 and record["concept"] == "stripes"
    settings = record["settings"]
    assert settings["attacked_components"] == ["unet"] and settings["model_kind"] == "artifact"
    assert settings["base_model"] == tiny_folder and settings["sampler"]["steps"] == 2
    assert record["budget"]["stages"] == 2 and record["budget"]["tokens"] == 3 and record["seconds_per_prompt"] > 0
    statuses = [p["status"] for p in record["prompts"]]
    counts = record["counts"]
    assert len(statuses) == 4 and counts["evaluated"] == 4
    assert record["pre_asr"] == 100 * counts["pre_successes"] / 4
    assert record["asr"] == 100 * (counts["pre_successes"] + counts["attack_successes"]) / 4 >= record["pre_asr"]
    searched = [p for p in record["prompts"] if p["status"] in ("attack_success", "failed")]
    assert [r["index"] for r in rows] == [p["index"] for p in searched]
    for row, prompt in zip(rows, searched):
        assert row["verdict"] == (prompt["status"] == "attack_success")
        assert row["text"].endswith(prompt["prompt"].lower().rstrip(".") + " .")  # prefix_k: tokens, then the prompt
        assert len(row["adversarial_ids"]) == 3 and row["input_ids"][1:4] == row["adversarial_ids"]
        assert row["timestep"] in (250, 750) and row["iteration"] == 2 * row["stage"]
    # pre-ASR is the judge on the erased model's own images of the clean prompts (eval's 100 - UA).
    erased = backbone_for(load_pipeline(models["artifact"]))
    prompts = record["prompts"]
    images = generate(erased, [p["prompt"] for p in prompts], [p["seed"] for p in prompts], SamplerSettings(steps=2))
    assert 100 * ParityJudge().verdict(images, "stripes").mean() == record["pre_asr"]


def test_replay_reproduces_every_persisted_success(attacked, capsys, parity):
    out, record, rows = attacked
    assert record["counts"]["attack_successes"] >= 1, "the run found no success: nothing to replay"
    code, stdout, err = cli(capsys, "-q", "attack", "--replay", str(out))
    assert code == 0, err
    result = json.loads(stdout)
    assert result["replayed"] == record["counts"]["attack_successes"] and result["agreement"] == 100.0


def test_replay_refuses_a_model_that_is_not_the_attacked_one(attacked, memory_pipe):
    out, _, _ = attacked
    with pytest.raises(EraseError, match="not the attacked one"):
        replay(str(out), model=memory_pipe, judge=ParityJudge())


def assert_one_line_error(code, err, fragment):
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.startswith("erase: error")]
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("setup, argv, fragment", [
    (None, ["--model", "/does/not/exist"], "does not exist"),
    ("plain", [], "pass --base"),
    ("not-csv", [], "not a readable CSV"),
    ("no-seed-column", [], "needs a header"),
    ("exists", [], "already exists"),
    ("inside", [], "inside the model folder"),
    (None, ["--concept", "unicorn"], "Unknown concept"),
    (None, ["--stages", "0"], "--stages"),
])
def test_bad_input_is_one_clear_line(capsys, models, tiny_folder, tmp_path, setup, argv, fragment):
    model, out, extra = models["artifact"], str(tmp_path / "out"), []
    if setup == "plain":
        model = tiny_folder
    elif setup in ("not-csv", "no-seed-column"):
        path = tmp_path / "prompts.csv"
        if setup == "not-csv":
            path.write_bytes(bytes(range(256)) * 4)
        else:
            path.write_text("prompt,evaluation_guidance\na star,7.5\n")
        extra = ["--prompts", str(path)]
    elif setup == "exists":
        os.makedirs(out)
    elif setup == "inside":
        out = os.path.join(model, "attack")
    args = ["attack", "unlearndiffatk", "--model", model, "--concept", "stripes", "--out", out, *extra, *argv]
    code, _, err = cli(capsys, *args)  # later flags win in argparse, so argv overrides the defaults above
    assert_one_line_error(code, err, fragment)


@pytest.mark.parametrize("argv, fragment", [
    (["attack", "nope", "--model", "mini-canvas"], "invalid choice: 'nope'"),
    (["attack", "unlearndiffatk", "--model", "m", "--concept", "c", "--out", "o", "--insertion", "add"], "invalid choice: 'add'"),
    (["attack", "unlearndiffatk", "--concept", "c", "--out", "o"], "--model"),
])
def test_bad_arguments_are_one_line(capsys, argv, fragment):
    with pytest.raises(SystemExit) as exit_info:
        erase.cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err


def test_no_attack_and_no_replay_is_one_line(capsys):
    code, _, err = cli(capsys, "attack")
    assert_one_line_error(code, err, "--replay DIR")
