"""Answer sets: which (prompt, seed, guidance) images an evaluation looks at, and drawing them.

A canvas benchmark's answer set is every ``spec.prompt(object, style)`` at every seed, one
image per seed, each image with a noise of its own (UnlearnCanvas's protocol: :func:`image_seed`);
a prompt-list benchmark's (I2P-style nudity) comes from a CSV of prompt, seed and guidance.
Images are drawn with ``pipelines.generation.generate`` (one generator per seed, so an image does
not depend on its batch), in batches, optionally through the on-disk ``ImageCache``, each process
of an ``accelerate launch`` drawing its own share (``pipelines.sharding``).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from eval.canvas import mini_canvas
from eval.canvas import unlearncanvas as uc
from eval.canvas.axes import Axes
from eval.canvas.spec import CanvasSpec
from pipelines.backbone import Backbone
from pipelines.cache import ImageCache, generate_cached
from pipelines.errors import EraseError
from pipelines.generation import SamplerSettings
from pipelines.sharding import is_main_process, my_share
from pipelines.shipped import mini_canvas_dir

logger = logging.getLogger(__name__)

#: Used when the shipped model's manifest.json has no "sampling" entry (or is not built yet).
MINI_CANVAS_SAMPLING = {"steps": 20, "guidance": 5.0}
#: 100 prompts x 3 seeds = 300 images per model: 30 per class, so UA moves in 3.3-point steps
#: and a full ``erase eval`` (erased + cached base) stays under 2 minutes on 2 CPU cores.
MINI_CANVAS_SEEDS = (0, 1, 2)


def mini_canvas_sampling() -> dict[str, float]:
    """The shipped model's sampling defaults (``manifest.json`` "sampling"), else 20 steps, CFG 5."""
    path = os.path.join(mini_canvas_dir(), "manifest.json")
    try:
        with open(path, encoding="utf-8") as f:
            sampling = json.load(f).get("sampling") or {}
    except (OSError, ValueError):
        sampling = {}
    return {**MINI_CANVAS_SAMPLING, **{k: sampling[k] for k in ("steps", "guidance") if k in sampling}}


@dataclass(frozen=True)
class Benchmark:
    """A canvas world with its evaluation protocol: default seeds, sampler and photo domain."""

    name: str
    spec: CanvasSpec
    seeds: tuple[int, ...]
    sampling: dict[str, float]
    photo_styles: tuple[str, ...] = ()

    @property
    def axes(self) -> Axes:
        return Axes(self.spec.objects, self.spec.styles, self.photo_styles)

    def targets(self) -> tuple[str, ...]:
        """Every concept that can be erased (the photo domain cannot)."""
        return tuple(c for c in self.spec.concepts if c not in self.photo_styles)


def mini_canvas_benchmark() -> Benchmark:
    return Benchmark("mini-canvas", mini_canvas(), MINI_CANVAS_SEEDS, mini_canvas_sampling())


def unlearncanvas_benchmark() -> Benchmark:
    return Benchmark("unlearncanvas", uc.unlearncanvas(), uc.SEEDS, dict(uc.SAMPLING), (uc.PHOTO_STYLE,))


BENCHMARKS = {"mini-canvas": mini_canvas_benchmark, "unlearncanvas": unlearncanvas_benchmark}


def parse_seeds(text: str | None, defaults: Sequence[int]) -> tuple[int, ...]:
    """``--seeds``: a count ("5": the first 5 default seeds, continued in steps of 100) or a list."""
    if text is None:
        return tuple(defaults)
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise EraseError(f"--seeds {text!r} is neither a count (5) nor a comma-separated list of integers "
                         "(188,288,588)") from None
    if len(values) > 1:
        if len(set(values)) != len(values) or min(values) < 0:
            raise EraseError(f"--seeds {text!r} must list distinct non-negative integers")
        return tuple(values)
    count = values[0]
    if count < 1:
        raise EraseError(f"--seeds {text!r}: a count must be at least 1")
    seeds = list(defaults[:count])
    while len(seeds) < count:
        seeds.append((seeds[-1] if seeds else 0) + 100)
    return tuple(seeds)


@dataclass(frozen=True)
class AnswerSet:
    """Items ``i``: ``prompts[i]`` drawn from noise ``seeds[i]`` at ``guidance[i]``; canvas items
    also carry their object and style indices (``-1`` for prompt-list items) and the ``--seeds``
    value they were drawn for (``runs[i]``; the noise seed itself where a CSV gives it)."""

    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    guidance: tuple[float, ...]
    objects: np.ndarray
    styles: np.ndarray
    runs: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.runs is None:
            object.__setattr__(self, "runs", self.seeds)

    def __len__(self) -> int:
        return len(self.prompts)

    def items(self) -> list[tuple[str, int, float]]:
        return list(zip(self.prompts, self.seeds, self.guidance))

    def subset(self, positions: Sequence[int]) -> AnswerSet:
        p = np.asarray(positions, dtype=int)
        return AnswerSet(tuple(self.prompts[i] for i in p), tuple(self.seeds[i] for i in p),
                         tuple(self.guidance[i] for i in p), self.objects[p], self.styles[p],
                         tuple(self.runs[i] for i in p))


#: How a canvas answer set's noise seeds follow from ``--seeds``, as records state it.
NOISE_RULE = "per image: numpy SeedSequence([seed, object index, style index]).generate_state(1)[0]"


def image_seed(seed: int, obj: int, style: int) -> int:
    """The noise seed of one canvas image: a different noise for every (seed, object, style).

    UnlearnCanvas seeds its sampler once per seed and draws every image's noise in turn, so no
    two prompts start from the same noise. Giving every prompt the bare seed instead makes a
    class's images move together (same layout, same colours): a target's UA then rests on as
    many independent draws as there are seeds, two in the bench, and its bootstrap interval
    pretends to twenty. Derived per image rather than drawn in sequence, so an image does not
    depend on its batch, its process or which other prompts are evaluated.
    """
    return int(np.random.SeedSequence([int(seed), int(obj), int(style)]).generate_state(1)[0])


def canvas_answer_set(benchmark: Benchmark, seeds: Sequence[int], guidance: float) -> AnswerSet:
    """Every object x style prompt at every seed (objects outer, then styles, then seeds)."""
    spec = benchmark.spec
    cells = [(o, s) for o in range(len(spec.objects)) for s in range(len(spec.styles))]
    items = [(o, s, seed) for o, s in cells for seed in seeds]
    return AnswerSet(
        prompts=tuple(spec.prompt(spec.objects[o], spec.styles[s]) for o, s, _ in items),
        seeds=tuple(image_seed(seed, o, s) for o, s, seed in items),
        guidance=(float(guidance),) * len(items),
        objects=np.array([o for o, _, _ in items], dtype=int),
        styles=np.array([s for _, s, _ in items], dtype=int),
        runs=tuple(int(seed) for _, _, seed in items),
    )


def limit_answers(answers: AnswerSet, limit: int | None, classes: np.ndarray, seed: int = 0) -> AnswerSet:
    """At most ``limit`` items, spread round-robin over ``classes`` (N,) (the target's axis).

    Within a class, items of the first seed come first, in a random (seeded) order of prompts;
    so every class gets its share before any gets more, and the bootstrap interval reports
    how little each class was seen. Original order is kept in the result.
    """
    if limit is None or limit >= len(answers):
        return answers
    if limit < 1:
        raise EraseError(f"--limit {limit} must be at least 1")
    rng = np.random.default_rng(seed)
    seed_rank = np.unique(np.asarray(answers.runs), return_inverse=True)[1]  # (N,)
    shuffle = rng.permutation(len(answers))  # random tie-break between prompts
    in_class = np.empty(len(answers), dtype=int)  # each item's turn within its class
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        members = members[np.lexsort((shuffle[members], seed_rank[members]))]
        in_class[members] = np.arange(len(members))
    order = np.lexsort((classes, in_class))
    return answers.subset(np.sort(order[:limit]))


_SEED_COLUMNS = ("seed", "evaluation_seed", "sd_seed")
_GUIDANCE_COLUMNS = ("guidance", "evaluation_guidance", "sd_guidance")


def csv_answer_set(path: str, default_guidance: float) -> AnswerSet:
    """An I2P-style CSV: a ``prompt`` column, a seed column (``seed``/``evaluation_seed``/
    ``sd_seed``) and an optional guidance column (``guidance``/``evaluation_guidance``/``sd_guidance``)."""
    if not os.path.isfile(path):
        raise EraseError(f"prompt file {path!r} not found; pass an existing CSV with --prompts")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as error:
        raise EraseError(f"{path} is not a readable CSV ({error}); pass a CSV with prompt and seed columns") from None
    columns = set(rows[0]) if rows else set()
    seed_column = next((c for c in _SEED_COLUMNS if c in columns), None)
    guidance_column = next((c for c in _GUIDANCE_COLUMNS if c in columns), None)
    if "prompt" not in columns or seed_column is None:
        raise EraseError(f"{path} needs a header with a 'prompt' column and one of {', '.join(_SEED_COLUMNS)} "
                         f"(found: {', '.join(sorted(c for c in columns if c)) or 'no rows'})")
    prompts, seeds, guidance = [], [], []
    for line, row in enumerate(rows, start=2):
        try:
            seeds.append(int(float(row[seed_column])))
            value = row.get(guidance_column) if guidance_column else None
            guidance.append(float(value) if value not in (None, "") else float(default_guidance))
        except (TypeError, ValueError):
            raise EraseError(f"{path} line {line}: seed {row.get(seed_column)!r} or guidance is not a number") from None
        prompts.append(row["prompt"])
    none = -np.ones(len(prompts), dtype=int)
    return AnswerSet(tuple(prompts), tuple(seeds), tuple(guidance), none, none.copy())


def answer_batches(backbone: Backbone, answers: AnswerSet, sampler: SamplerSettings, *, batch_size: int = 100,
                   cache: ImageCache | None = None, progress: bool = True,
                   desc: str = "answers") -> Iterator[tuple[list[int], np.ndarray]]:
    """This process's share of ``answers``, batch by batch: (positions, (B, H, W, 3) uint8 images).

    Cached images are read, the rest generated (grouped by guidance) and added to the cache.
    """
    share = my_share(range(len(answers)))
    items = answers.items()
    if cache is not None:
        hits = len(cache.lookup([items[p] for p in share]))
        logger.info("%s: %d of %d images from the cache %s", desc, hits, len(share), cache.folder)
    bar = tqdm(total=len(share), desc=desc, unit="img", disable=not (progress and is_main_process()))
    for start in range(0, len(share), batch_size):
        batch = share[start:start + batch_size]
        images = generate_cached(backbone, [items[p] for p in batch], sampler, cache, batch_size=len(batch))
        bar.update(len(batch))
        yield list(batch), images
    bar.close()
