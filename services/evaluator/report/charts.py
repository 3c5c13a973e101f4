"""The report's PNG charts (matplotlib, Agg backend: no display needed).

Every value drawn is a ``stats.Interval``: bars and points carry their 95 % interval as an error bar
and their n in the label, so no chart shows a rate without its uncertainty.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from services.evaluator.stats import Interval

COLORS = {"scratch": "#c0504d", "scratch_base": "#f79646", "rag": "#4f81bd", "closed_book": "#9bbb59"}
_FALLBACK = ("#8064a2", "#4bacc6", "#7f7f7f")


def color(name: str, k: int) -> str:
    return COLORS.get(name, _FALLBACK[k % len(_FALLBACK)])


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _errors(intervals: list[Interval]) -> tuple[list[float], list[list[float]]]:
    """Heights and asymmetric error bars; an undefined interval draws no bar (its label says n)."""
    heights = [i.estimate or 0.0 for i in intervals]
    below = [i.estimate - i.low if i.defined and i.estimate is not None else 0.0 for i in intervals]
    above = [i.high - i.estimate if i.defined and i.estimate is not None else 0.0 for i in intervals]
    return heights, [below, above]


def grouped_bars(title: str, groups: list[str], series: dict[str, list[Interval]], ylabel: str,
                 ylim: float | None = 1.0) -> bytes:
    """One bar per system in each group, with its 95 % interval as an error bar and its n."""
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(groups) + 2), 3.8))
    width = 0.8 / max(1, len(series))
    for k, (name, intervals) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
        heights, yerr = _errors(intervals)
        bars = ax.bar(xs, heights, width, yerr=yerr, capsize=3, label=name, color=color(name, k),
                      error_kw={"elinewidth": 0.8, "ecolor": "#333"})
        labels = ["n/a" if i.estimate is None else f"{i.estimate:.2f}\nn={i.n}" + ("" if i.defined else "*")
                  for i in intervals]
        ax.bar_label(bars, labels, fontsize=6, padding=2)
    tilt = len(groups) > 3
    ax.set_xticks(range(len(groups)), groups, rotation=20 if tilt else 0, ha="right" if tilt else "center",
                  fontsize=8)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(0, ylim * 1.25)
    ax.set_title(f"{title} (95 % CI; * too few items for an interval)", fontsize=9)
    ax.legend(fontsize=8)
    return _png(fig)


def curves(title: str, xs: list[float], panels: dict[str, dict[str, list[Interval]]], xlabel: str,
           references: dict[str, dict[str, Interval]] | None = None, band: str = "95 % CI") -> bytes:
    """One panel per figure, each series a line with its interval as a band (``band`` says what it is).

    ``references`` draws, per panel, other systems' value (with its interval) as a dashed line.
    """
    references = references or {}
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(9, 3.2 * rows), squeeze=False)
    for ax, (ylabel, series) in zip(axes.flat, panels.items()):
        for k, (name, intervals) in enumerate(series.items()):
            est = [i.estimate if i.estimate is not None else float("nan") for i in intervals]
            low = [i.low if i.defined else e for i, e in zip(intervals, est)]
            high = [i.high if i.defined else e for i, e in zip(intervals, est)]
            ax.plot(xs, est, marker="o", color=color(name, k), label=name)
            ax.fill_between(xs, low, high, color=color(name, k), alpha=0.2)
        for k, (name, ref) in enumerate(references.get(ylabel, {}).items(), start=len(series)):
            if ref.estimate is None:
                continue
            ax.axhline(ref.estimate, linestyle="--", color=color(name, k), label=f"{name} (n={ref.n})")
            if ref.defined:
                ax.axhspan(ref.low, ref.high, color=color(name, k), alpha=0.08)
        if xs and min(xs) > 0:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{title} (bands: {band})", fontsize=10)
    return _png(fig)


def histogram(title: str, values: list[float], xlabel: str, bins: int = 10) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(values, bins=bins, color="#4f81bd", edgecolor="white")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("items")
    ax.set_title(f"{title} (n={len(values)})")
    return _png(fig)
