"""Latency and throughput plots with every fault shaded, like Jepsen's perf.

Two PNGs into the run directory:

* ``latency-raw.png``: every client op as a point at its invoke time, height
  its latency (log scale, since a 2 ms read and a 5 s timeout share a run),
  coloured by outcome; one marker shape per ``f``.
* ``rate.png``: completions per second over time, one line per f and outcome.

Each nemesis's active windows are shaded in its own colour and labelled, so
a latency cliff can be read against the fault that caused it. The checker is
always valid: it draws, it does not judge (failover and starvation judge).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: runs in CI and containers

import matplotlib.pyplot as plt  # noqa: E402 - must follow the backend choice
from matplotlib.axes import Axes  # noqa: E402

from squall.checkers.base import CheckContext  # noqa: E402
from squall.checkers.stats import NS, Timed, summary_s, timed_ops, windows_s  # noqa: E402
from squall.faults import colour as fault_colour  # noqa: E402
from squall.history import FAIL, INFO, OK  # noqa: E402

OUTCOME_COLOURS = {OK: "#2b8cbe", FAIL: "#e34a33", INFO: "#fdae6b"}
MARKERS = "o^sDvP*X<>"
LATENCY_PNG = "latency-raw.png"
RATE_PNG = "rate.png"
BIN_WIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def shade_faults(ax: Axes, windows: Sequence[dict[str, Any]]) -> None:
    """Shades each fault window and labels it once per kind, along the top edge."""
    kinds = sorted({w["fault"] for w in windows})
    for w in windows:
        shade = fault_colour(w["fault"])
        ax.axvspan(w["start_s"], w["end_s"], color=shade, alpha=0.15, lw=0)
    # Stagger labels by kind so overlapping faults do not print over each other.
    for w in windows:
        row = kinds.index(w["fault"])
        ax.text(
            w["start_s"],
            1.0 - 0.06 * row,
            f" {w['fault']}",
            transform=ax.get_xaxis_transform(),
            fontsize=8,
            va="top",
            color=fault_colour(w["fault"]),
        )


def _latency_plot(
    ops: Sequence[Timed], windows: Sequence[dict[str, Any]], path: Path, title: str
) -> None:
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=100)
    shade_faults(ax, windows)
    fs = sorted({t.f for t in ops})
    for i, f in enumerate(fs):
        for outcome, colour in OUTCOME_COLOURS.items():
            pts = [t for t in ops if t.f == f and t.outcome == outcome]
            if pts:
                ax.scatter(
                    [t.start / NS for t in pts],
                    [max(t.latency, 1) / 1e6 for t in pts],
                    s=6 if outcome == OK else 14,
                    c=colour,
                    marker=MARKERS[i % len(MARKERS)],
                    alpha=0.6,
                    linewidths=0,
                    label=f"{f} {outcome}",
                )
    ax.set_yscale("log")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"{title}: latency of every operation")
    ax.grid(True, which="major", alpha=0.3)
    if fs:
        ax.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, markerscale=2, frameon=False
        )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _rate_plot(
    ops: Sequence[Timed], windows: Sequence[dict[str, Any]], path: Path, title: str, span_s: float
) -> None:
    # About 100 bins over the run, in a round width a reader can take in at a glance.
    width = next((w for w in BIN_WIDTHS if w >= span_s / 100), BIN_WIDTHS[-1])
    nbins = max(1, int(span_s / width) + 1)
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=100)
    shade_faults(ax, windows)
    styles = {OK: "-", FAIL: "--", INFO: ":"}
    for i, f in enumerate(sorted({t.f for t in ops})):
        colour = f"C{i % 10}"  # one colour per f; the line style tells the outcome
        for outcome, style in styles.items():
            counts = [0] * nbins
            for t in ops:
                if t.f == f and t.outcome == outcome:
                    counts[min(nbins - 1, int(t.end / NS / width))] += 1
            if any(counts):
                # The last bin is cut short by the end of the run; divide by what it covered.
                cover = [max(min(width, span_s - i * width), width / 10) for i in range(nbins)]
                ax.plot(
                    [i * width for i in range(nbins)],
                    [c / w for c, w in zip(counts, cover, strict=True)],
                    color=colour,
                    linestyle=style,
                    lw=1.2,
                    label=f"{f} {outcome}",
                )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("operations / s")
    ax.set_title(f"{title}: throughput (bins of {width:g}s)")
    ax.grid(True, alpha=0.3)
    if ops:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def check_perf(ctx: CheckContext) -> dict[str, Any]:
    ops = timed_ops(ctx.history)
    windows = windows_s(ctx.history)
    span_s = max((o.time for o in ctx.history), default=0) / NS
    res: dict[str, Any] = {
        "valid": True,
        "latency_s": {
            f: summary_s(t.latency for t in ops if t.f == f and t.outcome == OK)
            for f in sorted({t.f for t in ops})
        },
        "span_s": round(span_s, 3),
        "plots": [],
    }
    if ctx.run_dir is None or not ops:
        res["note"] = (
            "no run directory, so no plots were drawn"
            if ops
            else "no client operations, so there is nothing to plot"
        )
        return res
    title = str(ctx.test.get("name", "run"))
    run_dir = Path(ctx.run_dir)
    _latency_plot(ops, windows, run_dir / LATENCY_PNG, title)
    _rate_plot(ops, windows, run_dir / RATE_PNG, title, span_s)
    res["plots"] = [LATENCY_PNG, RATE_PNG]
    return res
