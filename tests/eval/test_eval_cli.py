"""``erase eval`` end to end on a tiny artifact, and every bad input as one line and exit code 2."""

import json
import os

import pytest

import erase.cli
import pipelines.cache as cache_module
from pipelines.generation import generate

EVAL_KEYS = {"schema", "target", "kind", "metrics", "ci", "per_class", "settings", "cost", "base"}


@pytest.fixture(autouse=True)
def eval_command(monkeypatch):
    """Register ``erase eval`` for these tests if erase/cli has not listed it yet."""
    if ("eval", "eval.cli") not in erase.cli.COMMANDS:
        monkeypatch.setattr(erase.cli, "COMMANDS", [*erase.cli.COMMANDS, ("eval", "eval.cli")])


def cli(capsys, *argv):
    code = erase.cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def world_files(tmp_path_factory, tiny_folder):
    """A 1-step ESD artifact of the tiny pipeline, an untrained judge and an untrained mini CLIP."""
    from eval.canvas import mini_canvas
    from eval.clip import create_mini_clip, save_mini_clip
    from eval.judges.canvas_judge import CanvasJudge, JudgeConfig, JudgeNet

    root = tmp_path_factory.mktemp("evalcli")
    artifact = str(root / "no-stripes")
    assert erase.cli.main(["-q", "run", "esd", "--model", tiny_folder, "--concept", "stripes", "--out", artifact,
                           "--steps", "1", "--ddim-steps", "2", "--device", "cpu"]) == 0
    world = mini_canvas()
    config = JudgeConfig(channels=(8, 16))
    judge = str(CanvasJudge(JudgeNet(config, 10, 10), config, world.objects, world.styles).save(root / "judge.safetensors"))
    clip = str(root / "clip")
    save_mini_clip(create_mini_clip(), clip, {})
    return {"artifact": artifact, "judge": judge, "clip": clip, "root": root}


def common(files, out, *extra):
    return ["-q", "eval", "--model", files["artifact"], "--target", "Striped", "--out", str(out), "--judge", files["judge"],
            "--clip-model", files["clip"], "--steps", "2", "--seeds", "2", "--bootstrap", "200", *extra]


def test_eval_end_to_end_writes_a_record_a_table_and_a_grid(capsys, world_files, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cache_module, "generate", lambda *a, **k: calls.append(len(a[1])) or generate(*a, **k))
    monkeypatch.setenv("ERASE_CACHE", str(tmp_path / "cache"))
    before = sorted(os.listdir(world_files["artifact"]))
    code, _, err = cli(capsys, *common(world_files, tmp_path / "out"))
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "out")) == ["eval.json", "grid.png", "report.md"]
    record = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert set(record) == EVAL_KEYS and record["schema"] == 1
    assert record["target"] == "stripes" and record["kind"] == "style"
    assert set(record["metrics"]) == {"ua", "ira", "cra", "fid", "clip"} and all(v is not None for v in record["metrics"].values())
    for name in ("ua", "ira", "cra"):
        lo, hi = record["ci"][name]
        assert 0 <= lo <= record["metrics"][name] <= hi <= 100
    settings = record["settings"]
    assert settings["seeds"] == [0, 1] and settings["steps"] == 2 and settings["sampler"] == "ddim" and settings["images"] == 200
    assert len(settings["prompts"]) == 100 and settings["judge"]["sha256"] and settings["clip"]["backbone"] == "mini-canvas-clip"
    assert settings["fid"]["reference_images"] == 90 * 10 and settings["fid"]["generated_images"] == 180  # target left out
    assert record["base"]["metrics"]["ua"] is not None and settings["base_model"]
    assert record["cost"]["erasure"]["train_seconds"] >= 0 and record["cost"]["artifact_folder_mb"] > 0
    assert "mini-canvas-clip" in (tmp_path / "out" / "report.md").read_text()
    assert sorted(os.listdir(world_files["artifact"])) == before  # never writes into the artifact
    assert sum(calls) == 400  # base and erased model, 200 images each
    # Again: the base model's generations come from the cache; only the erased model is drawn.
    calls.clear()
    code, _, err = cli(capsys, *common(world_files, tmp_path / "out", "--overwrite"))
    assert code == 0, err
    assert sum(calls) == 200
    assert json.loads((tmp_path / "out" / "eval.json").read_text())["base"]["metrics"] == record["base"]["metrics"]


def test_limit_and_metric_subset(capsys, world_files, tmp_path):
    code, _, err = cli(capsys, *common(world_files, tmp_path / "quick", "--limit", "20", "--metrics", "ua,ira", "--no-cache"))
    assert code == 0, err
    record = json.loads((tmp_path / "quick" / "eval.json").read_text())
    assert record["settings"]["images"] == 20 and record["settings"]["limit"] == 20
    assert record["metrics"]["cra"] is None and record["metrics"]["fid"] is None and set(record["ci"]) == {"ua", "ira"}


def assert_one_line_error(code, err, fragment):
    lines = [line for line in err.strip().splitlines() if line.startswith("erase: error")]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("change, fragment", [
    (["--target", "spirals"], "Unknown concept 'spirals'"),
    (["--model", "/does/not/exist"], "does not exist"),
    ("existing-out", "already exists"),
    (["--seeds", "three"], "--seeds"),
    (["--seeds", "0"], "at least 1"),
    (["--metrics", "ua,psnr"], "--metrics"),
    (["--limit", "0"], "--limit"),
    ("out-inside-model", "inside the model folder"),
    (["--judge", "/no/judge.safetensors"], "No judge weights"),
    (["--clip-model", "/no/clip"], "--clip-model"),
    (["--prompts", "/no/prompts.csv", "--target", "nudity"], "--prompts"),
    (["--benchmark", "unlearncanvas", "--target", "Van Gogh"], "--style-classifier"),
])
def test_bad_input_is_one_clear_line(capsys, world_files, tmp_path, change, fragment):
    out = tmp_path / "out"
    argv = common(world_files, out)
    if change == "existing-out":
        out.mkdir()
    elif change == "out-inside-model":
        argv += ["--out", os.path.join(world_files["artifact"], "eval")]
    else:
        argv += change
    code, _, err = cli(capsys, *argv)
    assert_one_line_error(code, err, fragment)
    assert not os.path.exists(os.path.join(world_files["artifact"], "eval"))


def test_prompt_list_judged_by_nudenet(capsys, world_files, tmp_path):
    pytest.importorskip("nudenet", reason="NudeNet is the optional extra [nudity]")
    prompts = tmp_path / "i2p.csv"
    prompts.write_text("prompt,evaluation_seed,evaluation_guidance\na figure,42,7.5\na beach,7,\n")
    code, _, err = cli(capsys, "-q", "eval", "--model", world_files["artifact"], "--prompts", str(prompts), "--target", "nudity",
                       "--out", str(tmp_path / "nudity"), "--steps", "2", "--no-cache", "--nudenet-threshold", "0.6")
    assert code == 0, err
    record = json.loads((tmp_path / "nudity" / "eval.json").read_text())
    assert record["kind"] == "nudity" and record["settings"]["images"] == 2 and record["settings"]["guidance"] == [5.0, 7.5]
    assert record["settings"]["judge"]["threshold"] == 0.6 and record["metrics"]["ua"] == 100 - record["per_class"]["nudity_rate"]


def test_shipped_mini_canvas_files_are_the_defaults(capsys, world_files, tmp_path, monkeypatch):
    """When pipelines/mini_canvas/ exists, `erase eval` needs no judge, CLIP or sampler flags."""
    import shutil

    import pipelines.shipped

    shipped = tmp_path / "mini_canvas"
    shipped.mkdir()
    shutil.copy(world_files["judge"], shipped / "judge.safetensors")
    shutil.copytree(world_files["clip"], shipped / "clip")
    (shipped / "manifest.json").write_text(json.dumps({"sampling": {"steps": 2, "guidance": 4.0}}))
    monkeypatch.setattr(pipelines.shipped, "_MINI_CANVAS_DIR", str(shipped))
    code, _, err = cli(capsys, "-q", "eval", "--model", world_files["artifact"], "--concept", "star", "--out",
                       str(tmp_path / "out"), "--limit", "20", "--no-cache")
    assert code == 0, err
    settings = json.loads((tmp_path / "out" / "eval.json").read_text())["settings"]
    assert settings["steps"] == 2 and settings["guidance"] == 4.0 and settings["seeds"] == [0]
    assert settings["judge"]["path"] == str(shipped / "judge.safetensors") and settings["clip"]["backbone"] == "mini-canvas-clip"
