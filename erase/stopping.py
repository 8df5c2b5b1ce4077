"""A judged stopping rule: which kept state of a run to apply, chosen by a judge, with scores a user can read.

Two methods keep several states of one run and pick one after training. Few-shot erasure is
gradient *ascent*: the loss has no floor, so the epoch at which one stops is the hyper-parameter,
and the original leaves it to the user; its snapshots are epochs. DoCo trains a GAN, which does
not settle: the same run erases a flat style at step 300 and gives it back by step 450, while a
textured style needs the 450 (``DoCoConfig``'s docstring); its snapshots are steps. Either way,
every kept state (and, for few-shot, the base as ``0``) draws the same probe images, and a judge (``predict`` /
``verdict``, the protocol of ``eval/judges``) scores them:

* ``target``: % of the concept's own probes (its canonical prompts) the judge still calls the
  concept; ``100 - target`` is UA measured on the probes;
* ``same_kind``: % of probes of the *other* concepts of the same kind (other styles for a style)
  judged as their concept, IRA-like;
* ``other_kind``: % of all probes whose concept on the other axis (the object of a style probe)
  is judged right, CRA-like;
* ``seen_as``: what the judge calls the concept's own probes: where the concept drifted.

The scores say ``epoch`` for the state's label whatever its unit (the record names the unit).

Rule: among the epochs whose ``target`` is at most ``stop_below``, keep the one whose other
concepts moved least (highest mean of ``same_kind`` and ``other_kind``), on ties the one that
erased more, then the earliest (``rank="balance"``, DoCo's: the highest sum of erased and kept;
:data:`RANKS`); for few-shot, ascent only moves further from the base, so this is
usually the first epoch that erases. If no epoch gets there, keep the one that erased most for what it cost
(highest ``100 - target + kept``) and say so: the lowest ``target`` alone picks epochs that broke
every other concept and still show this one (arrow: 95 % shown, 33 % kept at epoch 8).

The threshold is on 20 probe images (two seeds; measured with few-shot): a binomial share of 20 moves by about 10 points,
and the epoch that first crosses a threshold is the one whose probes happened to read low. At 30 %
the evaluation then found 35-50 % of the concept still shown on rings, solid, checker, zigzag, house
(``erase bench --methods fewshot --targets all --seeds 2 --variant fs10=fewshot:steps=10``), while
the default checker and zigzag artifacts show their concept on 18-28 % of 120 images of either
seed range (``erase eval --model DIR --target checker --seeds 12 --metrics ua``: 23.3 / 28.3 %;
``--seeds 1000,...,1011``, the probes' range: 18.3 / 19.2 %): the gap is sampling noise, and the default threshold (15 %) leaves that
margin. Four probe seeds instead of two (``--variant fs-p4=fewshot:probe_seeds=4``, the same bench) chose
another epoch on 6 of the 20 targets and met the issue's bar on the same number (9), for 75-85 s of probing
instead of 44: the evaluation's own 20 images are as noisy, so two stay the default.

Probe seeds start at 1000, disjoint from ``erase eval``'s (0, 1, 2), so the choice is not fitted
to the images the evaluation judges; as in the evaluation, every probe image starts from a noise of
its own (``eval.canvas.answers.image_seed``), so the concept's probes are independent draws.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from eval.canvas import MiniCanvas
from eval.canvas.answers import image_seed
from eval.canvas.spec import CanvasSpec
from eval.judges.protocol import AxisJudge, Judge
from pipelines import ErasureResult, backbone_for
from pipelines.errors import ConfigError
from pipelines.generation import SamplerSettings, generate

from .config import option
from .epochs import EpochedResult

logger = logging.getLogger(__name__)

PROBE_SEED_START = 1000


@dataclass
class StoppingRuleOptions:
    """The rule's options, shared by the configs of the methods that use it (a dataclass mixin)."""

    stop_below: float = option(15.0, "stopping rule: a kept state erases when at most this %% of the concept's own probe images "
                               "still show it (20 probes read about 10 points either way: 15 leaves that margin, see erase.stopping)")
    judge: str | None = option(None, "judge weights for the stopping rule (default: the shipped mini-canvas judge)")
    probe_seeds: int = option(2, "seeds per probe prompt for the stopping rule (seeds 1000.., disjoint from erase eval's)")
    probe_steps: int = option(20, "DDIM steps of the probe images (mini-canvas evaluation: 20)")
    probe_guidance: float = option(5.0, "CFG scale of the probe images (mini-canvas evaluation: 5)")

    def validate(self) -> None:
        super().validate()
        for name in ("probe_seeds", "probe_steps"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not 0 <= self.stop_below <= 100:
            raise ConfigError(f"--stop-below is a percentage, got {self.stop_below}")


@dataclass(frozen=True)
class Probe:
    """One probe image: a canonical prompt of ``(object, style)`` drawn from noise ``seed``."""

    object: str
    style: str
    seed: int
    is_target: bool


def canvas_probes(spec: CanvasSpec, concept: str, seeds: int) -> list[Probe]:
    """The concept with every concept of the other axis, and each other concept of its own axis
    once per seed (its partner rotating over the other axis), at ``seeds`` seeds each."""
    target = spec.canonical(concept)
    own, cross = (spec.objects, spec.styles) if spec.kind(target) == "object" else (spec.styles, spec.objects)
    as_pair = (lambda mine, theirs: (mine, theirs)) if own is spec.objects else (lambda mine, theirs: (theirs, mine))
    noise = lambda k, obj, style: image_seed(PROBE_SEED_START + k, spec.objects.index(obj), spec.styles.index(style))
    probes = []
    for k in range(seeds):
        pairs = [(as_pair(target, c), True) for c in cross]
        others = [c for c in own if c != target]
        pairs += [(as_pair(c, cross[(i + k) % len(cross)]), False) for i, c in enumerate(others)]
        probes += [Probe(obj, style, noise(k, obj, style), is_target) for (obj, style), is_target in pairs]
    return probes


@dataclass
class EpochScore:
    """A judge's reading of one epoch's probes (percentages, see the module docstring)."""

    epoch: int
    target: float
    same_kind: float
    other_kind: float
    seen_as: dict[str, int]

    @property
    def erased(self) -> float:
        """% of the concept's own probes the judge no longer calls the concept."""
        return 100 - self.target

    @property
    def kept(self) -> float:
        """How much of the other concepts survives: mean of ``same_kind`` and ``other_kind``."""
        return (self.same_kind + self.other_kind) / 2

    def to_dict(self) -> dict:
        return {**asdict(self), "kept": round(self.kept, 2)}


def _percent_judged(judge: Judge, images: list, concepts: list[str]) -> float:
    """% of ``images[i]`` the judge says show ``concepts[i]``, one verdict call per concept."""
    hits = 0
    for concept in dict.fromkeys(concepts):
        chosen = [image for image, c in zip(images, concepts) if c == concept]
        hits += int(np.sum(judge.verdict(chosen, concept)))
    return round(100 * hits / max(len(images), 1), 2)


def score_images(judge: Judge, spec: CanvasSpec, concept: str, probes: list[Probe], images: list, epoch: int) -> EpochScore:
    """Score one epoch's probe ``images`` (one per probe, in order)."""
    target = spec.canonical(concept)
    is_object = spec.kind(target) == "object"
    own = [p.object if is_object else p.style for p in probes]
    cross = [p.style if is_object else p.object for p in probes]
    mine = [image for image, p in zip(images, probes) if p.is_target]
    others = [(image, c) for image, c, p in zip(images, own, probes) if not p.is_target]
    seen_as: dict[str, int] = {}
    if isinstance(judge, AxisJudge):
        predicted_objects, predicted_styles = judge.predict(mine)
        names = judge.objects if is_object else judge.styles
        counts = Counter(names[int(i)] for i in (predicted_objects if is_object else predicted_styles))
        seen_as = dict(counts.most_common())
    return EpochScore(
        epoch=epoch,
        target=_percent_judged(judge, mine, [target] * len(mine)),
        same_kind=_percent_judged(judge, [i for i, _ in others], [c for _, c in others]),
        other_kind=_percent_judged(judge, images, cross),
        seen_as=seen_as,
    )


def score_epochs(pipe, result: ErasureResult, epochs: dict[int, dict], judge: Judge, spec: CanvasSpec, concept: str,
                 probes: list[Probe], sampler: SamplerSettings, base: bool = True) -> list[EpochScore]:
    """Generate and score the probes for every epoch in ``epochs``, after the base's (epoch 0) with ``base``."""
    backbone = backbone_for(pipe)
    prompts = [spec.prompt(p.object, p.style) for p in probes]
    seeds = [p.seed for p in probes]
    scores = [score_images(judge, spec, concept, probes, generate(backbone, prompts, seeds, sampler), 0)] if base else []
    for epoch, tensors in sorted(epochs.items()):
        with ErasureResult(tensors=tensors, record=result.record).applied(pipe):
            images = generate(backbone, prompts, seeds, sampler)
        scores.append(score_images(judge, spec, concept, probes, images, epoch))
        logger.info("epoch %d: concept %.0f%%, same kind %.0f%%, other kind %.0f%%, seen as %s",
                    epoch, scores[-1].target, scores[-1].same_kind, scores[-1].other_kind, scores[-1].seen_as)
    return scores


#: How the rule ranks the states that erase: ``kept`` first (few-shot: ascent only moves away,
#: so the erasing epochs differ mostly in what they cost), or ``balance``, the sum of erased and
#: kept (DoCo: a GAN's states erase by different amounts at about the same keep, one image of 18
#: apart, and ranking by keep alone picks on that noise; split's run kept step 375, probes 10 %
#: shown, evaluation UA 70, over step 300, probes 5 %, evaluation UA 100).
RANKS = ("kept", "balance")


def choose_epoch(scores: list[EpochScore], stop_below: float, unit: str = "epoch",
                 fix: str = "train more epochs (--steps) or raise --lr, or pick one with --epoch",
                 rank: str = "kept") -> tuple[int, str]:
    """``(epoch, why)`` by the rule of the module docstring; epoch 0 (the base) is never chosen.

    ``unit`` names the label in ``why`` (``epoch``, ``step``); ``fix`` is the advice when nothing
    erases; ``rank`` orders the states that erase (:data:`RANKS`)."""
    if rank not in RANKS:
        raise ValueError(f"rank must be one of {RANKS}, got {rank!r}")
    trained = [s for s in scores if s.epoch >= 1]
    if not trained:
        raise ValueError(f"no trained {unit} to choose from")
    erasing = [s for s in trained if s.target <= stop_below]
    if erasing:
        if rank == "kept":
            best = max(erasing, key=lambda s: (s.kept, s.erased, -s.epoch))
            how = f"other concepts kept best ({best.kept:.0f}%)"
        else:
            best = max(erasing, key=lambda s: (s.erased + s.kept, s.erased, -s.epoch))
            how = f"erased and kept best together ({best.erased:.0f}% + {best.kept:.0f}%)"
        return best.epoch, (f"{unit} {best.epoch}: the concept's own probes at {best.target:.0f}% <= {stop_below:g}%, "
                            f"{how} among the {len(erasing)} {unit}s that erase")
    best = max(trained, key=lambda s: (s.erased + s.kept, -s.epoch))
    return best.epoch, (f"{unit} {best.epoch}: no {unit} brought the concept's own probes to {stop_below:g}%; this one "
                        f"erases most for what it costs ({best.target:.0f}% still shown, {best.kept:.0f}% of the others "
                        f"kept); {fix}")


def judged_choice(pipe, result: ErasureResult, states: dict[int, dict], options: StoppingRuleOptions, world: MiniCanvas,
                  concept: str, judge: Judge | None = None, unit: str = "epoch",
                  fix: str = "train more epochs (--steps) or raise --lr, or pick one with --epoch",
                  rank: str = "kept", base: bool = True) -> tuple[list[EpochScore], int, str]:
    """``(scores, label, why)``: every state in ``states`` probed and scored, and the rule's choice.

    ``judge`` defaults to the world's shipped judge (``options.judge`` names other weights).
    ``base`` also probes the base model (epoch 0): the choice never uses it, the record shows
    where the run started; a method short of time skips it (DoCo: one probe round of six)."""
    judge = judge if judge is not None else world.judge(options.judge)
    probes = canvas_probes(world, concept, options.probe_seeds)
    sampler = SamplerSettings(steps=options.probe_steps, guidance=options.probe_guidance)
    scores = score_epochs(pipe, result, states, judge, world, concept, probes, sampler, base)
    chosen, why = choose_epoch(scores, options.stop_below, unit, fix, rank)
    return scores, chosen, why


def kept_result(result: ErasureResult, pipe, states: dict[int, dict], chosen: int, why: str, scores: list[EpochScore],
                select_seconds: float, stop_below: float, **details) -> EpochedResult:
    """``result`` holding ``states[chosen]``, with every state kept beside it (``DIR/epochs/``).

    The record gains ``epochs`` (``details``, the choice, its reason and every state's scores) and
    its cost the probing time, which counts in the run's wall time."""
    record = {**result.record, "epochs": {**details, "chosen": chosen, "chosen_by": why, "stop_below": stop_below,
                                          "scores": [s.to_dict() for s in scores]}}
    cost = record["cost"] = {**result.record["cost"]}
    cost["select_seconds"] = round(select_seconds, 3)
    cost["wall_seconds"] = round(cost["wall_seconds"] + select_seconds, 3)
    cost["epochs_mb"] = round(len(states) * cost["artifact_mb"], 3)
    return EpochedResult(tensors=states[chosen], record=record, base_pipe=pipe, epochs=states)
