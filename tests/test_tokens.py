"""The token language: vocabulary, round trips, live encoding and robust decoding."""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from improv.music.chords import Chord, QualityClass
from improv.music.notes import ChordChange, Note, Phrase, Solo, chord_in_force
from improv.music.time import TICKS_PER_BEAT, Metre, Swing
from improv.tokens import (
    ALLOWED_KINDS,
    MAX_BAR_TICKS,
    MAX_DUR_TICKS,
    TOKENIZER_VERSION,
    VOCAB,
    BarLine,
    GrammarState,
    Kind,
    NoteEnd,
    NoteStart,
    Phase,
    PhraseEnd,
    PhraseStart,
    Role,
    StreamDecoder,
    StreamEncoder,
    allowed_mask,
    decode_phrase,
    encode_phrase,
    encode_solo,
    vocab_fingerprint,
)

METRES = [Metre(n, 4) for n in range(2, 10)] + [Metre(6, 8), Metre(7, 8), Metre(12, 8)]
QUALITIES = list(QualityClass)


def chord(root: int, quality: QualityClass | None) -> Chord | None:
    """A Chord built directly (the token language needs only root and quality class)."""
    if quality is None:
        return None
    return Chord(f"{root}{quality.value}", root, quality.value, quality, (root,), ())


def change(tick: int, root: int, quality: QualityClass | None) -> ChordChange:
    c = chord(root, quality)
    return ChordChange(tick / TICKS_PER_BEAT, c.symbol if c else "NC", c)


def beats(ticks: int) -> float:
    return ticks / TICKS_PER_BEAT


# -- strategies ------------------------------------------------------------------------


@st.composite
def phrases(draw: st.DrawFn, max_notes: int = 24) -> Phrase:
    """A grid-quantised monophonic phrase with chords, in one of the metres."""
    metre = draw(st.sampled_from(METRES))
    tick = draw(st.integers(0, 3 * metre.ticks_per_bar))
    notes = []
    for _ in range(draw(st.integers(0, max_notes))):
        tick += draw(st.one_of(st.just(0), st.integers(0, 2 * metre.ticks_per_bar)))
        dur = draw(st.one_of(st.integers(1, 24), st.integers(1, 5 * MAX_DUR_TICKS)))
        notes.append(
            Note(draw(st.integers(0, 127)), draw(st.integers(1, 127)), beats(tick), beats(dur))
        )
        tick += dur
    changes = [
        change(
            draw(st.integers(-24, tick + 24)),
            draw(st.integers(0, 11)),
            draw(st.sampled_from([*QUALITIES, None])),
        )
        for _ in range(draw(st.integers(0, 10)))
    ]
    return Phrase.of(notes, changes, metre)


def expected_chords(phrase: Phrase, key: int) -> list[tuple[float, int, QualityClass | None]]:
    """The chord timeline a stream carries: on the grid, from tick 0, before the phrase end,
    one change per position (the last), repeats of the chord in force left out."""
    end = round(phrase.end * TICKS_PER_BEAT)
    by_tick: dict[int, ChordChange] = {}
    for c in sorted(phrase.chords, key=lambda c: c.onset):
        by_tick[max(0, round(c.onset * TICKS_PER_BEAT))] = c
    out: list[tuple[float, int, QualityClass | None]] = []
    last: tuple[int, QualityClass | None] | None = None
    for tick in sorted(by_tick):
        if tick >= end:
            break
        held = by_tick[tick].chord
        value = (-1, None) if held is None else ((held.root - key) % 12, held.quality_class)
        if value != last:
            out.append((beats(tick), *value))
            last = value
    return out


def decoded_chords(phrase: Phrase, key: int) -> list[tuple[float, int, QualityClass | None]]:
    out: list[tuple[float, int, QualityClass | None]] = []
    for c in phrase.chords:
        if c.chord is None:
            out.append((c.onset, -1, None))
        else:
            out.append((c.onset, (c.chord.root - key) % 12, c.chord.quality_class))
    return out


def assert_grammatical(tokens: list[int], metre: Metre) -> None:
    """Every token is one the grammar (and the sampler's position rules) would allow."""
    state = GrammarState(metre)
    for i, token in enumerate(tokens):
        assert allowed_mask(Phase(state.phase))[token], (
            f"{VOCAB.token_name(token)} not allowed in {Phase(state.phase).name} at {i}: "
            f"{VOCAB.describe(tokens[max(0, i - 8) : i + 1])}"
        )
        if VOCAB.is_pos(token):
            assert state.pos < VOCAB.value(token) < state.ticks_per_bar
        state.feed(token)


# -- vocabulary ------------------------------------------------------------------------


def test_vocabulary_layout() -> None:
    assert VOCAB.size == len(VOCAB) == 430
    assert len(set(VOCAB.names)) == VOCAB.size
    assert VOCAB.token_name(VOCAB.pad) == "PAD" and VOCAB.pad == 0
    covered = sorted(i for kind in Kind for i in VOCAB.ids(kind))
    assert covered == list(range(VOCAB.size))
    for token in range(VOCAB.size):
        assert VOCAB.token_id(VOCAB.token_name(token)) == token
        assert token in VOCAB.ids(VOCAB.kind(token))
    assert len(VOCAB.pos_ids) == MAX_BAR_TICKS == 144
    assert VOCAB.token_name(VOCAB.pitch(60)) == "PITCH_60" and VOCAB.is_pitch(VOCAB.pitch(60))
    assert VOCAB.token_name(VOCAB.dur(48)) == "DUR_48" and VOCAB.value(VOCAB.dur(48)) == 48
    assert VOCAB.token_name(VOCAB.chord(7, QualityClass.DOMINANT)) == "CHORD_7_dom"
    assert VOCAB.chord_parts(VOCAB.chord(19, QualityClass.MINOR)) == (7, QualityClass.MINOR)
    assert VOCAB.chord_parts(VOCAB.chord_nc) is None
    for quality in QualityClass:  # every class the music layer knows has a token
        assert VOCAB.chord_parts(VOCAB.chord(0, quality)) == (0, quality)
    assert VOCAB.durs(200) == [VOCAB.dur(48)] * 4 + [VOCAB.dur(8)]
    assert VOCAB.durs(96) == [VOCAB.dur(48)] * 2
    assert VOCAB.parse(VOCAB.describe([1, 20, 300])) == [1, 20, 300]


def test_bad_names_and_ids_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="PITCH_200"):
        VOCAB.token_id("PITCH_200")
    with pytest.raises(ValueError, match="430"):
        VOCAB.token_name(430)
    with pytest.raises(ValueError, match="outside"):
        GrammarState().feed(-1)
    with pytest.raises(ValueError, match="144"):
        StreamEncoder(0, Metre(13, 4))


def test_version_and_fingerprint() -> None:
    assert TOKENIZER_VERSION >= 1
    fingerprint = vocab_fingerprint()
    assert len(fingerprint) == 16 and fingerprint == vocab_fingerprint()
    int(fingerprint, 16)


def test_allowed_kinds_cover_every_phase() -> None:
    assert len(ALLOWED_KINDS) == len(Phase)
    for phase in Phase:
        mask = allowed_mask(phase)
        assert len(mask) == VOCAB.size
        assert any(mask) and not mask[VOCAB.pad]


# -- round trip ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(phrases(), st.integers(0, 11), st.sampled_from(list(Role)))
def test_round_trip_reproduces_quantised_phrase(phrase: Phrase, key: int, role: Role) -> None:
    tokens = encode_phrase(phrase, key, role)
    assert tokens[0] == VOCAB.key(key)
    assert_grammatical(tokens, phrase.metre)
    decoded = decode_phrase(tokens, key, phrase.metre)
    assert decoded.notes == phrase.quantized().notes
    assert decoded_chords(decoded, key) == expected_chords(phrase, key)
    if phrase.notes:
        assert tokens.count(VOCAB.role(role)) == 1 and tokens[-1] == VOCAB.phrase_end


@settings(max_examples=150, deadline=None)
@given(phrases(), st.integers(0, 11), st.floats(1.0, 3.0))
def test_swing_does_not_touch_the_grid(phrase: Phrase, key: int, ratio: float) -> None:
    """Swung live input, unswung by the encoder, encodes exactly like the straight phrase."""
    swing = Swing(ratio)
    encoder = StreamEncoder(key, phrase.metre, phrase.chords, swing=swing)
    live = encoder.header()
    if phrase.notes:
        live += encoder.start_phrase(Role.PERFORMER, swing.render(phrase.notes[0].onset))
    notes = phrase.notes
    for i, note in enumerate(notes):
        live += encoder.note_on(note.pitch, note.velocity, swing.render(note.onset))
        if i + 1 == len(notes) or note.end <= notes[i + 1].onset:
            live += encoder.note_off(note.pitch, swing.render(note.end))
    if phrase.notes:
        live += encoder.end_phrase(swing.render(phrase.end))
    assert live == encode_phrase(phrase, key, Role.PERFORMER)


# -- live encoding ---------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(phrases(), st.integers(0, 11), st.data())
def test_streaming_equals_batch(phrase: Phrase, key: int, data: st.DataObject) -> None:
    """Events one at a time, in time order, with time advancing in between at random."""
    encoder = StreamEncoder(key, phrase.metre, phrase.chords)
    now = 0.0

    def advance_until(t: float) -> list[int]:
        nonlocal now
        out: list[int] = []
        for _ in range(data.draw(st.integers(0, 2))):
            now = data.draw(st.floats(now, max(now, t)))
            out += encoder.advance(now)
        now = max(now, t)
        return out

    live = encoder.header()
    notes = phrase.notes
    if notes:
        live += advance_until(notes[0].onset)
        live += encoder.start_phrase("performer", notes[0].onset)
    for i, note in enumerate(notes):
        live += advance_until(note.onset)
        live += encoder.note_on(note.pitch, note.velocity, note.onset)
        if i + 1 == len(notes) or note.end <= notes[i + 1].onset:
            live += advance_until(note.end)  # bar lines inside a note wait for its DUR
            live += encoder.note_off(note.pitch, note.end)
            live += encoder.note_off(note.pitch, note.end + 1)  # already ended: ignored
    if notes:
        live += advance_until(phrase.end)
        live += encoder.end_phrase(phrase.end)
    assert live == encode_phrase(phrase, key, Role.PERFORMER)


def test_note_tokens_come_out_as_soon_as_determined() -> None:
    encoder = StreamEncoder(0, Metre(4, 4), [change(0, 0, QualityClass.DOMINANT)])
    assert encoder.start_phrase(Role.PERFORMER, 1.0) == VOCAB.parse(
        "POS_0 CHORD_0_dom PHRASE_PERFORMER"
    )
    assert VOCAB.describe(encoder.note_on(60, 100, 1.02)) == "POS_12 VEL_6 PITCH_60"
    assert encoder.sounding == 60
    assert encoder.advance(9.0) == []  # two bar lines pass while the note sounds: held
    assert VOCAB.describe(encoder.note_off(60, 9.5)) == "DUR_48 DUR_48 DUR_6 BAR BAR"
    assert encoder.note_off(60, 9.6) == []
    assert encoder.bar == 2
    assert VOCAB.describe(encoder.note_on(62, 40, 9.74)) == "POS_21 VEL_2 PITCH_62"
    # a new note-on ends the sounding note at its onset
    assert VOCAB.describe(encoder.note_on(64, 40, 10.0)) == "DUR_3 POS_24 VEL_2 PITCH_64"
    assert VOCAB.describe(encoder.end_phrase(12.5)) == "DUR_30 BAR PHRASE_END"
    assert encoder.end_phrase(13.0) == [] and encoder.role is None


def test_late_and_colliding_events_are_clamped() -> None:
    encoder = StreamEncoder(0, Metre(4, 4))
    encoder.start_phrase(Role.AGENT, 0.0)
    encoder.note_on(60, 80, 1.0)
    encoder.note_off(60, 2.0)
    assert encoder.advance(5.0) == [VOCAB.bar]
    # arrives late (before the bar line already emitted): moved to the stream's present
    assert VOCAB.describe(encoder.note_on(62, 80, 3.5)) == "POS_0 VEL_5 PITCH_62"
    # a second note-on at the same tick: the first keeps one tick, the second moves
    assert VOCAB.describe(encoder.note_on(64, 80, 4.0)) == "DUR_1 POS_1 VEL_5 PITCH_64"
    assert VOCAB.describe(encoder.note_on(65, 80, math.nan)) == "DUR_1 POS_2 VEL_5 PITCH_65"
    assert encoder.note_off(1000, 5.0) == []  # not sounding: ignored
    # a restrike of the sounding pitch: the cut note's late note-off does not end the new one
    assert VOCAB.describe(encoder.note_on(65, 80, 6.0)) == "DUR_22 POS_24 VEL_5 PITCH_65"
    assert encoder.note_off(65, 6.02) == []
    assert VOCAB.describe(encoder.note_off(65, 6.5)) == "DUR_6"


def test_callable_chord_source_matches_list() -> None:
    changes = [change(t * 48, r, QualityClass.DOMINANT) for t, r in enumerate([0, 5, 0, 0, 7])]
    changes.insert(4, change(3 * 48 + 24, 9, QualityClass.MINOR))
    notes = [Note(60 + i, 90, 0.5 + 1.5 * i, 1.0) for i in range(12)]

    def source(at: float) -> ChordChange | None:
        return chord_in_force(changes, at)

    by_list = StreamEncoder(3, Metre(4, 4), changes).encode_notes(notes)
    by_call = StreamEncoder(3, Metre(4, 4), source).encode_notes(notes)
    assert by_call == by_list
    assert VOCAB.chord(6, QualityClass.MINOR) in by_list


def test_callable_chord_source_is_asked_at_bar_lines_and_beats() -> None:
    """Odd bars (7/8, starting mid-beat) and a source that reports the asking time."""
    metre = Metre(7, 8)

    def source(at: float) -> ChordChange:
        bar = math.floor(at / metre.beats_per_bar + 1e-9)
        c = chord(bar % 12, QualityClass.DOMINANT)
        return ChordChange(at, "", c)

    encoder = StreamEncoder(0, metre, source, start_bar=1)
    tokens = encoder.advance(metre.bar_start(4) + 0.1)
    assert VOCAB.describe(tokens) == (
        "POS_0 CHORD_1_dom BAR POS_0 CHORD_2_dom BAR POS_0 CHORD_3_dom BAR POS_0 CHORD_4_dom"
    )


def test_copies_rewind_independently_and_share_the_chord_source() -> None:
    class Form:
        calls = 0

        def chord_at(self, at: float) -> ChordChange:
            self.calls += 1
            return change(round(at // 4) * 48, 5 * (round(at // 4) % 2), QualityClass.DOMINANT)

    form = Form()
    encoder = StreamEncoder(0, Metre(4, 4), form.chord_at)
    encoder.start_phrase(Role.PERFORMER, 0.0)
    encoder.note_on(60, 90, 0.0)
    saved = copy.deepcopy(encoder)
    assert saved._chord_fn.__self__ is form  # type: ignore[union-attr]
    ahead = encoder.note_off(60, 1.0) + encoder.advance(9.0)
    assert VOCAB.describe(ahead) == "DUR_12 BAR POS_0 CHORD_5_dom BAR POS_0 CHORD_0_dom"
    assert saved.sounding == 60 and saved.bar == 0
    assert saved.note_off(60, 1.0) + saved.advance(9.0) == ahead
    assert encoder.copy().advance(13.0) == encoder.advance(13.0)


def test_start_bar_offsets_the_timeline() -> None:
    metre = Metre(3, 4)
    encoder = StreamEncoder(0, metre, start_bar=10)
    tokens = encoder.start_phrase(Role.PERFORMER, 30.0) + encoder.note_on(60, 64, 31.0)
    tokens += encoder.note_off(60, 34.0)
    assert VOCAB.describe(tokens) == "PHRASE_PERFORMER POS_12 VEL_4 PITCH_60 DUR_36"
    decoder = StreamDecoder(0, metre, start_bar=10)
    events = decoder.feed_all([*tokens, VOCAB.bar])
    assert NoteEnd(Note(60, 72, 31.0, 3.0)) in events
    assert events[-1] == BarLine(11, 33.0)


@st.composite
def live_sessions(draw: st.DrawFn) -> list[tuple[str, float, int]]:
    """Arbitrary live calls: unordered times, overlaps, stray note-offs, NaN."""
    times = st.one_of(st.floats(-4, 60), st.just(math.nan), st.just(math.inf))
    calls = st.tuples(
        st.sampled_from(["on", "off", "advance", "start", "end"]), times, st.integers(0, 127)
    )
    return draw(st.lists(calls, max_size=40))


@settings(max_examples=200, deadline=None)
@given(live_sessions(), st.sampled_from(METRES), st.integers(0, 11))
def test_live_encoder_never_raises_and_stays_monophonic(
    calls: list[tuple[str, float, int]], metre: Metre, key: int
) -> None:
    encoder = StreamEncoder(key, metre, [change(0, 0, QualityClass.MINOR), change(30, 2, None)])
    tokens = encoder.header()
    for name, at, value in calls:
        if name == "on":
            tokens += encoder.note_on(value, value, at)
        elif name == "off":
            tokens += encoder.note_off(value, at)
        elif name == "advance":
            tokens += encoder.advance(at)
        elif name == "start":
            tokens += encoder.start_phrase(Role.PERFORMER if value % 2 else Role.AGENT, at)
        else:
            tokens += encoder.end_phrase(at)
    assert_grammatical(tokens, metre)
    notes = decode_phrase(tokens, key, metre).notes
    for a, b in itertools.pairwise(notes):
        assert a.end <= b.onset + 1e-9


# -- decoding --------------------------------------------------------------------------


def test_note_start_is_available_at_its_pitch_token() -> None:
    tokens = VOCAB.parse("KEY_0 PHRASE_AGENT BAR POS_6 VEL_7 PITCH_67 DUR_48 DUR_48 DUR_5 POS_30")
    decoder = StreamDecoder(0, Metre(4, 4))
    seen: list[tuple[str, object]] = []
    for token in tokens:
        for event in decoder.feed(token):
            seen.append((VOCAB.token_name(token), event))
    assert seen[0] == ("PHRASE_AGENT", PhraseStart(Role.AGENT, 0.0))
    assert seen[1] == ("BAR", BarLine(1, 4.0))
    assert seen[2] == ("PITCH_67", NoteStart(67, 120, 4.5))
    # a DUR shorter than DUR_48 completes the note at once, without waiting for more
    assert seen[3] == ("DUR_5", NoteEnd(Note(67, 120, 4.5, (96 + 5) / 12)))
    assert len(seen) == 4
    assert decoder.flush() == []


def test_note_ending_on_dur48_completes_at_next_token_or_flush() -> None:
    decoder = StreamDecoder(0, Metre(4, 4))
    assert decoder.feed_all(VOCAB.parse("POS_0 VEL_3 PITCH_60")) == [NoteStart(60, 56, 0.0)]
    assert decoder.feed(VOCAB.dur(48)) == []
    assert decoder.flush() == [NoteEnd(Note(60, 56, 0.0, 4.0))]
    decoder.feed_all(VOCAB.parse("BAR POS_0 VEL_3 PITCH_62 DUR_48"))
    events = decoder.feed(VOCAB.phrase_end)
    assert events == [NoteEnd(Note(62, 56, 4.0, 4.0))]


def test_ill_formed_sequences_decode_sensibly() -> None:
    decoder = StreamDecoder(0, Metre(4, 4))
    # PITCH without VEL (last/default velocity), without DUR (one tick), POS backwards
    events = decoder.feed_all(VOCAB.parse("PITCH_60 POS_24 VEL_1 PITCH_62 DUR_6 POS_12 PITCH_64"))
    events += decoder.flush()
    notes = [e.note for e in events if isinstance(e, NoteEnd)]
    assert notes == [
        Note(60, 88, 0.0, 1 / 12),
        Note(62, 24, 2.0, 0.5),
        Note(64, 24, 2.0, 1 / 12),  # the backwards POS was ignored
    ]
    # a phrase end without a phrase, a stray DUR, a POS past a short bar: no events, no error
    decoder = StreamDecoder(0, Metre(2, 4))
    assert decoder.feed_all(VOCAB.parse("PHRASE_END DUR_7 PAD POS_100 VEL_0 PITCH_1 DUR_1")) == [
        NoteStart(1, 8, 23 / 12),
        NoteEnd(Note(1, 8, 23 / 12, 1 / 12)),
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, VOCAB.size - 1), max_size=300),
    st.sampled_from(METRES),
    st.integers(0, 11),
)
def test_garbage_never_raises(tokens: list[int], metre: Metre, key: int) -> None:
    decoder = StreamDecoder(key, metre)
    events = []
    for token in tokens:
        events += decoder.feed(token)
    events += decoder.flush()
    starts = [e for e in events if isinstance(e, NoteStart)]
    ends = [e.note for e in events if isinstance(e, NoteEnd)]
    assert [(s.pitch, s.velocity, s.onset) for s in starts] == [
        (n.pitch, n.velocity, n.onset) for n in ends
    ]  # every note-on gets its note-off
    onsets = [e.at for e in events if isinstance(e, BarLine)]
    assert onsets == sorted(onsets)
    assert all(
        isinstance(e, PhraseEnd | PhraseStart | ChordChange | BarLine | NoteStart | NoteEnd)
        for e in events
    )


def test_key_change_and_bare_phrases() -> None:
    phrase = Phrase.of([Note(60, 64, 0.0, 1.0)], [change(0, 7, QualityClass.MAJOR)])
    bare = encode_phrase(phrase, 0, None, header=False)
    assert VOCAB.describe(bare) == "POS_0 CHORD_7_maj VEL_4 PITCH_60 DUR_12"
    decoder = StreamDecoder(0)
    first = decoder.feed_all(bare[:2])
    decoder.feed(VOCAB.key(2))  # a key change: later chord roots are relative to D
    later = decoder.feed_all(VOCAB.parse("POS_6 CHORD_7_maj"))
    assert [(c.onset, c.symbol) for c in first + later if isinstance(c, ChordChange)] == [
        (0.0, "Gj7"),
        (0.5, "Aj7"),
    ]


def test_live_key_change_waits_for_the_note_and_restates_the_chord() -> None:
    dom = QualityClass.DOMINANT
    encoder = StreamEncoder(7, Metre(4, 4), [change(0, 7, dom), change(96, 0, dom)])
    stream = encoder.header() + encoder.start_phrase(Role.PERFORMER, 0.0)
    stream += encoder.note_on(67, 80, 1.0)
    assert encoder.change_key(0) == []  # the note sounds: KEY follows its DUR
    assert VOCAB.describe(encoder.note_off(67, 2.0)) == "DUR_12 KEY_0"
    # G7 restated relative to C a tick after the present, then C7 at bar 2
    assert VOCAB.describe(encoder.advance(9.0)) == "POS_13 CHORD_7_dom BAR BAR POS_0 CHORD_0_dom"
    assert encoder.change_key(0) == []  # no change
    assert VOCAB.describe(encoder.change_key(5)) == "KEY_5"
    stream += VOCAB.parse("DUR_12 KEY_0 POS_13 CHORD_7_dom BAR BAR POS_0 CHORD_0_dom KEY_5")
    stream += encoder.note_on(65, 80, 9.0)
    grammar = GrammarState(Metre(4, 4))
    for token in stream:
        assert allowed_mask(Phase(grammar.phase))[token], VOCAB.describe([token])
        grammar.feed(token)
    decoded = StreamDecoder(7).feed_all(stream)
    assert [(c.onset, c.symbol) for c in decoded if isinstance(c, ChordChange)] == [
        (0.0, "G7"),
        (13 / 12, "G7"),
        (8.0, "C7"),
        (8 + 1 / 12, "C7"),
    ]


# -- grammar ---------------------------------------------------------------------------


def test_grammar_state_tracks_phrase_and_monophony() -> None:
    state = GrammarState(Metre(4, 4))
    for token in VOCAB.parse("KEY_2 PHRASE_PERFORMER POS_6 VEL_5 PITCH_62 DUR_48"):
        state.feed(token)
    assert state.phase == Phase.LONG_DUR and state.key == 2 and state.role is Role.PERFORMER
    state.feed(VOCAB.dur(12))
    assert state.phase == Phase.IDLE and state.note_end == 6 + 60 and state.phrase_notes == 1
    assert state.first_note_pos() == 66  # past the bar: only BAR can lead to the next note
    draft = state.copy()
    state.feed(VOCAB.bar)
    assert state.first_note_pos() == 18 and state.bar - state.phrase_bar == 1
    state.feed(VOCAB.pos(12))
    assert state.phase == Phase.POS_BUSY  # inside the last note: only a chord may come
    state.feed(VOCAB.chord(0, QualityClass.DOMINANT))
    assert state.phase == Phase.IDLE and state.chord == VOCAB.chord(0, QualityClass.DOMINANT)
    state.feed(VOCAB.pos(18))
    assert state.phase == Phase.POS
    assert draft.bar == 0 and draft.phase == Phase.IDLE  # the copy is independent


# -- solos -----------------------------------------------------------------------------


@dataclass
class _Blues:
    key: int = 5

    def solo(self) -> Solo:
        changes = [
            change(bar * 48, r, QualityClass.DOMINANT)
            for bar, r in enumerate([5, 10, 5, 5, 10, 10, 5, 5, 0, 10, 5, 0])
        ]
        notes = [Note(60 + (i * 5) % 12, 70 + i, 0.5 + i * 1.5, 1.0) for i in range(30)]
        return Solo(tuple(notes), tuple(changes), Metre(4, 4), self.key)


def test_encode_solo_phrases_alternate_roles() -> None:
    solo = _Blues().solo()
    whole = encode_solo(solo)
    assert whole[0] == VOCAB.key(5)
    assert whole.count(VOCAB.role(Role.PERFORMER)) == 1 and VOCAB.role(Role.AGENT) not in whole
    by_index = encode_solo(solo, [10, 20])
    phrases = [
        Phrase.of([n.shifted(-4.0 * 2) for n in solo.notes[0:10]], start_bar=2),
        Phrase.of([n.shifted(-4.0 * 3) for n in solo.notes[10:20]], start_bar=3),
        Phrase.of(solo.notes[20:30]),
    ]
    assert encode_solo(solo, phrases) == by_index
    roles = [t for t in by_index if VOCAB.is_role(t)]
    assert roles == [VOCAB.role("performer"), VOCAB.role("agent"), VOCAB.role("performer")]
    assert by_index.count(VOCAB.phrase_end) == 3
    assert_grammatical(by_index, solo.metre)
    assert decode_phrase(by_index, 5).notes == tuple(n.quantized() for n in solo.notes)
    with pytest.raises(ValueError, match="roles"):
        encode_solo(solo, [10], roles=[Role.AGENT])


# -- corpora ---------------------------------------------------------------------------


def _live_encode(solo: Solo) -> list[int]:
    """A solo as one performer phrase, played event by event in time order."""
    notes = sorted(solo.notes, key=lambda n: (round(n.onset * 12), round(n.end * 12), n.pitch))
    encoder = StreamEncoder(solo.key, solo.metre, solo.chords)
    tokens = encoder.header() + encoder.start_phrase(Role.PERFORMER, notes[0].onset)
    for i, note in enumerate(notes):
        tokens += encoder.advance(note.onset)
        tokens += encoder.note_on(note.pitch, note.velocity, note.onset)
        if i + 1 == len(notes) or round(note.end * 12) <= round(notes[i + 1].onset * 12):
            tokens += encoder.note_off(note.pitch, note.end)
    return tokens + encoder.end_phrase(max(n.end for n in notes))


def _check_corpus(solos: list[Solo]) -> None:
    from improv.corpus.phrases import segment

    assert solos
    kept = total = 0
    for solo in solos:
        tokens = encode_solo(solo, segment(solo))
        assert_grammatical(tokens, solo.metre)
        whole = encode_solo(solo)
        assert _live_encode(solo) == whole
        decoded = decode_phrase(whole, solo.key, solo.metre).notes
        quantised = sorted((n.quantized() for n in solo.notes), key=lambda n: (n.onset, n.pitch))
        assert len(decoded) == len(quantised)
        kept += sum(a == b for a, b in zip(decoded, quantised, strict=True))
        total += len(quantised)
    assert kept >= 0.95 * total  # the rest: grace notes sharing a tick, small overlaps


def test_generated_corpus_encodes_cleanly(generated_corpus: Path) -> None:
    from improv.corpus.folder import read_folder

    _check_corpus(read_folder(generated_corpus, progress=False).solos)


@pytest.mark.wjazzd
def test_wjazzd_solos_encode_cleanly(wjazzd: Path) -> None:
    from improv.corpus.reader import read_midi

    files = sorted((wjazzd / "solos").glob("*.mid"))[::15]
    _check_corpus([read_midi(file) for file in files])
