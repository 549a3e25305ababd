"""A piano roll as a PNG: who played what, over the chords, so a person can look.

One function for every picture of notes: ``improv plot`` and ``improv jam --record``
(a whole jam, a chorus to a row), ``improv eval --listen`` (a call and its answer) and
the latency report (the first turns it measured). Voices in their own colours, each
note a bar whose shade is its velocity (30 and below palest, 120 and above full), bar
lines with bar numbers under each row and chord symbols above it.

Uses matplotlib's object API with the Agg canvas, never pyplot: no global backend is
switched and no window can open.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from improv.music.notes import ChordChange, Note
from improv.music.pitch import pitch_name
from improv.music.time import Metre

COLOURS = ("#1f5fa8", "#d0451b", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
"""Voice colours, in the order the voices are given: calls blue, answers red-orange."""

BAR_INCHES = 1.6
ROW_INCHES = 2.6
MAX_ROWS = 48
"""More rows than this (a jam of hours) are left out: the picture says how many bars it
shows. 48 rows of a 12-bar chorus is about 23 minutes at 120 BPM."""
DPI = 90
BACKGROUND = "#7f7f7f"
"""The colour of background voices (a band's parts): context, not the conversation."""

_Out = TypeVar("_Out", bound=str | Path | IO[bytes])


def piano_roll(
    path: _Out,
    voices: Mapping[str, Sequence[Note]],
    *,
    chords: Sequence[ChordChange] = (),
    metre: Metre | None = None,
    title: str = "",
    window: tuple[float, float] | None = None,
    first_bar: int = 1,
    bars_per_row: int | None = None,
    background: Mapping[str, Sequence[Note]] | None = None,
) -> _Out:
    """Write a piano roll of ``voices`` (name -> notes, beats on one timeline from a bar
    line) to ``path`` (a PNG file, or a binary stream); ``window`` shades a span (e.g.
    the answer's turn), ``first_bar`` numbers the bar at beat 0, and ``bars_per_row``
    (None: all in one row) wraps a long piece into rows, as a score does;
    ``background`` voices (a band's bass and comping) are drawn faint and grey behind,
    within the range of ``voices``. Returns ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    metre = metre or Metre()
    per_bar = metre.beats_per_bar
    every = [n for notes in voices.values() for n in notes]
    behind = [n for notes in (background or {}).values() for n in notes]
    ends = [n.end for n in every + behind] + [c.onset for c in chords]
    end = max([*ends, window[1] if window else 0])
    bars = max(1, math.ceil(end / per_bar - 1e-9))
    per_row = min(bars, bars_per_row or bars)
    rows = math.ceil(bars / per_row)
    shown = min(rows, MAX_ROWS)
    low = min((n.pitch for n in every), default=60) - 2
    high = max((n.pitch for n in every), default=72) + 2

    fig = Figure(
        figsize=(max(8.0, BAR_INCHES * per_row + 1.5), 1.1 + ROW_INCHES * shown),
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(shown, 1, squeeze=False)[:, 0]
    colours = dict(zip(voices, COLOURS * 4, strict=False))
    drawn = [(_columns(notes), BACKGROUND, 0.45, 1.5) for notes in (background or {}).values()]
    drawn += [(_columns(notes), colours[name], 1.0, 2.0) for name, notes in voices.items()]
    for row, ax in enumerate(axes):
        start, stop = row * per_row * per_bar, (row + 1) * per_row * per_bar
        _grid(ax, start, stop, per_bar, first_bar + row * per_row, high)
        if window is not None and window[0] < stop and window[1] > start:
            ax.axvspan(max(window[0], start), min(window[1], stop), color="#ececec", zorder=0)
        for change in chords:
            if start <= change.onset < stop:
                ax.axvline(change.onset, color="#777777", linewidth=0.8, linestyle=":", zorder=1)
                ax.text(change.onset + 0.08, high + 0.3, change.symbol, fontsize=9, va="bottom")
        for columns, colour, strength, layer in drawn:
            _draw_notes(ax, columns, start, stop, colour, strength, layer)
        c_pitches = [p for p in range(low, high + 1) if p % 12 == 0] or [low]
        for pitch in c_pitches:
            ax.axhline(pitch, color="#eeeeee", linewidth=0.6, zorder=0.4)
        ax.set_yticks(c_pitches)
        ax.set_yticklabels([pitch_name(p) for p in c_pitches])
        ax.set_ylim(low, high + 2.2)
        ax.tick_params(axis="both", labelsize=8, length=0)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    handles = [
        Patch(facecolor=colours[name], label=f"{name} ({len(notes)} notes)")
        for name, notes in voices.items()
    ]
    if background:
        handles.append(Patch(facecolor=BACKGROUND, alpha=0.4, label=", ".join(background)))
    axes[0].legend(
        handles=handles,
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncols=4,
        fontsize=8,
        frameon=False,
    )
    axes[-1].set_xlabel("bar (shade: velocity)", fontsize=8)
    if shown < rows:
        title = f"{title}  (the first {shown * per_row} of {bars} bars)".strip()
    if title:
        fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    if isinstance(path, str | Path):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, format="png", dpi=DPI)
    else:
        fig.savefig(path, format="png", dpi=DPI)
    return path


def _columns(notes: Sequence[Note]) -> Any:
    """Onset, end, pitch and velocity as a (4, n) array: rows are cut from it at once."""
    import numpy as np

    return np.array([(n.onset, n.end, n.pitch, n.velocity) for n in notes], float).reshape(-1, 4).T


def _draw_notes(
    ax: Any, columns: Any, start: float, stop: float, colour: str, strength: float, layer: float
) -> None:
    """One voice's notes in one row, as one collection (a long jam has tens of
    thousands: a patch each took seconds a row)."""
    import numpy as np
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgba

    onset, end, pitch, velocity = columns
    inside = (end > start) & (onset < stop)
    if not inside.any():
        return
    onset, end, pitch, velocity = onset[inside], end[inside], pitch[inside], velocity[inside]
    low, high = pitch - 0.42, pitch + 0.42
    corners = np.stack([onset, low, end, low, end, high, onset, high], axis=1).reshape(-1, 4, 2)
    shade = 0.15 + 0.85 * np.clip((velocity - 30) / 90, 0.0, 1.0)
    faces = np.tile(to_rgba(colour), (len(onset), 1))
    faces[:, 3] = shade * strength
    edges = faces if strength == 1.0 else "none"
    ax.add_collection(
        PolyCollection(
            list(corners), facecolors=faces, edgecolors=edges, linewidths=0.6, zorder=layer
        )
    )


def _grid(ax: Any, start: float, stop: float, per_bar: float, number: int, top: int) -> None:
    """Beat and bar lines of one row, a bar number under each bar."""
    bars = round((stop - start) / per_bar)
    across = ax.get_xaxis_transform()  # x in beats, y from the bottom of the row to its top
    beats = range(math.floor(start), math.ceil(stop) + 1)
    ax.vlines(beats, 0, 1, transform=across, colors="#e4e4e4", linewidth=0.5, zorder=0.5)
    bar_lines = [start + bar * per_bar for bar in range(bars + 1)]
    ax.vlines(bar_lines, 0, 1, transform=across, colors="#999999", linewidth=0.9, zorder=1)
    ax.set_xlim(start, stop)
    ax.set_xticks([start + (b + 0.5) * per_bar for b in range(bars)])
    ax.set_xticklabels([str(number + b) for b in range(bars)])


CONVERSATION = ("performer", "improv")
"""The tracks of a jam's record that trade: in colour; the band's go behind, in grey."""
DRUM_CHANNEL = 9


def plot_jam(midi: Path, out: _Out) -> _Out:
    """The piano roll of a jam's record (or any MIDI file with notes): the performer's
    calls and improv's answers in two colours, a band's bass and comping faint behind
    (its drums, whose keys are no pitches, left out), a chorus to a row when the chord
    markers repeat, else 12 bars; bad input is a one-line error."""
    from improv.errors import UsageError
    from improv.io.midi.files import read_jam

    jam = read_jam(midi)
    tracks = [t for t in jam.tracks if t.channel != DRUM_CHANNEL]  # drum keys are no pitches
    if not tracks:
        raise UsageError(f"MIDI file {midi}: no notes to plot")
    names = [t.name for t in tracks]
    if len(set(names)) < len(names):  # two tracks of one name: number them
        names = [f"{name} ({i})" for i, name in enumerate(names, start=1)]
    named = {
        n: t.notes for n, t in zip(names, tracks, strict=True) if isinstance(t.notes, Sequence)
    }
    conversation = {n: notes for n, notes in named.items() if n in CONVERSATION}
    if not conversation:  # not a jam's record: every track is a voice
        conversation, band = dict(named), {}
    else:
        band = {n: notes for n, notes in named.items() if n not in CONVERSATION}
    per_bar = jam.metre.beats_per_bar
    return piano_roll(
        out,
        conversation,
        chords=jam.chords,
        metre=jam.metre,
        title=f"{Path(midi).name}: {jam.bpm:g} BPM, {jam.metre}",
        bars_per_row=chorus_bars(jam.chords, per_bar),
        background=band,
    )


def chorus_bars(chords: Sequence[ChordChange], per_bar: float, default: int = 12) -> int:
    """The length of the form in bars, read from the chord changes: the shortest of the
    usual lengths after which the changes repeat; ``default`` when none does."""
    if not chords:
        return default
    last = math.floor(chords[-1].onset / per_bar)
    at_bar = []
    for bar in range(last + 1):
        symbols = [c.symbol for c in chords if c.onset <= bar * per_bar + 1e-9]
        at_bar.append(symbols[-1] if symbols else "")
    for length in (12, 8, 16, 24, 32):
        if last >= 2 * length - 1 and all(
            at_bar[i] == at_bar[i - length] for i in range(length, last + 1)
        ):
            return length
    return default
