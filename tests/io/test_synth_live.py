"""The live synth: its own process, fed by improv's real sender process and the input's tap.

Through FluidSynth's file driver (an audio output that needs no sound card, rendering in
real time) the notes sent come out as sound; through a JACK dummy server the synth
opens a real audio client; with no audio output at all it is one line.
"""

from __future__ import annotations

import time
import wave
from pathlib import Path

import numpy as np
import pytest

from improv.cli import main
from improv.engine.session import Ports, feed_synth
from improv.io.midi.loopback import loopback
from improv.io.synth import SynthUnavailable, find_soundfont
from improv.io.synth.process import PERFORMER_CHANNELS, SynthProcess
from improv.output.sender import OutputSpec, ProcessScheduler
from improv.timebase import now

try:
    SOUNDFONT = find_soundfont()
except SynthUnavailable:  # pragma: no cover - the set-up installs one
    SOUNDFONT = None
pytestmark = [
    pytest.mark.skipif(SOUNDFONT is None, reason="no GM SoundFont installed"),
    pytest.mark.realtime,
]

# a file driver period of 441 frames is 10 ms: its timer then keeps real time
FILE_AUDIO = {"audio.period-size": 441}


def _figures(synth: SynthProcess, want: dict[str, int], timeout_s: float = 3.0) -> dict:
    """The synth's figures once it has had ``want`` messages per part (datagrams are on
    their way a moment after the send)."""
    deadline = time.monotonic() + timeout_s
    while True:
        figures = synth.stats()
        got = {part: figures.get(part, {}).get("messages", 0) for part in want}
        if got == want or time.monotonic() > deadline:
            return figures
        time.sleep(0.02)


def test_what_improv_sends_and_the_performer_plays_is_heard(tmp_path: Path) -> None:
    audio = tmp_path / "live.wav"
    settings = {**FILE_AUDIO, "audio.file.name": str(audio)}
    with SynthProcess(SOUNDFONT, ["file"], settings) as synth:  # type: ignore[arg-type]
        assert synth.driver == "file"
        performer_out, midi_in = loopback("performer")
        ports = Ports(midi_in, OutputSpec(discard=True), performer_out)
        ports = feed_synth(ports, synth, channel_out=0, thru=False)
        assert isinstance(ports.midi_out, OutputSpec)
        assert ports.midi_out.synth == synth.address
        sender = ProcessScheduler(ports.midi_out).start()
        try:
            start = now() + 0.3
            for i in range(4):  # improv's notes, on its channel 1, and the clicks on 10
                t = start + 0.15 * i
                sender.schedule_note(67 + i, 100, t, t + 0.1, channel=0)
                sender.schedule_note(76, 100, t, t + 0.04, channel=9)
            performer_out.send(bytes((0x90, 60, 100)))  # the performer, as it arrives
            performer_out.send(bytes((0x80, 60, 0)))
            time.sleep(max(0.0, start + 0.6 - now()))  # until the last note is sent
            figures = _figures(synth, {"improv": 8, "metronome": 8, "performer": 2})
        finally:
            sender.close()
    assert figures["improv"]["messages"] >= 8  # improv's channel 1 on improv's instrument
    assert figures["metronome"]["messages"] >= 8
    assert figures["performer"]["messages"] == 2
    assert 0.0 <= figures["improv"]["delay_ms_p50"] < 20.0  # sent, then at once to the synth
    with wave.open(str(audio), "rb") as wav:
        level = np.abs(np.frombuffer(wav.readframes(wav.getnframes()), np.int16)).max()
    assert level > 1000  # the notes came out of the audio output


def test_a_jack_server_is_an_audio_output(jack_server: str) -> None:
    with SynthProcess(SOUNDFONT, ["jack"]) as synth:  # type: ignore[arg-type]
        assert synth.driver == "jack"
        feed = synth.feed(PERFORMER_CHANNELS)
        feed.send(bytes((0x90, 60, 100)), now())
        feed.send(bytes((0x80, 60, 0)), now())
        assert _figures(synth, {"performer": 2})["performer"]["messages"] == 2
        assert feed.dropped == 0


def test_no_audio_output_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "improv-test-no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    with pytest.raises(SynthUnavailable) as caught:
        SynthProcess(SOUNDFONT, ["jack"]).start()  # type: ignore[arg-type]
    assert str(caught.value) == "no audio output (jack: no JACK server running)"
    monkeypatch.setenv("IMPROV_AUDIO_DRIVER", "jack")
    record = tmp_path / "jam.mid"
    argv = ["jam", "--demo", "--synth", "--choruses", "1", "--record", str(record)]
    assert main(argv) == 2  # at once: before the model loads, before a note
    assert " ".join(capsys.readouterr().err.split()) == (
        "error: --synth: no audio output (jack: no JACK server running)"
    )
    assert not record.exists()


def test_the_demo_says_in_one_line_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from argparse import Namespace

    from improv.commands.jam_sound import start_synth

    monkeypatch.setenv("JACK_DEFAULT_SERVER", "improv-test-no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    monkeypatch.setenv("IMPROV_AUDIO_DRIVER", "jack")
    demo = Namespace(demo=True, synth=None, render=None, soundfont=None)
    assert start_synth(demo, interactive=False) is None  # a script: not even tried
    assert not caplog.records
    assert start_synth(demo, interactive=True) is None  # a person: tried, and told
    assert [r.getMessage() for r in caplog.records] == [
        "no sound: no audio output (jack: no JACK server running); "
        "--render FILE.wav writes the jam's audio"
    ]


def test_what_the_sender_sends_plays_on_its_part() -> None:
    from improv.io.synth import DRUM_CHANNEL, IMPROV, PERFORMER
    from improv.io.synth.process import sender_channels

    channels = sender_channels(3, band=(2, 9))  # improv on MIDI channel 4, a bass on 3
    assert channels[3] == IMPROV.channel
    assert channels[DRUM_CHANNEL] == DRUM_CHANNEL  # the clicks and the band's drums
    assert channels[2] == 2  # the band's bass as it is: its program change chooses it
    assert channels[0] == channels[15] == PERFORMER.channel  # a performer passed --thru
