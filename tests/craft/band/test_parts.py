"""The band's parts, pure: bass on the changes and in range, voicings with 3rd and 7th
out of the soloist's way, the ride swinging at the jam's ratio, fills, dynamics."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from improv.craft.band import BarContext, Listening, RhythmSection, parse_parts
from improv.craft.band.bass import BASS_RANGE, WalkingBass
from improv.craft.band.drums import CRASH, HIHAT_PEDAL, RIDE, TOMS, SwingDrums
from improv.craft.band.piano import CompingPiano, has_third_and_seventh, lead, voicings
from improv.music.forms import FORM_NAMES, Form, get_form
from improv.music.time import Metre

KEYS = ("C", "F", "Bb", "Eb", "G", "A")
OWN_CHANGES = Form.parse("own", "| C-7 F7 | Bbmaj7 | Eb7 | Am7b5 D7b9 | G-6 | G7alt | C7sus |")


def bars(form: Form, count: int, **settings: object) -> list[BarContext]:
    return [
        BarContext(
            bar,
            bar * form.metre.beats_per_bar,
            form.metre,
            form.chord_at_beats,
            chorus_bar=bar % form.n_bars,
            chorus_bars=form.n_bars,
            seed=7,
            **settings,  # type: ignore[arg-type]
        )
        for bar in range(count)
    ]


def all_forms() -> list[Form]:
    return [get_form(name, key) for name in FORM_NAMES for key in KEYS] + [OWN_CHANGES]


@pytest.mark.parametrize("mode", ["full", "sparse"])
def test_bass_beat_one_is_a_chord_tone_and_stays_in_range(mode: str) -> None:
    on_chord = total = 0
    for form in all_forms():
        bass = WalkingBass()
        for bar in bars(form, 3 * form.n_bars, mode=mode, swing=1.5):
            notes = bass.plan(bar)
            assert notes, f"{form.name}: a silent bar {bar.bar}"
            assert all(BASS_RANGE[0] <= n.pitch <= BASS_RANGE[1] for n in notes)
            first = min(notes, key=lambda n: n.onset)
            chord = bar.chord(0.0)
            assert chord is not None and abs(first.onset - bar.bar_start) < 1e-9
            total += 1
            on_chord += chord.contains(first.pitch)
    assert on_chord / total >= 0.95, f"{on_chord}/{total} bars start on a chord tone"


def test_bass_walks_quarters_or_two_feel_with_approaches_and_variation() -> None:
    form = get_form("jazz-blues", "F")
    walking = [n for bar in bars(form, 24) for n in WalkingBass().plan(bar)]
    two_feel = [n for bar in bars(form, 24, mode="sparse") for n in WalkingBass().plan(bar)]
    assert len(walking) == 24 * 4 and len(two_feel) == 24 * 2
    bass = WalkingBass()
    line = [n for bar in bars(form, 24) for n in bass.plan(bar)]
    steps = [abs(b.pitch - a.pitch) for a, b in itertools.pairwise(line)]
    assert all(s > 0 for s in steps), "a walking line never repeats a pitch"
    assert sum(s <= 2 for s in steps) / len(steps) > 0.5, "mostly steps"
    # the beat before each bar line leads in: a half step, a scale step or the fifth
    leads = [abs(line[i + 1].pitch - line[i].pitch) for i in range(3, len(line) - 1, 4)]
    assert sum(s in (1, 2, 5, 7) for s in leads) / len(leads) >= 0.9
    assert len({n.velocity for n in line}) > 8 and len({round(n.duration, 2) for n in line}) > 8


def test_voicings_hold_the_third_and_seventh_and_lead_smoothly() -> None:
    moves: list[int] = []
    for form in all_forms():
        previous = None
        for change in form.changes(2):
            chord = change.chord
            assert chord is not None
            voicing = lead(chord, previous, 76)
            assert has_third_and_seventh(chord, voicing), (chord.symbol, voicing)
            assert chord.root % 12 not in {p % 12 for p in voicing} or chord.quality in (
                "dim7",
                "dim",
            ), f"{chord.symbol}: rootless"
            if previous is not None:
                pairs = zip(sorted(voicing), sorted(previous), strict=True)
                moves.append(sum(abs(a - b) for a, b in pairs))
            previous = voicing
    assert max(moves) <= 16 and sum(moves) / len(moves) <= 6, "each voice moves a step or so"
    for voicing in voicings(get_form("blues", "C").chord_at(0), 48, 76):  # type: ignore[arg-type]
        assert max(voicing) - min(voicing) <= 12


def test_piano_comps_out_of_the_soloists_register_and_lays_back_at_the_handover() -> None:
    form = get_form("blues", "Bb")
    high_solo = Listening(density=1.0, low=67, high=84, velocity=90)
    piano = CompingPiano()
    notes = [n for bar in bars(form, 24, listening=high_solo) for n in piano.plan(bar)]
    assert notes and max(n.pitch for n in notes) < 67
    onsets = {round(n.onset % 1, 2) for n in notes}
    assert onsets - {0.0}, "syncopated stabs: not only on the beat"
    full = sum(len(CompingPiano().plan(b)) for b in bars(form, 48))
    handover = sum(len(CompingPiano().plan(b)) for b in bars(form, 48, slot_ends=True))
    assert handover < full / 2


@pytest.mark.parametrize("ratio", [1.0, 1.5, 2.0])
def test_the_ride_swings_at_the_set_ratio(ratio: float) -> None:
    form = get_form("blues", "F")
    drums = SwingDrums()
    for bar in bars(form, 12, swing=ratio, tempo=160.0):
        notes = drums.plan(bar)
        ride = sorted(n.onset - bar.bar_start for n in notes if n.pitch == RIDE)
        skips = [p for p in ride if p % 1 > 1e-9]
        assert skips, "ding-a: the skip notes are there"
        for skip in skips:
            long = skip % 1
            assert long / (1 - long) == pytest.approx(ratio)
        hats = sorted(n.onset - bar.bar_start for n in notes if n.pitch == HIHAT_PEDAL)
        assert hats == [1.0, 3.0], "hi-hat on 2 and 4"


def test_drums_fill_into_each_chorus_and_slot_and_take_brushes_when_slow() -> None:
    form = get_form("blues", "F")
    drums = SwingDrums()
    played = [drums.plan(b) for b in bars(form, 25, slot_ends=False, tempo=180.0)]
    for index, notes in enumerate(played):
        toms = [n for n in notes if n.pitch in TOMS]
        assert bool(toms) == (index % 12 == 11), f"bar {index}: fill only into a chorus"
        assert any(n.pitch == CRASH for n in notes) == (index in (12, 24))
    slot_end = bars(form, 4, tempo=180.0)[1]
    pickup = SwingDrums().plan(replace(slot_end, slot_ends=True))
    assert any(n.onset - slot_end.bar_start >= 3.0 and n.pitch not in (RIDE, 35) for n in pickup)
    assert SwingDrums().program(80.0) != SwingDrums().program(180.0)
    assert not any(n.pitch == RIDE for n in SwingDrums().plan(bars(form, 1, tempo=80.0)[0]))


def test_dynamics_follow_the_soloists() -> None:
    form = get_form("blues", "F")
    loud = Listening(density=3.0, low=72, high=88, velocity=110)
    quiet = Listening()
    for part in ("bass", "drums", "piano"):
        section = RhythmSection([part])
        up = [n.velocity for b in bars(form, 12, listening=loud) for n in section.plan(b)[part]]
        section = RhythmSection([part])
        down = [n.velocity for b in bars(form, 12, listening=quiet) for n in section.plan(b)[part]]
        assert sum(up) / len(up) > sum(down) / len(down) + 8, part


def test_other_metres_and_part_names() -> None:
    waltz = Form.parse("waltz", "| F7 | Bb7 | F7 | C7 |", Metre(3, 4))
    section = RhythmSection(parse_parts("piano,bass,drums"))
    for bar in bars(waltz, 8):
        out = section.plan(bar)
        assert all(
            bar.bar_start <= n.onset < bar.bar_start + 3 for notes in out.values() for n in notes
        )
    assert parse_parts("none") == ()
    assert parse_parts("drums, bass") == ("bass", "drums")
    with pytest.raises(ValueError, match="unknown part"):
        parse_parts("bass,tuba")
