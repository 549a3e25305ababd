"""The distributions behind ``improv eval``'s means, as one PNG: a panel per statistic,
the four sources side by side, so a reader sees spread and overlap, not just averages.

Uses matplotlib's object API with the Agg canvas, never pyplot: no global backend is
switched and no window can open.
"""

from __future__ import annotations

import math
from pathlib import Path

from improv.files import atomic_output
from improv.model.evaluate import SOURCES, EvalReport
from improv.model.response_stats import STAT_NAMES

_COLOURS = {
    "model": "#1f77b4",
    "baseline": "#ff7f0e",
    "human": "#2ca02c",
    "human_shuffled": "#7f7f7f",
}


def plot_report(report: EvalReport, path: Path) -> None:
    """Write violin plots of every response statistic per source to ``path`` (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(6, len(STAT_NAMES))
    rows = -(-len(STAT_NAMES) // columns)
    fig = Figure(figsize=(4.0 * columns, 4.2 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(STAT_NAMES) :]:
        ax.set_visible(False)
    for ax, stat in zip(axes, STAT_NAMES, strict=False):
        for x, source in enumerate(SOURCES, start=1):
            values = [v for v in report.values(source, stat) if not math.isnan(v)]
            if len(set(values)) > 1:
                parts = ax.violinplot([values], positions=[x], showmeans=True, widths=0.8)
                for body in parts["bodies"]:
                    body.set_facecolor(_COLOURS[source])
                    body.set_alpha(0.6)
                for name in ("cmeans", "cmins", "cmaxes", "cbars"):
                    parts[name].set_color(_COLOURS[source])
            elif values:
                ax.plot([x], [values[0]], "o", color=_COLOURS[source])
        ax.set_title(stat.replace("_", " "))
        ax.set_xticks(range(1, len(SOURCES) + 1))
        ax.set_xticklabels([s.replace("_", "\n") for s in SOURCES])
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(
        f"{report.model_name}: {report.bits_per_note:.2f} bits/note; "
        f"{report.baseline_name}: {report.baseline_bits_per_note:.2f} bits/note; "
        f"{report.pairs} call/response pairs from {report.solos} solos"
    )
    with atomic_output(path, "--plot") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
