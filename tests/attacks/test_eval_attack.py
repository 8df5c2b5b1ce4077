"""``erase eval --attack``: the robustness column, on the same target prompts, seeds and judge as UA."""

import json

import pytest

import erase.cli


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_folder):
    """A 1-step ESD artifact of the tiny pipeline and an untrained mini-canvas judge."""
    from eval.canvas import mini_canvas
    from eval.judges.canvas_judge import CanvasJudge, JudgeConfig, JudgeNet

    root = tmp_path_factory.mktemp("evalattack")
    artifact = str(root / "no-stripes")
    assert erase.cli.main(["-q", "run", "esd", "--model", tiny_folder, "--concept", "stripes", "--out", artifact,
                           "--steps", "1", "--ddim-steps", "2", "--device", "cpu"]) == 0
    world, config = mini_canvas(), JudgeConfig(channels=(8, 16))
    judge = CanvasJudge(JudgeNet(config, 10, 10), config, world.objects, world.styles).save(root / "judge.safetensors")
    attack_config = root / "attack.yaml"
    attack_config.write_text("stages: 1\niterations: 1\n")
    return {"artifact": artifact, "judge": str(judge), "attack_config": str(attack_config)}


def eval_argv(files, out, *extra):
    return ["-q", "eval", "--model", files["artifact"], "--target", "stripes", "--out", str(out), "--judge", files["judge"],
            "--steps", "2", "--seeds", "1", "--limit", "20", "--metrics", "ua", "--no-cache", "--bootstrap", "50", *extra]


def test_eval_attack_adds_pre_asr_equal_to_100_minus_ua(files, tmp_path, capsys):
    out = tmp_path / "eval"
    code = erase.cli.main(eval_argv(files, out, "--attack", "unlearndiffatk", "--attack-config", files["attack_config"]))
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "eval.json").read_text())
    robustness = record["robustness"]
    assert robustness["attack"] == "unlearndiffatk" and robustness["budget"]["stages"] == 1
    assert robustness["counts"]["evaluated"] == 2  # --limit 20 spread over 10 styles: 2 stripes images
    assert robustness["pre_asr"] == pytest.approx(100 - record["metrics"]["ua"])  # same images, same judge
    assert robustness["pre_asr"] <= robustness["asr"] <= 100
    assert "Robustness (unlearndiffatk" in (out / "report.md").read_text()


def test_eval_attack_refuses_an_unknown_attack_before_loading(files, tmp_path, capsys):
    code = erase.cli.main(eval_argv(files, tmp_path / "eval", "--attack", "nope"))
    err = capsys.readouterr().err
    assert code == 2 and "unknown attack 'nope'" in err and "Traceback" not in err
