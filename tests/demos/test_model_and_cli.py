"""Loading the demo: which artifacts it offers, which base it picks, and `erase demo`'s errors."""

from __future__ import annotations

import json
import logging
import os
import shutil

import pytest

import erase.cli
from demos.artifacts import run_folders
from demos.model import LiveErasing, load_demo_model
from pipelines.errors import BaseMismatchError


def other_base_copy(artifact: str, folder: str) -> str:
    """The artifact with a base fingerprint no model has: "made from another base"."""
    shutil.copytree(artifact, folder)
    path = os.path.join(folder, "erasure.json")
    with open(path) as f:
        record = json.load(f)
    record["base"]["fingerprint"] = "0" * 64
    with open(path, "w") as f:
        json.dump(record, f)
    return folder


@pytest.fixture
def runs(stripes_artifact, tmp_path) -> str:
    """A runs folder: the good artifact, one from another base, a half-written one, a stray file."""
    folder = tmp_path / "runs"
    folder.mkdir()
    shutil.copytree(stripes_artifact, folder / "a-good")
    other_base_copy(stripes_artifact, str(folder / "b-other-base"))
    (folder / "c-broken").mkdir()
    (folder / "c-broken" / "erasure.json").write_text("{}")
    (folder / "notes.txt").write_text("not a run")
    (folder / "d-no-record").mkdir()
    return str(folder)


def test_runs_offer_only_artifacts_of_the_base_and_say_what_they_skip(runs, tiny_folder, caplog):
    assert [os.path.basename(f) for f in run_folders(runs)] == ["a-good", "b-other-base", "c-broken"]
    with caplog.at_level(logging.WARNING):
        model = load_demo_model(tiny_folder, runs=[runs])
    assert list(model.saved) == ["a-good · esd: stripes"]
    assert "b-other-base" in caplog.text and "c-broken" in caplog.text


def test_the_base_defaults_to_the_one_the_artifact_records(demo_model, tiny_folder):
    assert demo_model.name == tiny_folder
    assert list(demo_model.saved) == ["no-stripes · esd: stripes"]


def test_a_stack_is_offered_like_any_artifact_and_draws_every_part(stripes_artifact, tiny_folder, tiny_pipe, tmp_path):
    """`erase stack`'s artifact holds the stripes erasure and a text-encoder edit: the demo applies both."""
    from demos import callbacks
    from tests.demos.conftest import STRIPES_PROMPT
    from tests.erase.test_stack import erasure

    text = str(tmp_path / "te-edit")
    erasure(tiny_pipe, tiny_folder, "te-full", "q_proj.weight", "advunlearn").save(text, pipeline=False)
    stacked = str(tmp_path / "stacked")
    assert erase.cli.main(["-q", "stack", stripes_artifact, text, "--out", stacked, "--no-pipeline"]) == 0
    model = load_demo_model(artifacts=[stripes_artifact, stacked])
    assert list(model.saved) == ["no-stripes · esd: stripes", "stacked · esd+advunlearn: stripes, star"]
    erased = {label: callbacks.compare(model, STRIPES_PROMPT, 0, label, {}, steps=4).erased.tobytes() for label in model.saved}
    assert len(set(erased.values())) == 2  # the stack's image carries its text-encoder edit too


def test_a_named_artifact_of_another_base_is_an_error(stripes_artifact, tiny_folder, tmp_path):
    other = other_base_copy(stripes_artifact, str(tmp_path / "other"))
    with pytest.raises(BaseMismatchError, match=r"--artifact .*other was made from the base"):
        load_demo_model(tiny_folder, artifacts=[other])


def test_live_erasing_is_off_by_default_except_on_mini_canvas(tiny_folder):
    model = load_demo_model(tiny_folder)
    assert model.live is None and model.saved == {}


def test_live_steps_default_to_the_methods_own_and_respect_the_cap():
    live = LiveErasing(methods=("esd",))
    assert live.default_steps("esd") == 200  # ESDConfig's CPU-sized default
    assert LiveErasing(methods=("esd",), max_steps=50).default_steps("esd") == 50
    assert LiveErasing(methods=("esd",), steps=30).default_steps("esd") == 30


# --- the command -------------------------------------------------------------------------


@pytest.fixture
def main():
    return erase.cli.main


def test_erase_help_lists_the_demo(capsys):
    with pytest.raises(SystemExit):
        erase.cli.main(["--help"])
    assert "demo" in capsys.readouterr().out


def test_dry_run_loads_everything_and_serves_nothing(main, capsys, stripes_artifact):
    assert main(["-q", "demo", "--artifact", stripes_artifact, "--dry-run"]) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--port", "0"], "--port 0 is not a port"),
        (["--live-max-steps", "0"], "--live-max-steps must be at least 1"),
        (["--live-steps", "20", "--live-max-steps", "10"], "--live-steps must be from 1 to --live-max-steps (10)"),
        (["--device", "cuda:7"], "--device cuda:7"),
        (["--artifact", "/no/such/run"], "'/no/such/run' is not an erasure artifact"),
        (["--runs", "/no/such/runs"], "--runs /no/such/runs is not a folder"),
        (["--model", "/no/such/model"], "model path '/no/such/model' does not exist"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(main, capsys, tiny_folder, argv, message):
    model = [] if "--model" in argv else ["--model", tiny_folder]
    code = main(["-q", "demo", *model, *argv, "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err, err


def test_live_config_is_checked_against_each_method(main, capsys, tiny_folder, tmp_path):
    good, bad_method, bad_value = (tmp_path / n for n in ("good.yaml", "bad-method.yaml", "bad-value.yaml"))
    good.write_text("esd: {lr: 1.0e-3, ddim_steps: 4}\n")
    bad_method.write_text("nope: {lr: 1.0e-3}\n")
    bad_value.write_text("esd: {lr: 1e-3}\n")  # YAML reads 1e-3 as a string
    base = ["-q", "demo", "--model", tiny_folder, "--live-erase", "--dry-run", "--live-config"]
    assert main([*base, str(good)]) == 0
    assert main([*base, str(bad_method)]) == 2 and "'nope' is not a method" in capsys.readouterr().err
    assert main([*base, str(bad_value)]) == 2 and "must be a number" in capsys.readouterr().err


def test_live_config_reaches_the_erasure(tmp_path):
    from demos.cli import _live_config

    path = tmp_path / "live.json"
    path.write_text('{"esd": {"ddim-steps": 4}}')
    assert _live_config(str(path)) == {"esd": {"ddim_steps": 4}}


def test_a_busy_port_is_a_clear_error(main, capsys, tiny_folder):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code = main(["-q", "demo", "--model", tiny_folder, "--port", str(busy.getsockname()[1])])
    err = capsys.readouterr().err
    assert code == 2 and "pass a free --port" in err, err
