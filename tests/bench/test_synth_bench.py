"""``improv bench synth``: both variants measured, the synth fed in its rounds only."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from improv.bench.synth_bench import find_onsets, onset_figures
from improv.cli import main


@pytest.mark.bench
def test_bench_synth_measures_both_variants(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "synth", "--rounds", "2", "--seconds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    without, with_synth = out["send"]
    assert (without["variant"], with_synth["variant"]) == ("without synth", "with synth")
    assert without["messages"] == with_synth["messages"] > 0
    print(f"\nsend error p50/p99/max ms, audio {out['audio']}:")
    for figures in out["send"]:
        print(
            f"  {figures['variant']}: {figures['p50_ms']} / {figures['p99_ms']} / "
            f"{figures['max_ms']} ({figures['late']} over 1 ms)"
        )
    # every note-on and note-off improv sent in the synth's rounds reached the synth
    assert out["synth"]["improv"]["messages"] >= with_synth["messages"] * 8 // 10
    assert out["synth"]["metronome"]["messages"] > 0
    assert out["synth"]["performer"]["messages"] > 0
    onset = out["audio_onset"]
    print(f"  audio onset error (about the median): {onset}")
    assert onset["found"] == onset["notes"] > 0 and onset["error_ms_p99"] is not None


def test_onsets_are_found_where_hits_begin(tmp_path: Path) -> None:
    """Decaying tones with a tail of noise between them: each onset found to the
    sample; the figures pair them with their times and take the median out."""
    rate = 48000
    rng = np.random.default_rng(0)
    starts = [4800, 16800, 28805, 40800]  # the third 5 samples late
    audio = rng.normal(0, 20, rate).astype(np.float32)  # a quiet floor
    t = np.arange(3000) / rate
    for start in starts:
        audio[start : start + 3000] += 8000 * np.sin(2 * np.pi * 330 * t) * np.exp(-t * 60)
    path = tmp_path / "hits.wav"
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(audio.astype("<i2").tobytes())
    onsets = find_onsets(path)
    assert len(onsets) == len(starts)
    for found, start in zip(onsets, starts, strict=True):
        assert 0 <= found * rate - start < 4  # the sine passes a tenth of its peak at once
    times = [100.0 + s / rate for s in (4800, 16800, 28800, 40800)]
    figures = onset_figures(onsets, times)
    assert figures["found"] == 4 and figures["error_ms_max"] == pytest.approx(5 / 48, abs=0.03)
    assert onset_figures(onsets[:3], times)["error_ms_p99"] is None  # a hit missing
