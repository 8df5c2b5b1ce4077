"""Run an attack over a prompt set: skip, pre-check, search, gather, score, record.

    report = run_attack(attack, model, base, concept, items, judge, sampler)
    report.record        # the attack.json record (keys in shared/docs/contracts.md)
    report.adversarial   # one row per searched prompt: adversarial_prompts.jsonl

Under ``accelerate launch`` every process takes its share of the prompts (the pre-attack
check, the base model's targets and the search), and the main process gathers the results;
in a single process the sharding helpers are the identity. ``seconds_per_prompt`` is the
compute time (summed over processes: pre-check, targets and search) per evaluated prompt,
so it does not depend on how many processes ran.

With a ``journal`` folder the prompts are searched batch by batch, each batch's outcomes
appended to :class:`attacks.journal.AttackJournal` as soon as it is done; a run started again
with the same settings searches only the prompts the journal lacks, and its record counts the
journaled batches' seconds too.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from eval.judges.protocol import Judge, judge_record
from pipelines.backbone import Backbone
from pipelines.cache import image_cache, model_fingerprint
from pipelines.generation import SamplerSettings
from pipelines.sharding import gather, is_main_process, my_share, num_processes, process_index, wait_for_everyone

from .asr import status, success_rates
from .base import Attack, Outcome, PromptItem
from .checking import Checker
from .journal import AttackJournal, journal_key, keyed_options
from .models import changed_components

logger = logging.getLogger(__name__)

SCHEMA = 1


@dataclass
class AttackReport:
    record: dict[str, Any]
    adversarial: list[dict[str, Any]]
    journal: AttackJournal | None = None  # the run's progress: ``finish()`` it once the record is written

    @property
    def pre_asr(self) -> float | None:
        return self.record["pre_asr"]

    @property
    def asr(self) -> float | None:
        return self.record["asr"]


def run_attack(attack: Attack, model: Backbone, base: Backbone, concept: str, items: Sequence[PromptItem],
               judge: Judge, sampler: SamplerSettings, *, progress: bool = True,
               judge_info: dict[str, Any] | None = None, cache_root: str | None = None,
               journal: str | None = None, fresh: bool = False) -> AttackReport:
    """Attack every prompt of ``items`` on ``model`` (targets from ``base``); see the module docstring.

    ``cache_root``: the on-disk image cache (``pipelines.cache``) for the base model's images,
    shared with ``erase eval``, whose base images of the same prompts are the same images.
    ``journal``: a folder to keep the progress in, resumed from if it holds this run's (``fresh``:
    discarded first).
    """
    attack.resolve(concept)
    judge_info = judge_info or judge_record(judge)
    skipped = {item.index: reason for item in items if (reason := attack.skip_reason(model, item))}
    for index, reason in skipped.items():
        logger.info("skipping prompt %d: %s", index, reason)
    checker = Checker(model, judge, concept, sampler, batch_size=attack.config.batch_size)
    fingerprint = model_fingerprint(model)
    # The base's weights are hashed once, here, for both the journal's key and the image cache's.
    base_fingerprint = fingerprint if base is model else model_fingerprint(base)
    progress_log = _open_journal(journal, fresh, attack, fingerprint, base_fingerprint, concept, items, checker, judge_info)
    done = progress_log.outcomes if progress_log else {}
    share = my_share([item for item in items if item.index not in skipped and item.index not in done])
    show = progress and is_main_process()

    started = time.perf_counter()
    pre = checker([item.prompt for item in share], share)  # (n,)
    pre_seconds = time.perf_counter() - started
    searched = [item for item, success in zip(share, pre) if not success]
    logger.info("%d of %d prompts already show %r unattacked; searching %d", int(pre.sum()), len(share),
                concept, len(searched))
    cache = image_cache(cache_root, base, sampler, base_fingerprint) if cache_root and searched else None
    outcomes, target_seconds, search_seconds = _search(attack, model, base, searched, sampler, cache, checker, show,
                                                       progress_log)

    local = {"pre": {item.index: bool(s) for item, s in zip(share, pre)},
             "outcomes": [asdict(o) for o in outcomes],
             "seconds": [pre_seconds, target_seconds, search_seconds], "device": str(model.device)}
    parts = gather(local)
    pre_by_index = {**{i: False for i in done}, **{i: s for part in parts for i, s in part["pre"].items()}}
    found = {**done, **{o["index"]: Outcome(**o) for part in parts for o in part["outcomes"]}}
    seconds = [sum(part["seconds"][j] for part in parts) for j in range(3)]
    if progress_log:
        seconds[1] += progress_log.seconds[0]
        seconds[2] += progress_log.seconds[1]
    record_settings = {"attacked_components": changed_components(model, base), "model_fingerprint": fingerprint}
    report = _report(attack, model, concept, items, skipped, pre_by_index, found, seconds, judge_info, checker,
                     record_settings)
    # What earlier, interrupted runs of this command searched, and the seconds they spent on it (the
    # command's own wall_seconds is this run's only).
    report.record["cost"]["resumed_prompts"] = len(done)
    report.record["cost"]["resumed_seconds"] = round(sum(progress_log.seconds), 3) if progress_log else 0.0
    report.journal = progress_log
    return report


def _open_journal(folder: str | None, fresh: bool, attack: Attack, fingerprint: str, base_fingerprint: str,
                  concept: str, items: Sequence[PromptItem], checker: Checker,
                  judge_info: dict[str, Any]) -> AttackJournal | None:
    """This run's journal under ``folder`` (loaded by every process, created by the main one), or None."""
    if folder is None:
        return None
    key = journal_key({"attack": attack.name, "options": keyed_options(attack.config.to_dict()), "concept": concept,
                       "model": fingerprint, "base": base_fingerprint,
                       "prompts": [asdict(item) for item in items], "sampler": checker.describe(), "judge": judge_info})
    if fresh and is_main_process():
        shutil.rmtree(folder, ignore_errors=True)
    wait_for_everyone()
    journal = AttackJournal(folder, key, rank=process_index())
    wait_for_everyone()  # every process has read the journal before any appends to it
    if is_main_process():
        journal.start({"attack": attack.name, "concept": concept, "prompts": len(items)})
    wait_for_everyone()
    return journal


def _search(attack: Attack, model: Backbone, base: Backbone, items: Sequence[PromptItem], sampler: SamplerSettings,
            cache: Any, checker: Checker, show: bool, journal: AttackJournal | None) -> tuple[list[Outcome], float, float]:
    """Search ``items`` one batch at a time, journaling each batch; ``(outcomes, target s, search s)``."""
    outcomes: list[Outcome] = []
    target_seconds = search_seconds = 0.0
    size = attack.config.batch_size
    for start in range(0, len(items), size):
        batch = items[start:start + size]
        started = time.perf_counter()
        prepared = attack.prepare(base, batch, sampler, cache)
        prepared_at = time.perf_counter()
        found = attack.run(model, batch, prepared, checker, show)
        finished = time.perf_counter()
        target_seconds += prepared_at - started
        search_seconds += finished - prepared_at
        if journal is not None:
            journal.append(found, prepared_at - started, finished - prepared_at)
        outcomes += found
    return outcomes, target_seconds, search_seconds


def _report(attack: Attack, model: Backbone, concept: str, items: Sequence[PromptItem], skipped: dict[int, str],
            pre: dict[int, bool], found: dict[int, Outcome], seconds: list[float], judge_info: dict[str, Any],
            checker: Checker, model_settings: dict[str, Any]) -> AttackReport:
    prompts, rows = [], []
    for item in items:
        entry: dict[str, Any] = {"index": item.index, "prompt": item.prompt, "seed": item.seed, "guidance": item.guidance}
        outcome = found.get(item.index)
        entry["status"] = status(pre.get(item.index, False), [outcome.success] if outcome else [],
                                 skipped=item.index in skipped)
        if item.index in skipped:
            entry["reason"] = skipped[item.index]
        if outcome is not None:
            entry.update(text=outcome.text, stage=outcome.stage, timestep=outcome.timestep,
                         iteration=outcome.iteration, generations=outcome.generations + 1,
                         exact_tokens=outcome.exact_tokens)
            rows.append(_row(item, outcome, concept, model))
        elif item.index in pre:
            entry["generations"] = 1
        prompts.append(entry)
    rates = success_rates(p["status"] for p in prompts)
    evaluated, searched = rates["counts"]["evaluated"], len(found)
    total = sum(seconds)
    record = {
        "schema": SCHEMA,
        "attack": attack.name,
        "concept": concept,
        "pre_asr": rates["pre_asr"],
        "asr": rates["asr"],
        "budget": attack.budget(),
        "seconds_per_prompt": round(total / evaluated, 3) if evaluated else None,
        "counts": rates["counts"],
        "settings": {
            "config": attack.config.to_dict(),
            "sampler": checker.describe(),
            "judge": judge_info,
            "noise": "one torch.Generator per prompt, seeded by sha256(attack seed, prompt index)",
            "device": str(model.device),
            "processes": num_processes(),
            **model_settings,
        },
        "cost": {"pre_check_seconds": round(seconds[0], 3), "target_seconds": round(seconds[1], 3),
                 "search_seconds": round(seconds[2], 3), "total_seconds": round(total, 3),
                 "seconds_per_searched_prompt": round((seconds[1] + seconds[2]) / searched, 3) if searched else None},
        "prompts": prompts,
    }
    return AttackReport(record, rows)


def _row(item: PromptItem, outcome: Outcome, concept: str, model: Backbone) -> dict[str, Any]:
    """One line of ``adversarial_prompts.jsonl``: enough to regenerate the image and re-judge it."""
    return {
        "index": item.index, "prompt": item.prompt, "seed": item.seed, "guidance": item.guidance, "concept": concept,
        "text": outcome.text, "adversarial_ids": outcome.adversarial_ids,
        "adversarial_tokens": model.tokenizer.convert_ids_to_tokens(outcome.adversarial_ids),
        "input_ids": outcome.input_ids, "exact_tokens": outcome.exact_tokens,
        "stage": outcome.stage, "timestep": outcome.timestep, "iteration": outcome.iteration,
        "loss": outcome.loss, "verdict": outcome.success,
    }
