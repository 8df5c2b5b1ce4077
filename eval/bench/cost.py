"""``erase bench --timing-only``: every method's cost at Stable Diffusion 1.5 scale, beside the papers'.

    erase bench --timing-only --out runs/cost                        # every method, on the GPU if any
    erase bench --timing-only --methods esd,salun --timing-iterations 4 --device cpu --out runs/cost

Our mini-canvas timings cannot be compared with UnlearnCanvas's (ESD 6,163 s and 17.8 GB per
concept on an A6000), so this times a few iterations of each method with its official
per-iteration settings (``erase.official``: the method's ``official`` schedule) on
:func:`eval.scale.sd15_pipeline` (SD 1.5's architecture, random weights: speed and memory do not
depend on the values) and multiplies by the official iteration count. A method whose weights,
gradients, Adam state and copies would not fit in the memory budget (the available RAM on a CPU,
the GPU's memory on a GPU) is skipped and named with the estimate, before anything is allocated:
on a 2-core laptop most of SD 1.5 training does not fit, and a swapping machine times nothing.
Writes ``OUT/timing.json`` and ``OUT/timing.md`` after every method; a later run on the same
device into the same ``OUT`` replaces the rows of the methods it times and keeps the others.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import platform

import torch

from pipelines.atomic import write_text
from pipelines.errors import ConfigError

logger = logging.getLogger("erase")

#: Per-concept cost the literature reports (``shared/docs/anchors.md`` §5.1 and §5.3).
PAPER = {
    "esd": {"seconds": 6163, "memory_gb": 17.8, "source": "UnlearnCanvas Table 2"},
    "salun": {"seconds": 667, "memory_gb": 30.8, "source": "UnlearnCanvas Table 2"},
    "fewshot": {"seconds": 10, "memory_gb": None, "source": "paper abstract: 'within 10 s' (claim)"},
    "advunlearn": {"seconds": None, "memory_gb": 16, "source": "eval-learn docs (third party): about 14-16 GB"},
}

#: Bytes per trained parameter the shared loop holds beyond the weights: gradient (4), Adam's two
#: moments (8), the originals it restores (4) and the result's copy (4), all float32.
TRAINED_BYTES = 20


def memory_budget_gb(device: str) -> float:
    """What a timing run may use: the GPU's memory, or the RAM available now (``MemAvailable``)."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_properties(torch.device(device)).total_memory / 2**30
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) / 2**20
    except (OSError, KeyError, ValueError):  # not Linux: the physical memory
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def estimate_gb(method: str, options: dict, schedule) -> dict:
    """A lower bound of a run's memory from parameter counts, on a meta-device SD 1.5 (nothing allocated).

    Weights of the whole pipeline (4 B each) plus, per trained parameter, the shared loop's
    :data:`TRAINED_BYTES` and the method's ``extra_bytes_per_trained``. Activations are not
    counted, so a method under the budget may still run out; one over it surely does.
    """
    from eval import scale

    pipe = scale.sd15_pipeline("meta")
    trained = scale.method_config(method, 2, options).plan(pipe)["trained_parameters"]
    total = sum(p.numel() for m in (pipe.unet, pipe.text_encoder, pipe.vae) for p in m.parameters())  # the VAE too
    gb = (4 * total + (TRAINED_BYTES + schedule.extra_bytes_per_trained) * trained) / 2**30
    return {"estimate_gb": round(gb, 2), "trained_parameters": trained, "total_parameters": total}


def time_method(method: str, args, device: str, budget_gb: float) -> dict:
    """One row of the table: timed, or skipped with the reason."""
    import erase
    from erase.official import schedule as official_schedule
    from eval import scale

    schedule = official_schedule(erase.get_method(method))
    row = {"method": method, "paper": PAPER.get(method)}
    if schedule is None:
        return {**row, "status": "skipped", "reason": "no official schedule declared (the method's `official`, erase.official)"}
    options = {**schedule.options, **schedule.timing}
    row.update(official_iterations=schedule.iterations, options=options, note=schedule.note, source=schedule.source)
    row.update(estimate_gb(method, options, schedule))
    if row["estimate_gb"] > budget_gb:
        return {**row, "status": "skipped",
                "reason": f"needs at least {row['estimate_gb']:.1f} GB (weights, gradients, Adam state, copies; "
                          f"activations not counted) but the budget is {budget_gb:.1f} GB; run it on a larger GPU or raise --memory-budget-gb"}
    logger.info("timing %s: %d iterations on %s", method, args.timing_iterations, device)
    try:
        measured = scale.measure(method, args.timing_iterations, device, args.mixed_precision, options,
                                 gradient_checkpointing=args.gradient_checkpointing)
    except torch.cuda.OutOfMemoryError:
        return {**row, "status": "skipped", "reason": f"out of GPU memory on {device} (estimate {row['estimate_gb']:.1f} GB before activations)"}
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    per = measured["seconds_per_iteration_median"]
    gpu = device.startswith("cuda")
    return {**row, "status": "timed", "seconds_per_iteration": per, "timed_iterations": measured["timed_iterations"],
            "projected_seconds": round(per * schedule.iterations, 1),
            "peak_memory_gb": round((measured["peak_gpu_mb"] if gpu else measured["peak_rss_mb"]) / 1024, 2),
            "memory_kind": "GPU" if gpu else "RSS", "device_name": measured["device"]}


def _device_label(device: str) -> str:
    return (torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda")
            else f"cpu ({platform.processor() or platform.machine()})")


def _earlier_rows(path: str, setting: dict) -> list[dict]:
    """Rows an earlier run wrote to ``path`` in the same ``setting`` (device, precision, checkpointing).

    Timings of another setting would make a table that compares nothing, so they are refused
    rather than mixed or overwritten.
    """
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        earlier = json.load(f)
    theirs = {key: earlier.get(key, False if key == "gradient_checkpointing" else None) for key in setting}  # schema 1: no key, off
    if theirs != setting:
        raise ConfigError(f"{path} holds timings on {_describe(theirs)}, this run is on {_describe(setting)}: pass another --out")
    return earlier["rows"]


def _describe(setting: dict) -> str:
    return (f"{setting['device']}, mixed precision {setting['mixed_precision']}, "
            f"gradient checkpointing {'on' if setting['gradient_checkpointing'] else 'off'}")


def run(args, methods: list[str]) -> int:
    """``erase bench --timing-only``: time ``methods``, write ``OUT/timing.{json,md}``.

    The table is rewritten after every method, so a run killed (or timed out) halfway keeps the
    rows it finished, and a later run into the same ``OUT`` on the same device replaces the rows
    of the methods it times and keeps the others: methods can be timed one call at a time.
    """
    import erase
    from pipelines import resolve_device

    device = resolve_device(args.device)
    budget = args.memory_budget_gb if args.memory_budget_gb is not None else memory_budget_gb(device)
    path = os.path.join(args.out, "timing.json")
    setting = {"device": _device_label(device), "mixed_precision": args.mixed_precision,
               "gradient_checkpointing": args.gradient_checkpointing}
    summary = {"schema": 2, **setting, "threads": torch.get_num_threads(), "memory_budget_gb": round(budget, 1)}
    rows = {r["method"]: r for r in _earlier_rows(path, setting)}
    os.makedirs(args.out, exist_ok=True)
    order = {name: i for i, name in enumerate(erase.available())}
    for method in methods:
        rows[method] = {**time_method(method, args, device, budget), "timing_iterations": args.timing_iterations}
        summary["rows"] = sorted(rows.values(), key=lambda r: order.get(r["method"], len(order)))
        write_text(path, json.dumps(summary, indent=2) + "\n")
        write_text(os.path.join(args.out, "timing.md"), markdown(summary))
    skipped = [m for m in methods if rows[m]["status"] == "skipped"]
    logger.info("wrote %s/timing.md (%d timed%s)", args.out, len(methods) - len(skipped), f"; skipped {', '.join(skipped)}" if skipped else "")
    return 0


def _num(value, fmt: str = "{:,.0f}") -> str:
    return "–" if value is None else fmt.format(value)


def markdown(summary: dict) -> str:
    """The table: ours (s/iteration, projected s per concept, peak memory) beside the papers' figures."""
    lines = [(f"Cost at SD 1.5 scale (random weights) on {_describe(summary)}, {summary['threads']} threads; s / iteration is the median of the timed iterations (those after "
              f"a 2-iteration warm-up of the iterations run); memory budget {summary['memory_budget_gb']} GB."), "",
             "| method | s / iteration | iterations run | official iterations | projected s / concept | peak memory (GB) | paper s | paper GB | paper source |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    notes = []
    for row in summary["rows"]:
        paper = row.get("paper") or {}
        cells = [_num(paper.get("seconds")), _num(paper.get("memory_gb"), "{:g}"), paper.get("source", "–")]
        if row["status"] == "timed":
            ours = [_num(row["seconds_per_iteration"], "{:.3f}"), _num(row.get("timing_iterations")), _num(row["official_iterations"]), _num(row["projected_seconds"]),
                    f"{row['peak_memory_gb']:.1f} ({row['memory_kind']})"]
        else:
            ours = ["skipped", "–", _num(row.get("official_iterations")), "–", _num(row.get("estimate_gb"), "≥ {:.1f} (estimate)")]
        lines.append("| " + " | ".join([row["method"], *ours, *cells]) + " |")
        if row["status"] == "skipped":
            notes.append(f"- {row['method']} skipped: {row['reason']}.")
        elif row.get("note"):
            notes.append(f"- {row['method']}: {row['note']}.")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"
