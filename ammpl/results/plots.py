"""Few-shot curves (AMMPL Figure 2, CoOp's `draw_curves.py` look) from the tidy runs CSV.

One panel per dataset and an average panel, each written as its own PDF and PNG, plus one
grid figure with all panels. The look follows PROTOCOLS.md §11: grey panel (#EBEBEB), white
grid, linear x axis with ticks 0, 1, 2, 4, 8, 16, zero-shot CLIP as a star at x = 0 with a
white horizontal line at its value, round markers, legend at the bottom right, y range
padded by 5 % of the data span. The average panel averages per-dataset means per shot
count (§9) and leaves out a point when a method lacks one of the datasets. Drawn with
matplotlib's Agg canvas, never pyplot, so no display or global backend is involved.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ammpl.results.aggregate import (
    DEFAULT_SEEDS,
    MethodKey,
    is_fewshot_point,
    key_labels,
    method_key,
    seed_stats,
)
from ammpl.results.aggregate import select as select_runs
from ammpl.results.collect import Run
from ammpl.results.names import ZEROSHOT_METHOD, dataset_display

SHOT_TICKS = (0, 1, 2, 4, 8, 16)
PANEL_COLOUR = "#EBEBEB"
FONT_SIZE = 12
FORMATS = ("pdf", "png")
ZS_MARKER_SIZE = 4.5
ZS_LABEL_DROP = 0.11  # the label sits this fraction of the y span below the star


@dataclass
class Curve:
    label: str
    shots: list[int] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)


@dataclass
class Panel:
    name: str  # file stem
    title: str
    curves: list[Curve] = field(default_factory=list)
    zero_shot: float | None = None
    bold_title: bool = False


def fewshot_panels(
    runs: Sequence[Run],
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    configs: Sequence[str] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
) -> tuple[list[Panel], list[str]]:
    """The data of every panel (per dataset, then the average), and notes on left-out points."""
    selection = select_runs(
        runs,
        is_fewshot_point,
        "few-shot",
        methods,
        datasets,
        configs,
    )
    stats, notes = seed_stats(selection.runs, lambda r: (method_key(r), r.shots, r.dataset), seeds)
    keys = [k for k in selection.keys() if k.method != ZEROSHOT_METHOD]
    zs_keys = [k for k in selection.keys() if k.method == ZEROSHOT_METHOD]
    labels = key_labels(keys, selection.runs)
    stems = selection.dataset_order({r.dataset for r in selection.runs})
    panels = []
    for stem in stems:
        panel = Panel(stem, dataset_display(stem))
        for key in keys:
            curve = Curve(labels[key])
            for k in sorted({s[1] for s in stats if s[0] == key and s[2] == stem}):
                stat = stats[(key, k, stem)]
                curve.shots.append(k)
                curve.means.append(stat.mean)
                curve.stds.append(stat.std)
            if curve.shots:
                panel.curves.append(curve)
        zs = [stats[(k, 0, stem)].mean for k in zs_keys[:1] if (k, 0, stem) in stats]
        panel.zero_shot = zs[0] if zs else None
        panels.append(panel)
    panels.append(_average_panel(stats, keys, zs_keys[:1], labels, stems, notes))
    return panels, notes


def _average_panel(stats, keys: list[MethodKey], zs_keys, labels, stems, notes) -> Panel:
    title = f"Average over {len(stems)} datasets"
    panel = Panel("average", title, bold_title=True)
    for key in keys:
        curve = Curve(labels[key])
        for k in sorted({s[1] for s in stats if s[0] == key}):
            means = [stats[(key, k, d)].mean for d in stems if (key, k, d) in stats]
            if len(means) < len(stems):
                notes.append(
                    f"average panel: {labels[key]} at {k} shots left out "
                    f"({len(means)} of {len(stems)} datasets)"
                )
                continue
            curve.shots.append(k)
            curve.means.append(sum(means) / len(means))
            curve.stds.append(0.0)
        if curve.shots:
            panel.curves.append(curve)
    for key in zs_keys:
        means = [stats[(key, 0, d)].mean for d in stems if (key, 0, d) in stats]
        if len(means) == len(stems):
            panel.zero_shot = sum(means) / len(means)
    return panel


def _y_range(panel: Panel, error_bars: bool) -> tuple[float, float]:
    lows, highs = [], []
    for curve in panel.curves:
        for mean, std in zip(curve.means, curve.stds):
            spread = std if error_bars else 0.0
            lows.append(mean - spread)
            highs.append(mean + spread)
    if panel.zero_shot is not None:
        lows.append(panel.zero_shot)
        highs.append(panel.zero_shot)
    low, high = min(lows, default=0.0), max(highs, default=100.0)
    pad = 0.05 * (high - low) if high > low else 1.0
    low, high = low - pad, high + pad
    if panel.zero_shot is not None:  # keep the two-line "Zero-shot CLIP" label inside
        low = min(low, panel.zero_shot - (ZS_LABEL_DROP + 0.08) * (high - low))
    return low, high


# Past matplotlib's ten cycle colours, curves repeat the colours with another line and
# marker, so that every method of the toolkit (more than ten) stays distinguishable.
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D")
LEGEND_INSIDE_MAX = 8  # more curves than this: the legend goes to the right of the panel


def curve_style(index: int) -> dict:
    """Colour, line style and marker of the index-th curve (CoOp's look for the first ten)."""
    cycle = (index // 10) % len(LINE_STYLES)
    return {"color": f"C{index % 10}", "linestyle": LINE_STYLES[cycle], "marker": MARKERS[cycle]}


def draw_panel(ax, panel: Panel, error_bars: bool = False) -> None:
    """One panel on a matplotlib Axes."""
    ax.set_facecolor(PANEL_COLOUR)
    ax.grid(axis="x", color="white", linewidth=1.0)
    ax.set_axisbelow(True)
    for spine in ax.spines.values():
        spine.set_visible(False)
    low, high = _y_range(panel, error_bars)
    for index, curve in enumerate(panel.curves):
        style = dict(label=curve.label, markersize=3, **curve_style(index))
        if error_bars and any(curve.stds):
            ax.errorbar(curve.shots, curve.means, yerr=curve.stds, capsize=2, **style)
        else:
            ax.plot(curve.shots, curve.means, **style)
    if panel.zero_shot is not None:
        colour = f"C{len(panel.curves) % 10}"
        ax.axhline(panel.zero_shot, color="white", linewidth=1.0, zorder=0.5)
        ax.plot([0], [panel.zero_shot], marker="*", markersize=ZS_MARKER_SIZE, color=colour)
        label_y = panel.zero_shot - ZS_LABEL_DROP * (high - low)
        ax.text(-0.5, label_y, "Zero-shot\nCLIP", fontsize=FONT_SIZE - 2, color=colour)
    ax.set_xticks(SHOT_TICKS)
    ax.set_xlim(-1, max(SHOT_TICKS) + 1)
    ax.set_ylim(low, high)
    ax.set_xlabel("Number of labeled training examples per class")
    ax.set_ylabel("Score (%)")
    ax.set_title(panel.title, fontweight="bold" if panel.bold_title else "normal")
    if len(panel.curves) > LEGEND_INSIDE_MAX:  # it would hide the curves: put it beside them
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=FONT_SIZE - 3)
    elif panel.curves:
        ax.legend(loc="lower right", fontsize=FONT_SIZE - 3)


def _figure(columns: int = 1, rows: int = 1, legend_beside: bool = False):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width = 5.2 + (2.8 if legend_beside else 0.0)  # the panel keeps its size beside a legend
    figure = Figure(figsize=(width * columns, 4.2 * rows))
    FigureCanvasAgg(figure)
    return figure


def plot_fewshot(
    runs: Sequence[Run],
    out_dir: str,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    configs: Sequence[str] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    error_bars: bool = False,
    formats: Sequence[str] = FORMATS,
) -> tuple[list[str], list[str]]:
    """Write `<dataset>.<fmt>`, `average.<fmt>` and `fewshot_curves.<fmt>` (all panels) into
    `out_dir`; returns the written paths and notes on points left out."""
    import matplotlib

    panels, notes = fewshot_panels(runs, methods, datasets, configs, seeds)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    with matplotlib.rc_context({"font.size": FONT_SIZE}):
        beside = any(len(panel.curves) > LEGEND_INSIDE_MAX for panel in panels)
        for panel in panels:
            figure = _figure(legend_beside=len(panel.curves) > LEGEND_INSIDE_MAX)
            draw_panel(figure.add_subplot(1, 1, 1), panel, error_bars)
            figure.tight_layout()
            written += _save(figure, os.path.join(out_dir, panel.name), formats)
        columns = min(4, len(panels))
        rows = -(-len(panels) // columns)
        grid = _figure(columns, rows, legend_beside=beside)
        for index, panel in enumerate(panels):
            draw_panel(grid.add_subplot(rows, columns, index + 1), panel, error_bars)
        grid.tight_layout()
        written += _save(grid, os.path.join(out_dir, "fewshot_curves"), formats)
    return written, notes


def _save(figure, stem: str, formats: Sequence[str]) -> list[str]:
    from ammpl.utils.io import atomic_write

    paths = []
    for fmt in formats:
        path = f"{stem}.{fmt}"
        with atomic_write(path, "wb") as handle:  # never a half-written figure
            figure.savefig(
                handle, format=fmt, dpi=150 if fmt == "png" else None, bbox_inches="tight"
            )
        paths.append(path)
    return paths
