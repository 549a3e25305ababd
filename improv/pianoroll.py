"""A piano roll as a PNG: who played what, over the chords, so a person can look.

One function, for ``improv eval --listen`` and anything else that wants to show a
phrase and its answer (a jam's recording, a responder's output): voices in their own
colours, each note a bar whose shade is its velocity (30 and below palest, 120 and
above full), bar lines with bar numbers and chord symbols above the grid.

Uses matplotlib's object API with the Agg canvas, never pyplot: no global backend is
switched and no window can open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from improv.music.notes import ChordChange, Note
from improv.music.pitch import pitch_name
from improv.music.time import Metre

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
"""Voice colours, in the order the voices are given."""


def piano_roll(
    path: str | Path,
    voices: Mapping[str, Sequence[Note]],
    *,
    chords: Sequence[ChordChange] = (),
    metre: Metre | None = None,
    title: str = "",
    window: tuple[float, float] | None = None,
    first_bar: int = 1,
) -> Path:
    """Write a piano roll of ``voices`` (name -> notes, beats on one timeline from a bar
    line) to ``path`` (PNG); ``window`` shades a span (e.g. the answer's turn) and
    ``first_bar`` numbers the bar at beat 0. Returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    metre = metre or Metre()
    every = [n for notes in voices.values() for n in notes]
    end = max([n.end for n in every] + [c.onset for c in chords] + [window[1] if window else 0])
    bars = max(1, int(-(-end // metre.beats_per_bar)))
    width = bars * metre.beats_per_bar
    low = min((n.pitch for n in every), default=60) - 3
    high = max((n.pitch for n in every), default=72) + 3

    fig = Figure(figsize=(max(8.0, 1.6 * bars + 1.5), 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if window is not None:
        ax.axvspan(*window, color="#f2f2f2", zorder=0)
    for bar in range(bars + 1):
        ax.axvline(bar * metre.beats_per_bar, color="#888888", linewidth=0.9, zorder=1)
    for beat in range(int(width) + 1):
        ax.axvline(beat, color="#dddddd", linewidth=0.5, zorder=0.5)
    for change in chords:
        ax.axvline(change.onset, color="#555555", linewidth=0.8, linestyle=":", zorder=1)
        ax.text(change.onset + 0.05, high + 0.4, change.symbol, fontsize=9, va="bottom")
    handles = []
    for (name, notes), colour in zip(voices.items(), COLOURS * 4, strict=False):
        for note in notes:
            shade = 0.15 + 0.85 * min(1.0, max(0.0, (note.velocity - 30) / 90))
            ax.add_patch(
                Rectangle(
                    (note.onset, note.pitch - 0.4),
                    note.duration,
                    0.8,
                    facecolor=colour,
                    alpha=shade,
                    edgecolor=colour,
                    linewidth=0.6,
                    zorder=2,
                )
            )
        handles.append(Patch(facecolor=colour, label=f"{name} ({len(notes)} notes)"))
    ax.set_xlim(0, width)
    ax.set_ylim(low, high + 2)
    ax.set_xticks([b * metre.beats_per_bar for b in range(bars)])
    ax.set_xticklabels([str(first_bar + b) for b in range(bars)])
    ax.set_xlabel("bar (shade: velocity)")
    c_pitches = [p for p in range(low, high + 1) if p % 12 == 0]
    ax.set_yticks(c_pitches or [low])
    ax.set_yticklabels([pitch_name(p) for p in c_pitches] or [pitch_name(low)])
    ax.legend(handles=handles, loc="upper right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, format="png", dpi=90)
    return target
