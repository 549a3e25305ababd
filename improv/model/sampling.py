"""Sampling a response, token by token, under musical constraints applied as masks.

A model proposes a distribution over the whole vocabulary; the grammar
(:class:`improv.tokens.GrammarState`) and the situation decide what may come next:

- the token grammar itself (VEL then PITCH then DUR ...), with no KEY, phrase-start or
  CHORD token sampled: chords are the form's, not the model's, and are *forced* into
  the stream where time passes a chord change, exactly where the encoder puts them;
- monophony: a new note starts at or after the last note's end;
- the instrument's pitch range;
- time: no note starts before the response's start, and none extends past its end,
  which is the earlier of ``max_bars`` bars after the start and the ``deadline`` (when
  the next turn begins); past that only ``PHRASE_END`` remains.

Temperature, top-p (nucleus) and a numpy ``Generator`` shape the draw. The engine calls
:meth:`ResponseSampler.step` from its worker thread; each call samples one token (plus
any chord forced before it), advances the model and returns the new tokens, which the
engine decodes with :class:`improv.tokens.StreamDecoder`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from improv.model.api import StreamingLM
from improv.music.chords import chord_scale
from improv.music.notes import ChordChange, Note
from improv.music.scales import Scale
from improv.music.time import TICKS_PER_BEAT, Metre
from improv.tokens import (
    MAX_DUR_TICKS,
    VOCAB,
    GrammarState,
    Kind,
    NoteEnd,
    Phase,
    Role,
    StreamDecoder,
    StreamEncoder,
    allowed_mask,
    chord_change_parts,
)

ChordSource = Sequence[ChordChange] | Callable[[float], ChordChange | None]

_POS0 = VOCAB.pos_ids.start
_DUR0 = VOCAB.dur_ids.start - 1  # _DUR0 + ticks is DUR_<ticks>
_PITCH0 = VOCAB.pitch_ids.start


@cache
def _phase_mask(phase: int) -> np.ndarray:
    """Grammar mask of a phase, without the kinds a response never samples."""
    mask = np.array(allowed_mask(Phase(phase)), dtype=bool)
    for kind in (Kind.PAD, Kind.KEY, Kind.ROLE, Kind.CHORD):
        ids = VOCAB.ids(kind)
        mask[ids.start : ids.stop] = False
    mask.flags.writeable = False
    return mask


@dataclass(frozen=True)
class SamplingOptions:
    """How to draw from a distribution: temperature (0: greedy) and nucleus mass."""

    temperature: float = 1.0
    top_p: float = 0.95

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0: {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must lie in (0, 1]: {self.top_p}")


def sample(
    log_probs: np.ndarray, mask: np.ndarray, options: SamplingOptions, rng: np.random.Generator
) -> int:
    """One token id drawn from ``log_probs`` restricted to ``mask`` (which must allow one)."""
    allowed = np.flatnonzero(mask)
    if len(allowed) == 0:
        raise ValueError("the mask allows no token")
    lp = log_probs[allowed].astype(np.float64)
    finite = np.isfinite(lp)
    if not finite.any():  # the model gives no mass to anything allowed: choose uniformly
        return int(allowed[rng.integers(len(allowed))])
    if options.temperature == 0.0:
        return int(allowed[int(np.argmax(lp))])
    logits = lp / options.temperature
    p = np.exp(logits - logits[finite].max())
    p[~finite] = 0.0
    p /= p.sum()
    if options.top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cumulative = np.cumsum(p[order])
        keep = int(np.searchsorted(cumulative, options.top_p)) + 1  # smallest set >= top_p
        nucleus = order[:keep]
        q = p[nucleus] / p[nucleus].sum()
        return int(allowed[nucleus[int(rng.choice(len(q), p=q))]])
    return int(allowed[int(rng.choice(len(p), p=p))])


@dataclass(frozen=True)
class ChordWeights:
    """Log-probability added to pitches by the chord in force at the note's onset: a
    bonus for chord tones on strong beats (beats 1 and 3 of 4/4), a penalty for pitches
    outside the chord's scale and the key's blues scale. A model that knows the
    harmony (the neural ones' harmony bias) needs little; the Markov fallback more."""

    tone_bonus: float = 1.5
    outside_penalty: float = 2.0

    def bias(self, chord_token: int, key: int, strong: bool) -> np.ndarray:
        """The additive bias over the vocabulary (zeros under no chord)."""
        return _chord_bias(self.tone_bonus, self.outside_penalty, chord_token, key, strong)


@cache
def _chord_bias(
    bonus: float, penalty: float, chord_token: int, key: int, strong: bool
) -> np.ndarray:
    out = np.zeros(VOCAB.size, dtype=np.float32)
    if chord_token < 0 or chord_token not in VOCAB.chord_ids:
        out.flags.writeable = False
        return out
    _, chord = chord_change_parts(chord_token, key)
    if chord is None:
        out.flags.writeable = False
        return out
    tones = frozenset(chord.tones)
    inside = chord_scale(chord).pitch_classes | tones | Scale.named("blues", key).pitch_classes
    for pitch in range(128):
        pc = pitch % 12
        if strong and pc in tones:
            out[_PITCH0 + pitch] = bonus
        elif pc not in inside:
            out[_PITCH0 + pitch] = -penalty
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class ResponseConstraints:
    """Where and how a response may play (beats in the stream's timeline)."""

    start: float  # no note before this position
    deadline: float | None = None  # no note may sound past this position
    max_bars: float | None = None  # nor past this many bars after the start
    pitch_range: tuple[int, int] = (0, 127)
    min_notes: int = 1  # PHRASE_END only once this many notes are out (when time allows)
    min_end: float | None = None  # nor before the last note has ended here (a filled slot)
    harmony: ChordWeights | None = None  # pitches weighted by the chord in force

    def __post_init__(self) -> None:
        if self.deadline is None and self.max_bars is None:
            raise ValueError("a response needs a deadline or a maximum length in bars")
        if self.min_notes < 0:
            raise ValueError(f"min_notes must be >= 0: {self.min_notes}")
        low, high = self.pitch_range
        if not 0 <= low <= high <= 127:
            raise ValueError(f"bad pitch range {self.pitch_range}")


def chord_ticks(
    chords: ChordSource, key: int, origin: float, start_tick: int, end_tick: int
) -> list[tuple[int, int]]:
    """(tick, CHORD token) of the changes at or after ``start_tick``, as the encoder states
    them: a change is polled at every beat when ``chords`` is a function."""
    if callable(chords):
        changes: list[ChordChange] = []
        for tick in range(start_tick, end_tick + TICKS_PER_BEAT, TICKS_PER_BEAT):
            change = chords(origin + tick / TICKS_PER_BEAT)
            if change is not None:
                changes.append(change)
    else:
        changes = sorted(chords, key=lambda c: c.onset)
    out: list[tuple[int, int]] = []
    for change in changes:
        tick = max(start_tick, round((change.onset - origin) * TICKS_PER_BEAT))
        if tick > end_tick:
            continue
        token = VOCAB.chord_of(change.chord, key)
        if out and out[-1][0] >= tick:
            out[-1] = (out[-1][0], token)  # the last change at one position wins
        elif not out or out[-1][1] != token:
            out.append((tick, token))
    return out


class ResponseSampler:
    """Generates one agent phrase from a model, token by token, under constraints.

    ``lm`` and ``grammar`` must stand at the same point of the stream: right after the
    agent's phrase token (``StreamEncoder.start_phrase(Role.AGENT, start)``), both fed
    the same tokens. The sampler advances ``lm`` (take a snapshot first to roll back) and
    works on its own copy of ``grammar``. ``origin`` is the position (beats) of the
    stream's tick 0: the bar line of the encoder's ``start_bar``.
    """

    def __init__(
        self,
        lm: StreamingLM,
        grammar: GrammarState,
        constraints: ResponseConstraints,
        chords: ChordSource = (),
        *,
        origin: float = 0.0,
        options: SamplingOptions | None = None,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        if lm.vocab_size != VOCAB.size:
            raise ValueError(f"model has {lm.vocab_size} tokens, the vocabulary {VOCAB.size}")
        self.lm = lm
        self.grammar = grammar.copy()
        self.constraints = constraints
        self.options = options or SamplingOptions()
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        g = self.grammar
        self.tpb = g.ticks_per_bar
        self.start_tick = round((constraints.start - origin) * TICKS_PER_BEAT)
        ends = []
        if constraints.deadline is not None:
            ends.append(round((constraints.deadline - origin) * TICKS_PER_BEAT))
        if constraints.max_bars is not None:
            ends.append(self.start_tick + round(constraints.max_bars * self.tpb))
        self.end_tick = max(self.start_tick, min(ends))
        self._chords = chord_ticks(chords, g.key, origin, self.start_tick, self.end_tick)
        self._drop_stated_chord()
        low, high = constraints.pitch_range
        self._pitch_mask = np.zeros(VOCAB.size, dtype=bool)
        self._pitch_mask[_PITCH0 + low : _PITCH0 + high + 1] = True
        self.min_end_tick = (
            round((constraints.min_end - origin) * TICKS_PER_BEAT)
            if constraints.min_end is not None
            else None
        )
        self.tokens: list[int] = []
        self.forced = 0
        self.done = False

    # -- the state machine ---------------------------------------------------------------

    @property
    def notes(self) -> int:
        return self.grammar.phrase_notes if self.grammar.role is Role.AGENT else 0

    def step(self) -> list[int]:
        """Sample the next token (after any forced chord change); the tokens added."""
        if self.done:
            return []
        start = len(self.tokens)
        for _ in range(8):  # forced chords, then the model's own token
            if self.draw_once():
                break
        return self.tokens[start:]

    def draw_once(self) -> bool:
        """One draw from the model. True when the drawn token went out; False when chord
        changes had to be stated first (they went out instead, and the draw is to be made
        again with them heard). A batched driver calls this once the model has heard
        every token emitted so far."""
        token = self._draw()
        forced = self._forced_before(token)
        for t in forced:
            self._emit(t)
            self.forced += 1
        if forced and token != VOCAB.phrase_end:
            return False
        self._emit(token)
        if token == VOCAB.phrase_end:
            self.done = True
        return True

    def run(self, max_tokens: int = 4096) -> list[int]:
        """Step until the phrase ends (``max_tokens`` bounds a misbehaving model)."""
        while not self.done and len(self.tokens) < max_tokens:
            self.step()
        if not self.done:
            self.finish()
        return self.tokens

    def _emit(self, token: int) -> None:
        self.lm.advance((token,))
        self.grammar.feed(token)
        self.tokens.append(token)

    def finish(self) -> None:
        """End the phrase now, closing an open note at once if needed."""
        g = self.grammar
        if g.phase == Phase.VEL:
            self._emit(_PITCH0 + self.constraints.pitch_range[0])
        if g.phase == Phase.PITCH:
            self._emit(_DUR0 + 1)
        self._emit(VOCAB.phrase_end)
        self.done = True

    def _draw(self) -> int:
        mask = self.mask()
        if not mask.any():
            return VOCAB.phrase_end
        log_probs = self.lm.next_log_probs()
        harmony = self.constraints.harmony
        g = self.grammar
        if harmony is not None and g.phase == Phase.VEL:  # the pitch comes next
            beat, rest = divmod(g.tick - g.bar * self.tpb, TICKS_PER_BEAT)
            strong = rest == 0 and beat % 2 == 0
            log_probs = log_probs + harmony.bias(g.chord, g.key, strong)
        return sample(log_probs, mask, self.options, self.rng)

    # -- masks ----------------------------------------------------------------------------

    def mask(self) -> np.ndarray:
        """Tokens allowed next by the grammar and the constraints."""
        g = self.grammar
        mask = _phase_mask(g.phase).copy()
        phase = Phase(g.phase)
        end, tpb = self.end_tick, self.tpb
        if phase is Phase.VEL:
            return mask & self._pitch_mask
        dur = VOCAB.dur_ids
        if phase in (Phase.PITCH, Phase.LONG_DUR):
            room = end - (g.note_tick + g.note_dur)
            mask[dur.start + max(0, min(MAX_DUR_TICKS, room)) : dur.stop] = False
        bar_start = g.bar * tpb
        # POS: after the last position and note, at or after the start, with room left
        first = max(0, g.first_note_pos(), self.start_tick - bar_start)
        last = min(tpb - 1, end - 1 - bar_start)
        pos = VOCAB.pos_ids
        if first > last:
            mask[pos.start : pos.stop] = False
        else:
            mask[pos.start : _POS0 + first] = False
            mask[_POS0 + last + 1 : pos.stop] = False
        if bar_start + tpb >= end:
            mask[VOCAB.bar] = False
        if not self.start_tick <= g.tick < end:
            mask[VOCAB.vel_ids.start : VOCAB.vel_ids.stop] = False
        if mask[VOCAB.phrase_end] and self._too_soon() and (mask & ~_end_only()).any():
            mask[VOCAB.phrase_end] = False
        return mask

    def _too_soon(self) -> bool:
        """Whether the phrase is still too short to end (too few notes, or its last note
        ends before ``min_end``)."""
        if self.notes < self.constraints.min_notes:
            return True
        return self.min_end_tick is not None and self.grammar.note_end < self.min_end_tick

    # -- forced chord changes ----------------------------------------------------------------

    def _drop_stated_chord(self) -> None:
        """A first change equal to the chord already in force is no change."""
        while self._chords and self._chords[0][1] == self.grammar.chord:
            self._chords.pop(0)

    def _forced_before(self, token: int) -> list[int]:
        """Chord changes (POS, CHORD) that the encoder would state before ``token``."""
        g = self.grammar
        if not self._chords:
            return []
        kind = VOCAB.kinds[token]
        bar_start = g.bar * self.tpb
        if kind == Kind.POS:
            limit = bar_start + VOCAB.values[token] + 1  # changes at or before the note
        elif kind == Kind.VEL:
            limit = g.tick + 1
        elif kind == Kind.BAR:
            limit = bar_start + self.tpb  # changes before the bar line
        elif kind == Kind.PHRASE_END:
            limit = min(max(g.tick, g.note_end), bar_start + self.tpb)
        else:
            return []
        tick, chord = self._chords[0]
        if tick >= limit:
            return []
        self._chords.pop(0)
        out = []
        pos = max(tick, g.tick) - bar_start
        if pos != g.pos:
            out.append(_POS0 + pos)
        out.append(chord)
        return out


@cache
def _end_only() -> np.ndarray:
    mask = np.zeros(VOCAB.size, dtype=bool)
    mask[VOCAB.phrase_end] = True
    return mask


@dataclass
class Response:
    """A generated response: its tokens (forced chords included) and its notes."""

    tokens: list[int]
    notes: list[Note] = field(default_factory=list)
    forced: int = 0


def prime(
    lm: StreamingLM,
    call: Sequence[Note],
    *,
    key: int,
    metre: Metre,
    chords: Sequence[ChordChange],
    start: float,
    context: Sequence[Note] = (),
) -> tuple[StreamEncoder, list[int]]:
    """A fresh stream that has heard (the context and) the call as the performer's, up
    to the agent's phrase starting at ``start``: the encoder there and the tokens fed."""
    encoder = StreamEncoder(key, metre, chords)
    tokens = encoder.header()
    if context:
        tokens += encoder.encode_notes(context, Role.PERFORMER)
    tokens += encoder.encode_notes(call, Role.PERFORMER)
    tokens += encoder.start_phrase(Role.AGENT, start)
    lm.reset()
    lm.advance(tokens)
    return encoder, tokens


def generate_response(
    lm: StreamingLM,
    call: Sequence[Note],
    *,
    key: int,
    metre: Metre,
    chords: Sequence[ChordChange],
    start: float,
    constraints: ResponseConstraints | None = None,
    options: SamplingOptions | None = None,
    rng: np.random.Generator | int | None = None,
    context: Sequence[Note] = (),
) -> Response:
    """Answer a call: encode (context and) call as the performer's, then sample the agent.

    Beats count from bar 0 of the stream (the chords' and notes' timeline). One draft,
    no critic: a convenience for scripts and for testing the sampler's constraints; the
    jam and ``improv eval`` answer through :func:`improv.model.compose.compose`.
    """
    decoder = StreamDecoder(key, metre)
    decoder.feed_all(
        prime(lm, call, key=key, metre=metre, chords=chords, start=start, context=context)[1]
    )
    if constraints is None:
        span = max((n.end for n in call), default=start) - min((n.onset for n in call), default=0)
        bars = max(1, -(-span // metre.beats_per_bar))
        constraints = ResponseConstraints(start=start, max_bars=bars)
    sampler = ResponseSampler(lm, decoder, constraints, chords, options=options, rng=rng)
    out = sampler.run()
    notes = [e.note for e in decoder.feed_all(out) + decoder.flush() if isinstance(e, NoteEnd)]
    return Response(out, notes, sampler.forced)
