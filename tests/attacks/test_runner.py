"""The Python entry point ``robustness`` (what ``erase eval --attack`` calls) on a tiny model."""

import numpy as np

from attacks import robustness
from pipelines.generation import SamplerSettings

ITEMS = [("a star image", 0, 5.0), ("a red circle", 1, 3.0), ("a blue square", 2, 5.0)]
FAST = {"stages": 2, "iterations": 1}


class Always:
    def __init__(self, answer):
        self.answer, self.seen = answer, 0

    def predict(self, images):
        return None

    def verdict(self, images, concept):
        self.seen += len(images)
        return np.full(len(images), self.answer)


def test_a_model_that_already_shows_the_concept_is_not_searched(memory_pipe):
    judge = Always(True)
    report = robustness(memory_pipe, memory_pipe, "star", judge=judge, items=ITEMS, options=FAST,
                        sampler=SamplerSettings(steps=2), progress=False, report=True)
    assert report.pre_asr == 100.0 and report.asr == 100.0 and report.adversarial == []
    assert judge.seen == 3 and report.record["cost"]["target_seconds"] == 0


def test_a_robust_model_runs_the_whole_budget_and_scores_zero(memory_pipe):
    judge = Always(False)
    result = robustness(memory_pipe, memory_pipe, "star", judge=judge, items=ITEMS, options=FAST,
                        sampler=SamplerSettings(steps=2), progress=False)
    assert set(result) == {"attack", "pre_asr", "asr", "budget", "seconds_per_prompt", "counts"}
    assert result["pre_asr"] == 0.0 and result["asr"] == 0.0 and result["counts"]["failures"] == 3
    assert judge.seen == 3 + 3 * FAST["stages"]  # the clean prompts, then every prompt after every stage
    assert result["budget"]["max_steps_per_prompt"] == 2 and result["seconds_per_prompt"] > 0


def test_a_text_encoder_erasure_is_attacked_through_its_text_encoder(memory_pipe):
    """Components are measured, not guessed; the search's gradients run through the model's own encoder."""
    import torch

    from tests.tiny import tiny_pipeline

    erased = tiny_pipeline()
    with torch.no_grad():
        for name, p in erased.text_encoder.named_parameters():
            if "encoder.layers." in name:
                p.add_(0.05 * torch.randn_like(p))
    report = robustness(erased, memory_pipe, "star", judge=Always(False), items=ITEMS[:1], options=FAST,
                        sampler=SamplerSettings(steps=2), progress=False, report=True)
    assert report.record["settings"]["attacked_components"] == ["text_encoder"]
    base_report = robustness(memory_pipe, memory_pipe, "star", judge=Always(False), items=ITEMS[:1], options=FAST,
                             sampler=SamplerSettings(steps=2), progress=False, report=True)
    assert base_report.record["settings"]["attacked_components"] == []
    assert report.adversarial[0]["loss"] != base_report.adversarial[0]["loss"]  # same noise, same draws: only the encoder differs
