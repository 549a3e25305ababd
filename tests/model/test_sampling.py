"""Sampling: temperature/top-p, and the musical masks of a response."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from improv.craft.measures import chord_tones_strong_beats
from improv.model.api import StreamingLM
from improv.model.lstm import LSTMLM, LSTMConfig, LSTMStream
from improv.model.markov import MarkovModel
from improv.model.sampling import (
    ChordWeights,
    ResponseConstraints,
    ResponseSampler,
    SamplingOptions,
    generate_response,
    sample,
)
from improv.music.chords import parse_chord
from improv.music.notes import ChordChange, Note
from improv.music.time import Metre
from improv.tokens import VOCAB, Kind, NoteEnd, Role, StreamDecoder, StreamEncoder

METRE = Metre(4, 4)
KEY = 5  # F


def _changes(symbols: list[str], beats_each: float = 2.0) -> list[ChordChange]:
    return [ChordChange(i * beats_each, s, parse_chord(s)) for i, s in enumerate(symbols * 4)]


CHORDS = _changes(["F7", "Bb7", "F7", "C7", "G-7", "C7"])


def _random_lm(seed: int = 0) -> StreamingLM:
    """An untrained LSTM with loud random weights: a model that proposes anything."""
    torch.manual_seed(seed)
    model = LSTMLM(LSTMConfig(VOCAB.size, n_embd=16, n_hidden=32, n_layer=1, dropout=0.0))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0)
    return LSTMStream(model.eval())


def _call() -> list[Note]:
    return [Note(60 + i, 90, 4.0 + i * 0.5, 0.5) for i in range(6)]


def test_sample_respects_mask_temperature_and_top_p() -> None:
    rng = np.random.default_rng(0)
    lp = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    mask = np.array([True, True, True, False])
    draws = [sample(lp, mask, SamplingOptions(1.0, 1.0), rng) for _ in range(2000)]
    assert 3 not in draws
    assert abs(draws.count(0) / 2000 - 0.5 / 0.95) < 0.05
    assert {sample(lp, mask, SamplingOptions(0.0, 1.0), rng) for _ in range(10)} == {0}
    nucleus = {sample(lp, mask, SamplingOptions(1.0, 0.7), rng) for _ in range(300)}
    assert nucleus == {0, 1}  # 0.53 + 0.32 >= 0.7: the third is cut
    with pytest.raises(ValueError):
        sample(lp, np.zeros(4, dtype=bool), SamplingOptions(), rng)


@pytest.mark.parametrize("seed", range(6))
def test_response_obeys_range_monophony_and_time(seed: int) -> None:
    start, deadline = 8.0, 15.0  # a bar-line start, the next turn 7 beats later
    constraints = ResponseConstraints(
        start=start, deadline=deadline, max_bars=4, pitch_range=(55, 70)
    )
    response = generate_response(
        _random_lm(seed),
        _call(),
        key=KEY,
        metre=METRE,
        chords=CHORDS,
        start=start,
        constraints=constraints,
        rng=seed,
    )
    notes = response.notes
    assert notes, "at least one note"
    assert response.tokens[-1] == VOCAB.phrase_end
    for note in notes:
        assert 55 <= note.pitch <= 70
        assert note.onset >= start
        assert note.end <= deadline + 1e-9
    for a, b in itertools.pairwise(notes):
        assert b.onset >= a.end - 1e-9, "monophonic: a note starts after the last one ends"
    kinds = {VOCAB.kind(t) for t in response.tokens}
    assert Kind.KEY not in kinds and Kind.ROLE not in kinds


def test_phrase_length_in_bars_ends_the_phrase() -> None:
    constraints = ResponseConstraints(start=4.0, max_bars=1, pitch_range=(40, 90))
    for seed in range(4):
        response = generate_response(
            _random_lm(seed),
            _call(),
            key=KEY,
            metre=METRE,
            chords=CHORDS,
            start=4.0,
            constraints=constraints,
            rng=seed,
        )
        assert all(n.end <= 8.0 + 1e-9 for n in response.notes)


def test_forced_chords_match_what_the_encoder_writes() -> None:
    """Re-encoding the response's notes gives the very tokens that were generated."""
    for seed in range(5):
        lm = _random_lm(seed)
        encoder = StreamEncoder(KEY, METRE, CHORDS)
        tokens = encoder.header() + encoder.encode_notes(_call(), Role.PERFORMER)
        tokens += encoder.start_phrase(Role.AGENT, 8.0)
        lm.advance(tokens)
        decoder = StreamDecoder(KEY, METRE)
        decoder.feed_all(tokens)
        sampler = ResponseSampler(
            lm,
            decoder,
            ResponseConstraints(start=8.0, deadline=20.0, pitch_range=(50, 80)),
            CHORDS,
            rng=seed,
        )
        out = sampler.run()
        notes = [e.note for e in decoder.feed_all(out) + decoder.flush() if isinstance(e, NoteEnd)]
        again: list[int] = []
        for note in notes:
            again += encoder.note_on(note.pitch, note.velocity, note.onset)
            again += encoder.note_off(note.pitch, note.end)
        # compare up to the last note's last DUR: what follows it depends on when it ends
        last = max(i for i, t in enumerate(out) if VOCAB.kind(t) == Kind.DUR)
        assert out[: last + 1] == again[: last + 1]
        assert sampler.forced > 0  # chord changes were stated by the sampler, not the model


def test_sampler_refuses_a_model_of_another_vocabulary() -> None:
    torch.manual_seed(0)
    small = LSTMStream(LSTMLM(LSTMConfig(10, n_embd=4, n_hidden=4, n_layer=1)).eval())
    with pytest.raises(ValueError, match="tokens"):
        ResponseSampler(small, StreamDecoder(), ResponseConstraints(start=0.0, max_bars=1))


def test_constraints_need_an_end() -> None:
    with pytest.raises(ValueError):
        ResponseConstraints(start=0.0)


def _harmony_blind_markov() -> MarkovModel:
    """A Markov model of chromatic lines over the changes: it knows the grammar and the
    rhythm, not the harmony (every pitch class as likely under every chord)."""
    rng = np.random.default_rng(5)
    sequences = []
    for _ in range(12):
        notes = [Note(int(rng.integers(55, 79)), 90, 0.5 * i, 0.45) for i in range(40)]
        encoder = StreamEncoder(KEY, METRE, CHORDS)
        sequences.append(encoder.header() + encoder.encode_notes(notes, Role.PERFORMER))
    return MarkovModel.from_sequences(sequences, VOCAB.size, order=3)


def _strong_chord_tones(lm: StreamingLM, harmony: ChordWeights | None) -> float:
    call = [Note(65, 90, 0.5 * i, 0.45) for i in range(8)]
    phrases = []
    for seed in range(24):
        constraints = ResponseConstraints(
            start=4.0, deadline=12.0, pitch_range=(55, 79), min_end=10.0, harmony=harmony
        )
        response = generate_response(
            lm, call, key=KEY, metre=METRE, chords=CHORDS, start=4.0,
            constraints=constraints, rng=seed,
        )  # fmt: skip
        phrases.append(tuple(response.notes))
    shares = [chord_tones_strong_beats(p, CHORDS, METRE) for p in phrases]
    return float(np.nanmean(shares))


def test_chord_weights_put_chord_tones_on_strong_beats() -> None:
    """The Markov fallback put chord tones on 0.25 of strong beats (humans about 0.5)."""
    markov = _harmony_blind_markov()
    blind = _strong_chord_tones(markov, None)
    weighted = _strong_chord_tones(markov, ChordWeights(2.0, 3.0))
    assert blind < 0.4
    assert weighted >= 0.45


def test_min_end_holds_the_phrase_open_until_the_slot_is_filled() -> None:
    lm = _random_lm(3)
    call = [Note(65, 90, 0.0, 0.5)]
    for seed in range(6):
        constraints = ResponseConstraints(start=4.0, deadline=11.5, min_end=9.0)
        response = generate_response(
            lm, call, key=KEY, metre=METRE, chords=CHORDS, start=4.0,
            constraints=constraints, rng=seed,
        )  # fmt: skip
        last = max(n.end for n in response.notes)
        assert 9.0 <= last <= 11.5
