"""PNG charts for evaluation reports (matplotlib, Agg backend, deterministic for the same data).

Each function draws one chart into ``path`` (written atomically) and returns the path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from cultura.data.hofstede import CONTINENTS
from cultura.eval.report import atomic_write

DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": DPI, "font.size": 9, "axes.titlesize": 10})
    return plt


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    try:
        fig.tight_layout()
        atomic_write(path, lambda p: fig.savefig(p, format="png", metadata={"Software": "cultura"}))
    finally:
        plt.close(fig)
    return path


def radar(path: Path, title: str, dimensions: Sequence[str], series: dict[str, dict[str, float | None]],
          reference: str | None = None) -> Path:
    """A radar chart of dimension scores, one polygon per series; ``reference`` is drawn dashed.

    A missing value (None) is drawn at the centre and marked in the legend.
    """
    plt = _pyplot()
    angles = [2 * math.pi * i / len(dimensions) for i in range(len(dimensions))]
    fig = plt.figure(figsize=(5.2, 5.2))
    ax = fig.add_subplot(projection="polar")
    top = 100.0
    for name, values in series.items():
        points = [values.get(d) for d in dimensions]
        known = [p for p in points if p is not None]
        top = max([top, *known])
        drawn = [p if p is not None else 0.0 for p in points]
        label = name + (" (missing: " + ", ".join(d for d, p in zip(dimensions, points) if p is None) + ")"
                        if len(known) < len(points) else "")
        style = dict(linestyle="--", linewidth=2.2, color="black") if name == reference else dict(linewidth=1.5)
        ax.plot(angles + angles[:1], drawn + drawn[:1], label=label, **style)
        if name != reference:
            ax.fill(angles + angles[:1], drawn + drawn[:1], alpha=0.08)
    ax.set_xticks(angles)
    ax.set_xticklabels(dimensions)
    low = min([0.0] + [v for s in series.values() for v in s.values() if v is not None])
    ax.set_ylim(min(0.0, low), top * 1.05)
    ax.set_title(title, pad=18)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=8, frameon=False)
    return _save(fig, path)


def grouped_bars(path: Path, title: str, ylabel: str, groups: Sequence[str],
                 series: dict[str, Sequence[float | None]], ylim: tuple[float, float] | None = None) -> Path:
    """Bars per group (x axis), one colour per series (method); a missing value leaves a gap."""
    plt = _pyplot()
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(5.5, 0.5 * len(groups) * max(1, len(series)) ** 0.5 + 3.5), 3.8))
    colours = plt.get_cmap("tab10")
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
        pairs = [(x, v) for x, v in zip(xs, values) if v is not None]
        label = name if pairs else f"{name} (no result)"
        ax.bar([x for x, _ in pairs], [v for _, v in pairs], width=width, label=label, color=colours(k % 10))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=30 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def interval_bars(path: Path, title: str, xlabel: str, labels: Sequence[str],
                  values: Sequence[tuple[float, float | None, float | None]]) -> Path:
    """Horizontal bars, one per label (top to bottom in order), each ``(mean, low, high)`` drawn with its
    interval as an error bar (no bar when the interval is unknown)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 0.42 * len(labels) + 1.4))
    ys = list(range(len(labels)))[::-1]
    means = [v[0] for v in values]
    errors = [[m - lo if lo is not None else 0.0 for m, lo, _ in values],
              [hi - m if hi is not None else 0.0 for m, _, hi in values]]
    ax.barh(ys, means, xerr=errors, capsize=3, color=plt.get_cmap("tab10")(0), alpha=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def heatmap(path: Path, title: str, rows: Sequence[str], columns: Sequence[str],
            values: Sequence[Sequence[float]], fmt: str = "{:.2f}") -> Path:
    """A heat map (rows x columns) with each cell's value written in it."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 * len(columns) + 2.5, 0.38 * len(rows) + 1.6))
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=max(1e-9, max(max(r) for r in values)), aspect="auto")
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(columns)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows)
    top = max(max(r) for r in values) or 1.0
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=7,
                    color="white" if value < 0.6 * top else "black")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.04)
    return _save(fig, path)


def gate_heatmap(folder: Path, gates: dict[str, Sequence[float]], names: Sequence[str]) -> Path:
    """``folder/gate_weights.png``: the mean Cultural MoE gate weight per continent (columns) of each
    of ``names`` (rows, in order), from ``gates`` (name -> weights in :data:`CONTINENTS` order)."""
    return heatmap(folder / "gate_weights.png", "Gate weight per continent", names, CONTINENTS,
                   [gates[n] for n in names])


def table(path: Path, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    """A table drawn as an image (for readers who open the PNGs rather than report.md)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(min(16, 0.95 * len(columns) + 1.5), 0.28 * len(rows) + 0.9))
    ax.axis("off")
    drawn = ax.table(cellText=[list(r) for r in rows] or [["-"] * len(columns)], colLabels=list(columns),
                     loc="center", cellLoc="center")
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(7.5)
    drawn.scale(1.0, 1.15)
    ax.set_title(title)
    return _save(fig, path)
