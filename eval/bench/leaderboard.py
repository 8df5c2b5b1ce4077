"""From cell records to the leaderboard: averages per method, style and object targets apart.

UnlearnCanvas reports each metric averaged over its style targets and, separately, over its
object targets; so do we. The interval beside each average is a 95% percentile bootstrap over
the targets (which targets were erased is the main source of spread; each cell's own
image-level interval is in its eval.json).

Pre-ASR and ASR (``erase attack``'s, on the attack subset) are averaged over the *attacked*
cells only, and the row says how many there were: an average over six targets is not one
over twenty.

Each cell row also says where the erased concept went: ``seen as`` is the class the judge most
often sees in the target's images instead of the target, with its share of all of them
(``eval.metrics.accuracy.drift``). It has no average: "crescent 40%" and "star 30%" do not add
up to anything.

``ms / image`` is what sampling the erased model costs (``cells.sample_ms_per_image``): its own
sampler on its answer set, end to end; a one-step generator (SFD) pays one UNet call where the
others pay 20 guided steps. Cells run side by side share the cores, so compare it within a run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

COLUMNS = ("ua", "ira", "cra", "fid", "clip")
COSTS = ("train_seconds", "sample_ms_per_image", "peak_rss_mb", "artifact_mb")
ATTACK_COLUMNS = ("pre_asr", "asr")


def _mean_ci(values: list[float], resamples: int = 1000, seed: int = 0) -> tuple[float | None, list[float] | None]:
    if not values:
        return None, None
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if len(data) < 2:
        return round(mean, 2), None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(len(data), size=(resamples, len(data)))].mean(axis=1)
    return round(mean, 2), [round(float(np.percentile(means, 2.5)), 2), round(float(np.percentile(means, 97.5)), 2)]


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """``{method: {kind: {"targets": n, metric: mean, metric_ci: [lo, hi], cost...}}}``."""
    board: dict[str, Any] = {}
    for method in sorted({r["method"] for r in records}):
        board[method] = {}
        for kind in ("style", "object"):
            cells = [r for r in records if r["method"] == method and r["kind"] == kind]
            if not cells:
                continue
            row: dict[str, Any] = {"targets": len(cells)}
            for metric in COLUMNS:
                values = [c["metrics"][metric] for c in cells if c["metrics"].get(metric) is not None]
                row[metric], row[f"{metric}_ci"] = _mean_ci(values)
            for cost in COSTS:
                values = [c["cost"][cost] for c in cells if c["cost"].get(cost) is not None]
                row[cost] = round(float(np.mean(values)), 2) if values else None
            row.update(_attack_row(cells))
            board[method][kind] = row
        board[method]["attacked"] = _attack_row([r for r in records if r["method"] == method])
    return board


def _attack_row(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"attacked": n, "pre_asr": mean, "pre_asr_ci": [lo, hi], "asr": ..., "asr_ci": ...}`` over the attacked cells."""
    attacked = [c["robustness"] for c in cells if c.get("robustness")]
    row: dict[str, Any] = {"attacked": len(attacked)}
    for metric in ATTACK_COLUMNS:
        row[metric], row[f"{metric}_ci"] = _mean_ci([a[metric] for a in attacked if a.get(metric) is not None])
    return row


def total_seconds(records: list[dict[str, Any]]) -> float:
    """Summed wall seconds of every cell's erasure, evaluation and attack (all processes, all runs)."""
    keys = ("wall_seconds", "eval_seconds", "attack_seconds")
    return round(sum(r["cost"].get(k) or 0.0 for r in records for k in keys), 1)


def machines(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The distinct machines the cells ran on (records from before the field was kept have none)."""
    seen: list[dict[str, Any]] = []
    for r in records:
        if r.get("machine") and r["machine"] not in seen:
            seen.append(r["machine"])
    return seen


def drifts(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{method: {target: drift or None}}`` for leaderboard.json (None: nothing drifted, or not recorded)."""
    table: dict[str, dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: (r["method"], r["target"])):
        table.setdefault(r["method"], {})[r["target"]] = r.get("drift")
    return table


def seen_as(drift: dict[str, Any] | None, most: int = 2) -> str:
    """``crescent 40%``; classes tied at the top each with the same share (``dots 25%, grid 25%``),
    at most ``most`` named and the rest counted (``, +3 more``) so the cell stays short; ``–``: none."""
    if not drift:
        return "–"
    names = [drift["seen_as"], *drift.get("tied", [])]
    shown = ", ".join(f"{name} {drift['share']:.0f}%" for name in names[:most])
    return shown + (f", +{len(names) - most} more" if len(names) > most else "")


def _fmt(value: Any) -> str:
    return "–" if value is None else (f"{value:.1f}" if isinstance(value, float) else str(value))


def _mean_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return round(float(np.mean(values)), 2) if values else None


def markdown(board: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """The leaderboard table, then one row per cell (with where its concept drifted)."""
    lines = [
        "| method | targets | style UA | style IRA | style CRA | object UA | object IRA | object CRA | FID | CLIP | s / concept | ms / image | peak MB | artifact MB | attacked | pre-ASR | ASR |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, kinds in board.items():
        style, obj = kinds.get("style", {}), kinds.get("object", {})
        attacked = kinds.get("attacked") or {}
        both = [k for k in (style, obj) if k]
        lines.append(
            f"| {method} | {style.get('targets', 0)}+{obj.get('targets', 0)} | "
            + " | ".join(_fmt(style.get(m)) for m in ("ua", "ira", "cra"))
            + " | "
            + " | ".join(_fmt(obj.get(m)) for m in ("ua", "ira", "cra"))
            + " | "
            + " | ".join(_fmt(_mean_of(both, key)) for key in ("fid", "clip", *COSTS))
            + f" | {attacked.get('attacked', 0)} | "
            + " | ".join(_fmt(attacked.get(m)) for m in ATTACK_COLUMNS)
            + " |"
        )
    lines += ["", "| method | target | kind | UA | IRA | CRA | FID | CLIP | pre-ASR | ASR | seen as | s | peak MB | base UA / IRA / CRA |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["method"], r["kind"], r["target"])):
        m, c, attack = r["metrics"], r["cost"], r.get("robustness") or {}
        lines.append(
            f"| {r['method']} | {r['target']} | {r['kind']} | "
            + " | ".join(_fmt(m.get(k)) for k in COLUMNS)
            + " | "
            + " | ".join(_fmt(attack.get(k)) for k in ATTACK_COLUMNS)
            + f" | {seen_as(r.get('drift'))}"
            + f" | {_fmt(c.get('train_seconds'))} | {_fmt(c.get('peak_rss_mb'))} | "
            + " / ".join(_fmt((r.get("base_metrics") or {}).get(k)) for k in ("ua", "ira", "cra"))
            + " |"
        )
    return "\n".join(lines) + "\n"
