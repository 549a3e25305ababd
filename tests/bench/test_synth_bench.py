"""``improv bench synth``: both variants measured, the synth fed in its rounds only."""

from __future__ import annotations

import json

import pytest

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
