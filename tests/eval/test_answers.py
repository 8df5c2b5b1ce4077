"""Answer sets, the generation cache and prompt sharding across processes."""

import json

import numpy as np
import pytest

import eval.canvas.answers as answers_module
import pipelines.cache as cache_module
from eval.canvas.answers import (
    AnswerSet,
    answer_batches,
    canvas_answer_set,
    csv_answer_set,
    image_seed,
    limit_answers,
    mini_canvas_benchmark,
    mini_canvas_sampling,
    parse_seeds,
    unlearncanvas_benchmark,
)
from pipelines import backbone_for
from pipelines.cache import image_cache
from pipelines.errors import EraseError
from pipelines.generation import SamplerSettings, generate
from tests.launch import launch_two_processes

SAMPLER = SamplerSettings(steps=2, guidance=3.0)


@pytest.mark.parametrize("text, expected", [(None, (188, 288, 588, 688, 888)), ("3", (188, 288, 588)),
                                            ("7", (188, 288, 588, 688, 888, 988, 1088)), ("1,5,9", (1, 5, 9))])
def test_seeds_are_a_count_or_a_list(text, expected):
    assert parse_seeds(text, unlearncanvas_benchmark().seeds) == expected


@pytest.mark.parametrize("text", ["abc", "0", "1,1", "3,-2", "1.5"])
def test_bad_seeds_are_clear_errors(text):
    with pytest.raises(EraseError, match="--seeds"):
        parse_seeds(text, (0, 1))


def test_mini_canvas_sampling_falls_back_to_the_documented_defaults(tmp_path, monkeypatch):
    monkeypatch.setattr(answers_module, "mini_canvas_dir", lambda: str(tmp_path))
    assert mini_canvas_sampling() == {"steps": 20, "guidance": 5.0}
    (tmp_path / "manifest.json").write_text(json.dumps({"sampling": {"steps": 12, "guidance": 4.0}}))
    assert mini_canvas_sampling() == {"steps": 12, "guidance": 4.0}


def test_canvas_answer_set_is_every_prompt_at_every_seed():
    benchmark = mini_canvas_benchmark()
    answers = canvas_answer_set(benchmark, (0, 1, 2), 5.0)
    spec = benchmark.spec
    assert len(answers) == len(spec.objects) * len(spec.styles) * 3
    i = 3 * (len(spec.styles) * 2 + 4) + 1  # object 2, style 4, second seed
    assert answers.prompts[i] == spec.prompt(spec.objects[2], spec.styles[4]) and answers.runs[i] == 1
    assert (answers.objects[i], answers.styles[i]) == (2, 4) and answers.seeds[i] == image_seed(1, 2, 4)


def test_every_canvas_image_gets_a_noise_of_its_own_that_does_not_depend_on_the_rest():
    benchmark = mini_canvas_benchmark()
    answers = canvas_answer_set(benchmark, (0, 1), 5.0)
    assert len(set(answers.seeds)) == len(answers)  # no two prompts (nor seeds) share a starting noise
    alone = canvas_answer_set(benchmark, (1,), 5.0)  # evaluating fewer seeds leaves each image as it was
    assert set(alone.seeds) == {seed for seed, run in zip(answers.seeds, answers.runs) if run == 1}
    subset = answers.subset([5, 150])
    assert subset.runs == (answers.runs[5], answers.runs[150]) and subset.seeds == (answers.seeds[5], answers.seeds[150])


def test_unlearncanvas_answer_set_has_the_photo_domain_but_it_is_no_target():
    benchmark = unlearncanvas_benchmark()
    answers = canvas_answer_set(benchmark, benchmark.seeds, 9.0)
    assert len(answers) == 51 * 20 * 5 and "A Bears image in Van Gogh style." in answers.prompts
    assert "Seed Images" not in benchmark.targets() and len(benchmark.targets()) == 70


def test_limit_spreads_over_the_target_axis_and_keeps_order():
    benchmark = mini_canvas_benchmark()
    answers = canvas_answer_set(benchmark, (0, 1, 2), 5.0)
    small = limit_answers(answers, 20, answers.styles)
    assert len(small) == 20 and np.bincount(small.styles, minlength=10).tolist() == [2] * 10
    assert set(small.runs) == {0}  # first seed before any second seed
    positions = [answers.items().index(item) for item in small.items()]
    assert positions == sorted(positions)
    assert limit_answers(answers, 10_000, answers.styles) is answers


def test_csv_answer_set(tmp_path):
    path = tmp_path / "i2p.csv"
    path.write_text("prompt,evaluation_seed,evaluation_guidance\na nude figure,42,7.5\n\"a, comma\",7,\n")
    answers = csv_answer_set(str(path), default_guidance=5.0)
    assert answers.prompts == ("a nude figure", "a, comma") and answers.seeds == (42, 7) and answers.guidance == (7.5, 5.0)


@pytest.mark.parametrize("text, fragment", [("text,seed\na,1\n", "'prompt' column"), ("prompt,seed\na,x\n", "line 2"),
                                            (None, "not found")])
def test_bad_csv_is_a_clear_error(tmp_path, text, fragment):
    path = tmp_path / "p.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(EraseError, match=fragment):
        csv_answer_set(str(path), 5.0)


def _count_generate(monkeypatch):
    calls = []

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return generate(*args, **kwargs)

    monkeypatch.setattr(cache_module, "generate", counting)
    return calls


def _small_set(n=6):
    return AnswerSet(tuple(f"A star image in dots style {i}." for i in range(n)), tuple(range(n)), (3.0,) * n,
                     np.zeros(n, dtype=int), np.zeros(n, dtype=int))


def test_cache_hit_pays_nothing_and_a_changed_setting_misses(tiny_pipe, tmp_path, monkeypatch):
    backbone = backbone_for(tiny_pipe)
    calls = _count_generate(monkeypatch)
    answers = _small_set()
    cache = image_cache(str(tmp_path), backbone, SAMPLER)
    first = np.concatenate([images for _, images in answer_batches(backbone, answers, SAMPLER, batch_size=4, cache=cache, progress=False)])
    assert sum(calls) == 6
    again = np.concatenate([images for _, images in answer_batches(backbone, answers, SAMPLER, batch_size=4, cache=cache, progress=False)])
    assert sum(calls) == 6 and np.array_equal(first, again)
    # a subset (a --limit run) is served from the same cache
    list(answer_batches(backbone, answers.subset([1, 4]), SAMPLER, cache=cache, progress=False))
    assert sum(calls) == 6
    # other steps: another folder, a miss; other guidance: a per-image miss
    more_steps = SamplerSettings(steps=3, guidance=3.0)
    list(answer_batches(backbone, answers, more_steps, cache=image_cache(str(tmp_path), backbone, more_steps), progress=False))
    assert sum(calls) == 12
    guided = AnswerSet(answers.prompts, answers.seeds, (4.0,) * 6, answers.objects, answers.styles)
    list(answer_batches(backbone, guided, SAMPLER, cache=cache, progress=False))
    assert sum(calls) == 18
    # other weights (even changed in place): another fingerprint, another folder
    import torch

    with torch.no_grad():
        next(backbone.unet.parameters()).add_(1.0)
    assert image_cache(str(tmp_path), backbone, SAMPLER).folder != cache.folder


def test_cached_images_equal_fresh_ones_in_any_batching(tiny_pipe, tmp_path):
    backbone = backbone_for(tiny_pipe)
    answers = _small_set(5)
    cache = image_cache(str(tmp_path), backbone, SAMPLER)
    list(answer_batches(backbone, answers.subset([0, 2]), SAMPLER, batch_size=1, cache=cache, progress=False))
    mixed = np.concatenate([im for _, im in answer_batches(backbone, answers, SAMPLER, batch_size=5, cache=cache, progress=False)])
    fresh = np.concatenate([im for _, im in answer_batches(backbone, answers, SAMPLER, batch_size=2, progress=False)])
    assert np.array_equal(mixed, fresh)


SHARDED = r"""
import json, sys
import numpy as np, torch
torch.set_num_threads(1)
from pipelines import backbone_for, load_pipeline
from pipelines.generation import SamplerSettings
from eval.canvas.answers import AnswerSet, answer_batches
from pipelines.sharding import gather, is_main_process, num_processes
n = 6
answers = AnswerSet(tuple(f"A star image in dots style {i}." for i in range(n)), tuple(range(n)), (3.0,) * n,
                    np.zeros(n, dtype=int), np.zeros(n, dtype=int))
backbone = backbone_for(load_pipeline(sys.argv[1]))
mine = {p: im.tolist() for ps, ims in answer_batches(backbone, answers, SamplerSettings(steps=2, guidance=3.0), progress=False) for p, im in zip(ps, ims)}
parts = gather(mine)
if is_main_process():
    merged = {p: im for part in parts for p, im in part.items()}
    json.dump({"processes": num_processes(), "shares": [sorted(part) for part in parts],
               "images": [merged[p] for p in range(n)]}, open(sys.argv[2], "w"))
"""


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the two-process check runs on CPU machines")
def test_two_processes_share_the_prompts_and_give_the_same_images(tiny_folder, tiny_pipe, tmp_path):
    script, out = tmp_path / "sharded.py", tmp_path / "out.json"
    script.write_text(SHARDED)
    launch_two_processes(str(script), tiny_folder, str(out))
    result = json.loads(out.read_text())
    assert result["processes"] == 2 and result["shares"] == [[0, 1, 2], [3, 4, 5]]
    single = np.concatenate([im for _, im in answer_batches(backbone_for(tiny_pipe), _small_set(), SAMPLER, progress=False)])
    assert np.array_equal(np.array(result["images"], dtype=np.uint8), single)
