"""The CLI in-process: every bad input is one clear line and exit code 2, never a traceback."""

import json
import os

import pytest
from diffusers import StableDiffusionPipeline

from erase.cli import main


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, fragment):
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l.startswith("erase: error")]
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err


def test_methods_lists_esd(capsys):
    code, out, _ = cli(capsys, "methods")
    lines = out.splitlines()
    assert code == 0 and any(line.startswith("esd ") and "Erased Stable Diffusion" in line for line in lines)
    from erase import available

    assert sorted(line.split()[0] for line in lines if line.strip()) == sorted(available())


def test_run_writes_an_artifact_plain_diffusers_loads(capsys, tiny_folder, tmp_path):
    out_dir = str(tmp_path / "no-star")
    code, _, err = cli(capsys, "-q", "run", "esd", "--model", tiny_folder, "--concept", "star", "--out", out_dir, "--steps", "2", "--ddim-steps", "3", "--device", "cpu")
    assert code == 0, err
    assert sorted(os.listdir(out_dir)) == ["README.md", "erasure.json", "erasure.safetensors", "pipeline"]
    record = json.load(open(os.path.join(out_dir, "erasure.json")))
    assert record["method"] == "esd" and record["concepts"] == ["star"] and record["base"]["model"] == tiny_folder
    assert record["config"]["steps"] == 2 and record["config"]["ddim_steps"] == 3
    assert set(record["cost"]) == {"train_seconds", "wall_seconds", "data_seconds", "peak_rss_mb", "peak_gpu_mb", "artifact_mb"}
    StableDiffusionPipeline.from_pretrained(os.path.join(out_dir, "pipeline"), local_files_only=True)
    assert not any(name.startswith(".") for name in os.listdir(tmp_path))  # no checkpoint or temp left


def test_dry_run_reports_and_trains_nothing(capsys, tiny_folder, tmp_path):
    code, out, _ = cli(capsys, "-q", "run", "esd", "--model", tiny_folder, "--concept", "star", "--dry-run", "--params", "esd-u")
    plan = json.loads(out)
    assert code == 0 and plan["components"] == ["unet"] and 0 < plan["trained_parameters"] < plan["total_parameters"]
    assert os.listdir(tmp_path) == []


def test_config_file_and_flags(capsys, tiny_folder, tmp_path):
    config = tmp_path / "esd.yaml"
    config.write_text("lr: 2.0e-5\nnegative_guidance: 2\nsteps: 1\n")
    code, out, _ = cli(capsys, "-q", "run", "esd", "--model", tiny_folder, "--concept", "star", "--config", str(config), "--steps", "3", "--dry-run")
    plan = json.loads(out)
    assert code == 0 and plan["config"]["lr"] == 2e-5 and plan["config"]["negative_guidance"] == 2.0 and plan["steps"] == 3


def test_unknown_method(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "nope", "--concept", "x"])
    assert e.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "setup, argv, fragment",
    [
        (None, ["--model", "/does/not/exist"], "does not exist"),
        ("corrupt", [], "could not load the diffusers folder"),
        (None, ["--concept", ""], "no concept"),
        ("exists", [], "already exists"),
        ("out-under-file", [], "is a file, not a folder"),
        ("unknown-key", [], "unknown config key 'learning_rate'"),
        ("string-float", [], "YAML reads 1e-5 as a string"),
        ("bad-yaml", [], "could not be parsed"),
        (None, ["--params", "everything"], "unknown parameter preset"),
        (None, ["--device", "cuda:7"], "--device"),
    ],
)
def test_bad_input_is_one_clear_line(capsys, tiny_folder, tmp_path, setup, argv, fragment):
    import shutil

    model, out = tiny_folder, str(tmp_path / "out")
    extra = []
    if setup == "corrupt":
        model = str(tmp_path / "corrupt")
        shutil.copytree(tiny_folder, model)
        with open(os.path.join(model, "unet", "diffusion_pytorch_model.safetensors"), "r+b") as f:
            f.truncate(64)
    elif setup == "exists":
        os.makedirs(out)
    elif setup == "out-under-file":  # refused before any training, not after it
        (tmp_path / "notes.txt").write_text("a file where a folder should be")
        out = str(tmp_path / "notes.txt" / "out")
    elif setup in ("unknown-key", "string-float", "bad-yaml"):
        text = {"unknown-key": "learning_rate: 0.1\n", "string-float": "lr: 1e-5\n", "bad-yaml": "lr: [1,\n"}[setup]
        (tmp_path / "c.yaml").write_text(text)
        extra = ["--config", str(tmp_path / "c.yaml")]
    args = ["run", "esd", "--model", model, "--concept", "star", "--out", out, "--steps", "1", *extra, *argv]
    # later flags win in argparse, so argv overrides the defaults above
    code, _, err = cli(capsys, *args)
    assert_one_line_error(code, err, fragment)
