"""The pure parts of a metre change: the clock's jump, the token stream's bars, the form
in the new metre, the record's beats and the control request. Fast, no I/O."""

from __future__ import annotations

import itertools

import pytest

from improv.engine.clock import InternalClock, Metronome
from improv.engine.recording import sounded
from improv.io.control import ControlError, ControlParser
from improv.music.forms import get_form
from improv.music.time import Metre
from improv.tokens import VOCAB, GrammarState, NoteEnd, Role, StreamDecoder, StreamEncoder

pytestmark = pytest.mark.realtime

THREE = Metre(3, 4)


def test_the_clock_jumps_at_the_bar_line_and_no_time_passes() -> None:
    clock = InternalClock(120.0, 100.0)  # a beat: half a second
    when = clock.change_metre(THREE, 8.0, 9.0)
    assert when == pytest.approx(104.0)
    assert clock.beat_at(103.5) == pytest.approx(7.0)
    assert clock.beat_at(104.5) == pytest.approx(10.0)  # beat 9 is at 104
    assert clock.time_at(8.5) == pytest.approx(104.0)  # jumped over: the jump's moment
    assert clock.skip(8.5) == 9.0 and clock.skip(7.5) == 7.5
    assert clock.metre_at(7.0) == Metre() and clock.metre_at(9.0) == THREE
    # a tempo change asked for before the jump lands on the new metre's bar line
    assert clock.set_tempo(60.0, 103.0) == pytest.approx(104.0)
    assert clock.beat_at(105.0) == pytest.approx(10.0) and clock.skip(8.5) == 9.0


def test_the_metronome_clicks_once_a_beat_across_the_jump_accenting_the_new_bars() -> None:
    clock = InternalClock(120.0, 0.0)
    clock.change_metre(THREE, 4.0, 6.0)

    class Sink:
        def __init__(self) -> None:
            self.notes: list[tuple[float, int]] = []

        def schedule(self, time: float, data: bytes) -> None: ...

        def schedule_note(
            self, pitch: int, velocity: int, on: float, off: float, ch: int = 0
        ) -> int:
            self.notes.append((on, pitch))
            return 0

    sink = Sink()
    Metronome(sink, clock).fill(5.9)
    times = [t for t, _ in sink.notes]
    assert times == pytest.approx([0.5 * i for i in range(12)])
    accents = [t for t, pitch in sink.notes if pitch == Metronome(sink, clock).click.accent_pitch]
    assert accents == pytest.approx([0.0, 2.0, 3.5, 5.0])


def test_the_token_stream_counts_bars_of_the_new_metre_and_decodes_to_jam_positions() -> None:
    encoder = StreamEncoder(5, Metre())
    grammar = GrammarState(Metre(), 5)
    decoder = StreamDecoder(5, Metre())
    tokens = encoder.header()
    tokens += encoder.start_phrase(Role.PERFORMER, 0.0)
    tokens += encoder.note_on(60, 90, 6.0) + encoder.note_off(60, 7.0)
    changed = encoder.change_metre(THREE, 8.0, 9.0)
    tokens += changed
    for token in tokens:
        grammar.feed(token)
        decoder.feed(token)
    assert changed.count(VOCAB.bar) == 1  # the bar line at 8, once
    grammar.change_metre(THREE, encoder.bar)
    decoder.change_metre(THREE, encoder.bar)
    assert (encoder.bar, grammar.ticks_per_bar, grammar.bar) == (3, 36, 3)
    later = encoder.note_on(62, 90, 10.0) + encoder.note_off(62, 10.5) + encoder.advance(12.5)
    events = []
    for token in later:
        grammar.feed(token)
        events += decoder.feed(token)
    assert [e.note.onset for e in events if isinstance(e, NoteEnd)] == [10.0]
    assert later.count(VOCAB.bar) == 1  # the bar line at 12 (9 + 3)
    assert grammar.bar == 4


def test_a_form_in_another_metre_keeps_its_bars() -> None:
    blues = get_form("jazz-blues", "F")
    waltz = blues.in_metre(THREE)
    assert waltz.n_bars == blues.n_bars and waltz.metre == THREE
    assert waltz == get_form("jazz-blues", "F", THREE)


def test_the_record_takes_the_jump_out() -> None:
    jumps = [(8.0, 9.0, THREE), (18.0, 20.0, Metre(2, 4))]
    assert [sounded(b, jumps) for b in (7.0, 8.5, 9.0, 12.0, 19.0, 21.0)] == [
        7.0,
        8.0,
        8.0,
        11.0,
        17.0,
        18.0,
    ]


@pytest.mark.parametrize(
    ("metre", "says"),
    [("5/5", "not a metre: .5/5."), ("x", "not a metre"), (3, "must be a string")],
)
def test_a_bad_metre_request_says_why(metre: object, says: str) -> None:
    with pytest.raises(ControlError, match=says):
        ControlParser().from_object({"metre": metre})
    assert ControlParser().from_object({"metre": "6/8"}).changes() == {"metre": "6/8"}


async def test_the_band_plays_the_new_bars_from_the_jump_and_no_beat_twice() -> None:
    from improv.io.control import ControlChange
    from tests.engine.rig import unpaired
    from tests.engine.test_band import BASS, ON_THE_BEAT, band_jam, off_beat, until

    async with band_jam("bass,drums") as jam:
        agent = jam.agent
        await until(lambda: agent.position() >= 2.0)
        agent.apply_control(ControlChange(metre=THREE))
        await until(lambda: bool(agent.metre_changes))
        ((_, to, _),) = agent.metre_changes
        await until(lambda: agent.position() >= to + 6.0)
        agent.request_stop("test")
        await jam.task
    assert agent.band is not None and agent.band.metre == THREE
    times = [e.time for e in jam.note_ons(BASS)]
    jump = agent.clock.time_at(to)
    assert any(t < jump for t in times) and sum(t >= jump for t in times) >= 6
    assert all(off_beat(agent, t) < ON_THE_BEAT for t in times), "every bass note on its beat"
    steps = [b - a for a, b in itertools.pairwise(times)]
    assert min(steps) > 0.2 and max(steps) < 0.3  # a note a beat across the jump
    assert not unpaired(jam.output.events), "no note left sounding"
