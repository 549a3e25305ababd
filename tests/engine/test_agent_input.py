"""The agent's input side under hostile input, end to end (loopback and real JACK
ports): nothing the performer sends can make improv deaf, silence its model, or let
what goes out on the wire differ from what is recorded and counted."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from improv.engine.config import JamConfig
from improv.engine.context import ANSWER, CALL, ChordTimeline
from improv.engine.recording import NoteJournal, read_journal
from improv.engine.responders import TokenResponder, _markov_from_rules
from improv.io import midi
from improv.io.midi import note_off, note_on
from improv.music.notes import Note
from improv.timebase import now
from tests.engine.rig import FAST, Listening, Rig, call_notes, is_cc123, spawn_jam
from tests.fixtures.jack import lost_cycles

pytestmark = pytest.mark.realtime


async def test_one_unterminated_sysex_does_not_make_improv_deaf(
    wiring: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """``F0 01 02`` and nothing more: the next call is heard, answered and counted."""
    call = call_notes(6.0)
    with caplog.at_level(logging.WARNING, logger="improv.io.midi.messages"):
        async with Rig(**wiring) as rig:
            rig.performer_out.send(bytes([0xF0, 0x01, 0x02]))
            rig.play(call, at_beat=16.0)  # the performer's slot, bars 4-5: no F7 follows
            await asyncio.wait_for(rig.recorder.answered.wait(), 8.0)
            summary = await rig.stop()
    assert summary.notes_in == len(call)
    assert summary.malformed_in >= 1
    assert any("unterminated sysex" in r.getMessage() for r in caplog.records)
    assert summary.turns >= 1 and rig.note_ons(0)
    rig.assert_nothing_left_sounding()


async def test_after_a_dense_burst_the_model_answers_the_next_call() -> None:
    """3,000 note pairs in about a second, then a normal call: the model (not a
    fallback) answers it, and the burst is counted."""
    config = JamConfig(**FAST)
    markov = TokenResponder(
        _markov_from_rules(choruses=8),
        name="markov",
        key=config.key_obj,
        metre=config.metre_obj,
        chords=ChordTimeline(config.form_obj()),  # the same chords as the agent's
    )
    async with Rig(primary=markov) as rig:
        out = rig.performer_out
        for i in range(3000):
            pitch = 30 + i % 70
            out.send(note_on(0, pitch, 90))
            out.send(note_off(0, pitch))
            if i % 100 == 99:
                await asyncio.sleep(0.03)  # about a second in all, as the fuzzer sent it
        rig.play(call_notes(6.0), at_beat=32.0)  # a normal call, bars 8-9
        await rig.recorder.until_bar(13)
        summary = await rig.stop()
    turn = next(n for role, p, n in rig.recorder.phrases if role == "answer" and p.start_bar == 10)
    answer = next(m for m in rig.recorder.metrics if m["turn"] == turn)
    assert answer["notes_out"] > 0 and answer["fallback_notes"] == 0
    assert answer["deadline_misses"] == 0
    assert summary.notes_in == 3000 + len(call_notes(6.0))
    assert summary.notes_coalesced > 2500
    assert rig.agent.journal.count(CALL) == summary.notes_in - summary.notes_coalesced


async def test_what_is_sent_is_what_is_recorded_and_counted(
    wiring: dict[str, Any], tmp_path: Path
) -> None:
    """Barge-ins the agent hears late (its loop stalled while the answer plays on):
    every answer note on the wire is in the record and in ``notes_out``, no other."""
    journal = NoteJournal(tmp_path / "jam.journal")
    async with Rig(**wiring, lookahead_ms=400.0, journal=journal) as rig:
        for turn, into in enumerate((0.25, 1.0, 2.5)):  # how far into the answer (beats)
            base = 16.0 * turn  # calls at bars 0, 4, 8; answers at bars 2-3, 6-7, 10-11
            rig.play(call_notes(6.0), at_beat=base)
            await rig.recorder.until_bar(4 * turn + 2)
            barge = base + 8.0 + into
            rig.play([Note(84, 100, 0.0, 0.3)], at_beat=barge)
            while now() < rig.time_at(barge) - 0.01:
                await asyncio.sleep(0.005)
            time.sleep(0.3)  # the loop stalls: the barge-in is handled late
        await rig.recorder.until_bar(13)
        summary = await rig.stop()
    wire = [e.pitch for e in rig.note_ons(0)]
    sent = [e.pitch for e in rig.sent if e.is_note_on and e.channel == 0]
    journal.close()
    answers = [note for role, note in read_journal(journal.path) if role == ANSWER]
    record = [n.pitch for n in sorted(answers, key=lambda n: n.onset)]
    assert wire, "the answers were heard"
    assert record == sent  # what improv's sender says it sent
    assert summary.notes_out == len(sent)
    assert wire == sent or lost_cycles(), "the wire differs from what was sent"


@pytest.mark.jack
async def test_the_record_file_holds_what_went_out(jack_server: str, tmp_path: Path) -> None:
    """``improv jam --record``: calls, a barge-in over an answer, SIGINT mid-answer; the
    improv track of the file and ``notes_out`` are the notes the listener heard."""
    import mido

    performer = midi.open_output(virtual=True, api="jack", client_name="performer")
    listener = midi.open_input(virtual=True, api="jack", client_name="listener")
    record = tmp_path / "jam.mid"
    heard = Listening(listener)
    process = await spawn_jam("--record", str(record))
    try:
        for barge in (False, True, False):
            for i in range(8):  # a call (on the agent's clock: whenever it is)
                performer.send(note_on(0, 60 + i, 90))
                await asyncio.sleep(0.08)  # playing, not synchronising
                performer.send(note_off(0, 60 + i))
            await heard.receive_until(lambda e: e.is_note_on and e.channel == 0, 10.0)
            await asyncio.sleep(0.3 if barge else 1.2)  # into the answer, or past it
            if barge:
                performer.send(note_on(0, 84, 100))
                performer.send(note_off(0, 84))
        await heard.receive_until(lambda e: e.is_note_on and e.channel == 0, 10.0)
        process.send_signal(signal.SIGINT)  # in the middle of an answer
        async with asyncio.timeout(20):
            stdout, _ = await process.communicate()
        await heard.receive_until(is_cc123, 5.0)
        await heard.drain()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        performer.close()
        listener.close()
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    wire = sorted(e.pitch for e in heard.note_ons(0))
    (track,) = [t for t in mido.MidiFile(record).tracks if t.name == "improv"]
    recorded = sorted(m.note for m in track if m.type == "note_on" and m.velocity > 0)
    assert wire and recorded == wire
    assert summary["notes_out"] == len(wire)
