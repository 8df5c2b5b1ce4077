"""The bench's two plots, as PNG files beside the leaderboard.

``retain_vs_forget.png``: one panel per method, one point per target: how much of the target
went (UA, x) against how much of everything else stayed (the mean of IRA and CRA, y); styles
and objects get different markers, so a method that erases styles but not objects shows it at
a glance. The top-right corner is the goal; targets below 90 on either axis are named.

``asr.png``: per method, the mean pre-ASR and ASR over its attacked cells as two bars: how often
the concept shows without an attack, and how often once the attack has searched.

Headless (a bare ``matplotlib.figure.Figure`` renders with Agg; pyplot and its global backend
are never touched) and deterministic: same records, same bytes (no software tag or timestamp
in the file, cells drawn in sorted order).
"""

from __future__ import annotations

import os
from typing import Any

from pipelines.atomic import atomic_file

from .leaderboard import aggregate

SCATTER, ASR = "retain_vs_forget.png", "asr.png"
LABEL_BELOW = 90  # targets under 90 on either axis are named: they are what holds a method back
MARKERS = {"style": ("o", "tab:blue"), "object": ("^", "tab:orange")}


def _figure(width: float, height: float, panels: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def _save(fig, path: str) -> None:
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})


def retained(record: dict[str, Any]) -> float | None:
    """The y of the scatter: the mean of IRA and CRA (what the erasure should leave alone)."""
    m = record["metrics"]
    kept = [m[k] for k in ("ira", "cra") if m.get(k) is not None]
    return sum(kept) / len(kept) if kept else None


def scatter(records: list[dict[str, Any]], path: str) -> str:
    methods = sorted({r["method"] for r in records})
    fig, axes = _figure(4 * len(methods), 4, len(methods))
    for ax, method in zip(axes, methods):
        cells = sorted((r for r in records if r["method"] == method), key=lambda r: (r["kind"], r["target"]))
        for kind, (marker, color) in MARKERS.items():
            points = [(r["metrics"].get("ua"), retained(r), r["target"]) for r in cells if r["kind"] == kind]
            points = [p for p in points if p[0] is not None and p[1] is not None]
            ax.scatter([p[0] for p in points], [p[1] for p in points], marker=marker, color=color, label=kind)
            for x, y, name in points:
                if x < LABEL_BELOW or y < LABEL_BELOW:  # the cluster at the goal stays unlabelled, readable
                    ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set(title=method, xlabel="UA (target erased, %)", ylabel="mean of IRA and CRA (kept, %)",
               xlim=(-5, 105), ylim=(-5, 105))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return path


def asr_bars(records: list[dict[str, Any]], path: str) -> str:
    board = aggregate(records)
    methods = [m for m in board if board[m]["attacked"]["attacked"]]
    fig, (ax,) = _figure(max(4, 1.6 * len(methods) + 2), 4)
    for offset, (key, label, color) in zip((-0.2, 0.2), (("pre_asr", "before the attack (pre-ASR)", "tab:gray"),
                                                         ("asr", "after the attack (ASR)", "tab:red"))):
        ax.bar([i + offset for i in range(len(methods))], [board[m]["attacked"][key] for m in methods],
               width=0.4, label=label, color=color)
    ax.set_xticks(range(len(methods)), [f"{m}\n({board[m]['attacked']['attacked']} targets)" for m in methods])
    ax.set(ylabel="prompts showing the concept (%)", ylim=(0, 105), title="UnlearnDiffAtk on the attacked targets")
    if methods:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no attacked cells yet (erase bench --attack)", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    _save(fig, path)
    return path


def write_plots(out: str, records: list[dict[str, Any]]) -> list[str]:
    """Both plots into ``out``; nothing when there are no records yet."""
    if not records:
        return []
    return [scatter(records, os.path.join(out, SCATTER)), asr_bars(records, os.path.join(out, ASR))]
