"""From cell records to the leaderboard: averages per method, style and object targets apart.

UnlearnCanvas reports each metric averaged over its style targets and, separately, over its
object targets; so do we. The interval beside each average is a 95% percentile bootstrap over
the targets (which targets were erased is the main source of spread; each cell's own
image-level interval is in its eval.json).
"""

from __future__ import annotations

from typing import Any

import numpy as np

COLUMNS = ("ua", "ira", "cra", "fid", "clip")
COSTS = ("train_seconds", "peak_rss_mb", "artifact_mb")


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
            board[method][kind] = row
    return board


def _fmt(value: Any) -> str:
    return "–" if value is None else (f"{value:.1f}" if isinstance(value, float) else str(value))


def _mean_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return round(float(np.mean(values)), 2) if values else None


def markdown(board: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """The leaderboard table, then one row per cell."""
    lines = [
        "| method | targets | style UA | style IRA | style CRA | object UA | object IRA | object CRA | FID | CLIP | s / concept | peak MB | artifact MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, kinds in board.items():
        style, obj = kinds.get("style", {}), kinds.get("object", {})
        both = [k for k in (style, obj) if k]
        lines.append(
            f"| {method} | {style.get('targets', 0)}+{obj.get('targets', 0)} | "
            + " | ".join(_fmt(style.get(m)) for m in ("ua", "ira", "cra"))
            + " | "
            + " | ".join(_fmt(obj.get(m)) for m in ("ua", "ira", "cra"))
            + " | "
            + " | ".join(_fmt(_mean_of(both, key)) for key in ("fid", "clip", "train_seconds", "peak_rss_mb", "artifact_mb"))
            + " |"
        )
    lines += ["", "| method | target | kind | UA | IRA | CRA | FID | CLIP | s | peak MB | base UA / IRA / CRA |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["method"], r["kind"], r["target"])):
        m, c = r["metrics"], r["cost"]
        lines.append(
            f"| {r['method']} | {r['target']} | {r['kind']} | "
            + " | ".join(_fmt(m.get(k)) for k in COLUMNS)
            + f" | {_fmt(c.get('train_seconds'))} | {_fmt(c.get('peak_rss_mb'))} | "
            + " / ".join(_fmt((r.get("base_metrics") or {}).get(k)) for k in ("ua", "ira", "cra"))
            + " |"
        )
    return "\n".join(lines) + "\n"
