"""Prompt sets (the answer set's, a CSV's) and judges built from files and rebuilt from records."""

import numpy as np
import pytest

from attacks.judges import build_judge, default_kind, judge_from_record
from attacks.prompts import answer_set_items, csv_items
from eval.canvas.answers import canvas_answer_set, mini_canvas_benchmark
from eval.canvas import mini_canvas
from pipelines.errors import ConfigError, EraseError


@pytest.mark.parametrize("concept", ["stripes", "star"])
def test_default_prompts_are_the_answer_set_items_that_name_the_concept(concept):
    """The same prompts, seeds, guidance and order as erase eval's: pre-ASR = 100 - UA."""
    benchmark = mini_canvas_benchmark()
    answers = canvas_answer_set(benchmark, benchmark.seeds, 5.0)
    spec = benchmark.spec
    kind, index = spec.kind(concept), spec.concepts.index(concept)
    names = answers.styles == spec.styles.index(concept) if kind == "style" else answers.objects == spec.objects.index(concept)
    expected = [answers.items()[i] for i in np.flatnonzero(names)]
    items = answer_set_items(benchmark, concept.upper(), benchmark.seeds, 5.0)
    assert [(i.prompt, i.seed, i.guidance) for i in items] == expected and len(items) == 30 and index >= 0
    assert [i.index for i in items] == list(range(30))


def test_csv_prompts_i2p_style(tmp_path):
    path = tmp_path / "i2p.csv"
    path.write_text("case_number,prompt,evaluation_seed,evaluation_guidance,categories\n"
                    "0,a nude figure,42,7.5,sexual\n1,\"a beach, at noon\",7,,sexual\n")
    items = csv_items(str(path), default_guidance=5.0)
    assert [(i.index, i.prompt, i.seed, i.guidance) for i in items] == [(0, "a nude figure", 42, 7.5), (1, "a beach, at noon", 7, 5.0)]
    path.write_text("prompt,seed\na star,x\n")
    with pytest.raises(EraseError, match="line 2"):
        csv_items(str(path), 5.0)


def test_limit_takes_every_prompts_first_seed_first():
    everything = answer_set_items(mini_canvas_benchmark(), "star", (0, 1, 2), 5.0)
    kept = answer_set_items(mini_canvas_benchmark(), "star", (0, 1, 2), 5.0, limit=12)
    answers = canvas_answer_set(mini_canvas_benchmark(), (0, 1, 2), 5.0)
    seed_of = dict(zip(answers.seeds, answers.runs))  # an image's noise seed -> the --seeds value it was drawn for
    assert len(kept) == 12 and {seed_of[i.seed] for i in kept} == {0, 1} and len({i.prompt for i in kept}) == 10
    assert [i.index for i in kept] == sorted(i.index for i in kept)
    assert all(everything[i.index] == i for i in kept)  # an item keeps its index (its noise) under --limit


def test_default_judge_follows_the_concept():
    assert default_kind("Nudity", "mini-canvas") == "nudenet"
    assert default_kind("Van Gogh", "unlearncanvas") == "unlearncanvas"
    assert default_kind("stripes", "mini-canvas") == "mini-canvas"


@pytest.fixture
def judge_file(tmp_path):
    from eval.judges.canvas_judge import CanvasJudge, JudgeConfig, JudgeNet

    world = mini_canvas()
    config = JudgeConfig(channels=(8, 16))
    return str(CanvasJudge(JudgeNet(config, 10, 10), config, world.objects, world.styles).save(tmp_path / "judge.safetensors"))


def test_the_mini_canvas_judge_is_recorded_and_rebuilt_only_from_the_same_file(judge_file, tmp_path):
    judge, info = build_judge("mini-canvas", "stripes", judge_path=judge_file)
    assert info["kind"] == "mini-canvas" and info["path"] == judge_file and len(info["sha256"]) == 64
    images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    assert (judge_from_record(info).verdict(images, "stripes") == judge.verdict(images, "stripes")).all()
    other, _ = build_judge("mini-canvas", "stripes", judge_path=judge_file)
    for p in other.network.parameters():
        p.data.add_(1.0)
    other.save(judge_file)  # the file changed since the attack
    with pytest.raises(ConfigError, match="sha256"):
        judge_from_record(info)


def test_judges_refuse_concepts_they_do_not_know(judge_file):
    with pytest.raises(EraseError, match="Unknown concept"):
        build_judge("mini-canvas", "unicorn", judge_path=judge_file)
    with pytest.raises(ConfigError, match="nudity only"):
        build_judge("nudenet", "stripes")
    with pytest.raises(EraseError, match="--style-classifier"):
        build_judge("unlearncanvas", "Van Gogh", style_classifier="/missing.pth", object_classifier="/missing.pth")


def test_nudenet_judge_is_recorded():
    pytest.importorskip("nudenet")
    judge, info = build_judge("nudenet", "nudity", nudenet_threshold=0.6)
    assert info["kind"] == "nudenet" and info["threshold"] == 0.6 and len(info["labels"]) == 9
    assert judge_from_record(info).threshold == 0.6
