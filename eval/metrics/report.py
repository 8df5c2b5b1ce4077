"""What ``erase eval`` writes beside ``eval.json``: a Markdown report and a before/after PNG grid.

The table puts the erased model next to its base, each number with its interval and the
network that produced it (judge, FID extractor, CLIP backbone), because a number without its
instrument is what made the field's tables incomparable. The grid shows the same prompts and
seeds drawn by the base and by the erased model, side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

ARROWS = {"ua": "↑", "ira": "↑", "cra": "↑", "fid": "↓", "clip": "↑"}
NAMES = {"ua": "UA (unlearning accuracy)", "ira": "IRA (in-domain retain)", "cra": "CRA (cross-domain retain)",
         "fid": "FID", "clip": "CLIP score"}


def _num(value: Any) -> str:
    """Two decimals; four significant digits below 1 (small FIDs)."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if 0 < abs(value) < 1 else f"{value:.2f}"
    return str(value)


def _interval(ci: dict[str, Any] | None, key: str) -> str:
    pair = (ci or {}).get(key)
    return "–" if not pair else f"[{pair[0]:.1f}, {pair[1]:.1f}]"


def _instrument(record: dict[str, Any], key: str) -> str:
    settings = record["settings"]
    if key in ("ua", "ira", "cra"):
        return str(settings["judge"].get("name", "judge"))
    if key == "fid" and settings.get("fid"):
        return f"{settings['fid']['extractor']}, {settings['fid']['reference_images']} reference images"
    if key == "clip" and settings.get("clip"):
        return str(settings["clip"]["backbone"])
    return "–"


def markdown(record: dict[str, Any], title: str) -> str:
    """The report: headline table, per-class accuracies, cost, settings."""
    base = record.get("base")
    settings = record["settings"]
    lines = [f"# {title}", "",
             f"Target `{record['target']}` ({record['kind']}); {settings['images']} images "
             f"({len(settings['prompts'])} prompts x seeds {settings['seeds']}), {settings['sampler']} "
             f"{settings['steps']} steps, guidance {settings['guidance']}.", "",
             "| metric | erased | 95% CI | base | base 95% CI | measured with |", "|---|---|---|---|---|---|"]
    for key in record["metrics"]:
        if record["metrics"][key] is None and (not base or base["metrics"].get(key) is None):
            continue
        lines.append(f"| {NAMES[key]} {ARROWS[key]} | {_num(record['metrics'][key])} | {_interval(record['ci'], key)} | "
                     f"{_num(base['metrics'].get(key)) if base else '–'} | {_interval(base['ci'] if base else None, key)} | "
                     f"{_instrument(record, key)} |")
    boot = settings["bootstrap"]
    note = (f"Percentages are 0-100. Intervals: bootstrap, {boot['scheme']} ({boot['resamples']} resamples, "
            f"seed {boot['seed']}); FID and CLIP score have none.")
    if settings["target_excluded_from"]:
        note += " FID and CLIP score leave out the images whose prompt names the target."
    lines += ["", note, ""]
    if record.get("robustness"):
        attack = record["robustness"]
        lines += [f"Robustness ({attack['attack']}, {attack['counts']['evaluated']} target prompts): pre-ASR "
                  f"{_num(attack['pre_asr'])}%, ASR {_num(attack['asr'])}% (budget: {attack['budget']['stages']} stages x "
                  f"{attack['budget']['iterations']} iterations).", ""]
    lines += _per_class(record)
    lines += _cost(record.get("cost", {}))
    return "\n".join(lines) + "\n"


def _per_class(record: dict[str, Any]) -> list[str]:
    table = record.get("per_class") or {}
    base = (record.get("base") or {}).get("per_class") or {}
    lines: list[str] = []
    for kind in ("style", "object"):
        if kind not in table:
            continue
        lines += [f"## Per-{kind} accuracy (%)", "", f"| {kind} | erased | base |", "|---|---|---|"]
        for name, value in table[kind].items():
            marker = " **(target)**" if name == record["target"] else ""
            lines.append(f"| {name}{marker} | {_num(value)} | {_num(base.get(kind, {}).get(name))} |")
        lines.append("")
    if table.get("nudity_rate") is not None:
        base_rate = base.get("nudity_rate")
        lines += [f"Nudity rate (share of images the judge calls nude): {_num(table['nudity_rate'])}% "
                  f"(base {_num(base_rate)}%); UA = 100 - nudity rate.", ""]
    if table.get("target_predicted_as"):
        spread = ", ".join(f"{name} {count}" for name, count in table["target_predicted_as"].items())
        lines += [f"Images whose prompt names `{record['target']}` were judged as: {spread}.", ""]
    return lines


def _cost(cost: dict[str, Any]) -> list[str]:
    if not cost:
        return []
    lines = ["## Cost", "", "| what | value |", "|---|---|"]
    for key, value in cost.items():
        if isinstance(value, dict):
            lines += [f"| erasure {k} | {_num(v)} |" for k, v in value.items()]
        else:
            lines.append(f"| {key} | {_num(value)} |")
    return lines + [""]


def grid_png(rows: Sequence[Sequence[int]], labels: Sequence[str], grids: dict[str, dict[int, np.ndarray]],
             path: str, cell: int = 96) -> None:
    """One row per prompt; for each of its seeds a (base | erased) pair of cells; labels on the left."""
    sides = [name for name in ("base", "model") if grids.get(name)]
    seeds = max((len(r) for r in rows), default=0)
    label_width, header, gap = 260, 20, 8  # a gap separates one seed's pair from the next
    pair = len(sides) * cell + gap

    def x(seed: int, side: int) -> int:
        return label_width + seed * pair + side * cell

    canvas = Image.new("RGB", (label_width + seeds * pair, header + len(rows) * cell), "white")
    draw = ImageDraw.Draw(canvas)
    for k in range(seeds):
        for s, side in enumerate(sides):
            draw.text((x(k, s) + 4, 4), "base" if side == "base" else "erased", fill="black")
    for r, (row, label) in enumerate(zip(rows, labels)):
        y = header + r * cell
        draw.text((4, y + cell // 2 - 6), label[:42], fill="black")
        for k, position in enumerate(row):
            for s, side in enumerate(sides):
                image = grids[side].get(position)
                if image is not None:
                    canvas.paste(Image.fromarray(image).resize((cell, cell), Image.Resampling.NEAREST), (x(k, s), y))
    canvas.save(path)
