"""Matrix specs, calls the harness plays, and reading an agent's summary."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from improv.bench import matrix
from improv.bench.calls import FileCalls, GeneratedCalls, call_limits, fit_call, midi_files
from improv.bench.matrix import Base, expand, parse_matrix, rounds
from improv.bench.procs import summary_from_stdout
from improv.errors import UsageError
from improv.io.midi.files import Track, write_jam
from improv.music.notes import Note
from improv.music.time import Metre


def test_matrix_is_the_product_in_the_order_given() -> None:
    axes = parse_matrix(["model=rules,markov", "tempo=120,240", "burn=0,1"])
    configs = expand(Base(120.0, "trade", 2), axes, spawn=True)
    assert len(configs) == 8
    assert configs[0].name == "model=rules tempo=120 burn=0"
    assert configs[1].name == "model=rules tempo=120 burn=1"
    assert configs[-1].name == "model=markov tempo=240 burn=1"
    assert [c.tempo for c in configs[:4]] == [120.0, 120.0, 240.0, 240.0]
    assert configs[1].burn and not configs[0].burn
    assert configs[4].jam_options() == ["--model", "markov"]
    assert configs[4].settings()["model"] == "markov"


def test_no_matrix_is_one_default_configuration() -> None:
    (config,) = expand(Base(200.0, "phrase", 4, send_clock=True), [], spawn=False)
    assert config.name == "default"
    assert (config.tempo, config.mode, config.bars, config.send_clock) == (200.0, "phrase", 4, True)


@pytest.mark.parametrize(
    "specs",
    [["model"], ["model="], ["tempo=fast"], ["burn=maybe"], ["mode=solo"], ["bars=3"],
     ["tempo=1000"], ["model=a", "model=b"]],
)  # fmt: skip
def test_bad_specs_are_usage_errors(specs: list[str]) -> None:
    with pytest.raises(UsageError):
        expand(Base(120.0, "trade", 2), parse_matrix(specs), spawn=True)


def test_external_agents_vary_only_what_the_harness_plays() -> None:
    with pytest.raises(UsageError, match="--spawn"):
        expand(Base(120.0, "trade", 2), parse_matrix(["model=rules"]), spawn=False)
    assert len(expand(Base(120.0, "trade", 2), parse_matrix(["tempo=90,180"]), spawn=False)) == 2


def test_cuda_is_skipped_without_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matrix, "cuda_available", lambda: False)
    configs = expand(Base(120.0, "trade", 2), parse_matrix(["device=cpu,cuda"]), spawn=True)
    assert configs[0].skipped is None
    assert configs[1].skipped is not None and "CUDA" in configs[1].skipped


def test_rounds_interleave_turns_or_blocks() -> None:
    assert list(itertools.islice(rounds([0, 1, 2], 1), 7)) == [0, 1, 2, 0, 1, 2, 0]
    assert list(itertools.islice(rounds([0, 1], 2), 6)) == [0, 0, 1, 1, 0, 0]


@pytest.mark.parametrize("mode", ["trade", "phrase"])
def test_generated_calls_leave_room_for_the_agent(mode: str) -> None:
    metre = Metre()
    last_onset, last_end = call_limits(mode, 2, metre)
    calls = GeneratedCalls(3, mode, 2, metre)
    again = GeneratedCalls(3, mode, 2, metre)
    for bar in (0, 2, 4, 6, 8, 10):
        call = calls.call(bar)
        assert call == again.call(bar)  # seeded
        assert call and all(0 <= n.onset < last_onset and n.end <= last_end for n in call)


def test_fit_call_clips_and_drops() -> None:
    notes = [Note(60, 90, 0.0, 1.0), Note(62, 90, 4.5, 4.0), Note(64, 90, 6.0, 1.0)]
    fitted = fit_call(notes, "trade", 2, Metre())
    assert [(n.pitch, n.end) for n in fitted] == [(60, 1.0), (62, 7.75)]


def test_calls_are_cut_from_midi_files(tmp_path: Path) -> None:
    notes = [Note(60 + i, 90, 2.0 * i, 1.0) for i in range(12)]  # one every two beats
    write_jam(tmp_path / "take.mid", [Track("performer", notes)], bpm=100)
    (tmp_path / "notes.txt").write_text("not MIDI")
    assert midi_files(tmp_path) == [tmp_path / "take.mid"]
    calls = FileCalls(midi_files(tmp_path), "trade", 2, Metre())
    # 24 beats in 8-beat pieces; in each, onsets before beat 5 are played
    assert [[n.onset for n in c] for c in calls.calls] == [[0.0, 2.0, 4.0]] * 3
    assert [n.pitch for n in calls.call(0)] == [60, 61, 62]
    assert [n.pitch for n in calls.call(0)] == [64, 65, 66]
    with pytest.raises(UsageError):
        midi_files(tmp_path / "missing")


def test_summary_is_read_from_stdout() -> None:
    assert summary_from_stdout('{"turns": 3, "notes_out": 9}\n') == {"turns": 3, "notes_out": 9}
    noisy = 'loading\n{"turns": 1}\nbye\n{"turns": 2,\n "notes_out": 5}\n'
    assert summary_from_stdout(noisy) == {"turns": 2, "notes_out": 5}
    assert summary_from_stdout("") is None
    assert summary_from_stdout("no json here") is None
