"""Evaluation: response statistics, the report, and ``improv eval`` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from improv.cli import main
from improv.corpus.folder import read_folder
from improv.model.build import build_model
from improv.model.checkpoint import make_checkpoint, save_checkpoint
from improv.model.dataset import encode
from improv.model.evaluate import (
    SOURCES,
    EvalReport,
    count_notes,
    derangement,
    evaluate,
    pair_tasks,
)
from improv.model.markov import MarkovModel, fit_markov
from improv.model.response_stats import POOLED_NAMES, STAT_NAMES, call_similarity
from improv.music.notes import Note, Solo
from improv.tokens import VOCAB

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def line(pitches: list[int], onsets: list[float]) -> list[Note]:
    return [Note(p, 80, o, 0.5) for p, o in zip(pitches, onsets, strict=True)]


# -- statistics of one response (the measures themselves: tests/craft/test_measures.py) --


def test_call_similarity_sees_shared_intervals_and_rhythm() -> None:
    call = line([60, 62, 64, 67, 64], [0.0, 0.5, 1.0, 1.5, 2.5])
    echo = line([65, 67, 69, 72, 69], [4.0, 4.5, 5.0, 5.5, 6.5])  # transposed, moved
    other = line([72, 61, 79, 50], [0.0, 1.75, 2.0, 3.67])
    assert call_similarity(call, echo) == pytest.approx(1.0)
    assert call_similarity(call, other) < 0.3
    assert math.isnan(call_similarity(line([60], [0.0]), line([60], [0.0])))


def test_derangement_moves_everything() -> None:
    rng = np.random.default_rng(3)
    for n in (2, 3, 10, 57):
        perm = derangement(n, rng)
        assert sorted(perm.tolist()) == list(range(n))
        assert not np.any(perm == np.arange(n))


# -- the report on generated solos ---------------------------------------------------------


@pytest.fixture(scope="module")
def solos(generated_corpus: Path) -> list[Solo]:
    return read_folder(generated_corpus, progress=False).solos


@pytest.fixture(scope="module")
def markov(solos: list[Solo]) -> MarkovModel:
    streams = [encode(s) for s in solos]
    return fit_markov(streams[2:], streams[:2], VOCAB.size, orders=range(1, 6)).model


@pytest.fixture(scope="module")
def report(solos: list[Solo], markov: MarkovModel) -> EvalReport:
    baseline = MarkovModel.from_state(markov.to_state())
    return evaluate(markov, baseline, solos[:3], seed=1, max_pairs=6)


def test_report_json_has_the_interface_keys(report: EvalReport) -> None:
    out = json.loads(json.dumps(report.to_json()))
    assert {"bits_per_note", "baseline_bits_per_note", "notes", "responses"} <= set(out)
    assert set(out["responses"]) == set(SOURCES)
    for source in SOURCES:
        assert set(out["responses"][source]) == {*STAT_NAMES, *POOLED_NAMES}
    assert out["bits_per_note"] > 0
    # the baseline is a copy of the model: same likelihood
    assert out["baseline_bits_per_note"] == pytest.approx(out["bits_per_note"])
    human = out["responses"]["human"]
    assert 0.0 <= human["in_scale"] <= 1.0 and human["notes_per_beat"] > 0
    assert out["responses"]["human_shuffled"]["in_scale"] == human["in_scale"]


def test_report_counts_notes_and_pairs(
    report: EvalReport, solos: list[Solo], markov: MarkovModel
) -> None:
    assert report.notes == sum(count_notes(encode(s)) for s in solos[:3])
    assert report.notes == sum(len(s.notes) for s in solos[:3])
    assert report.pairs == min(6, len(pair_tasks(solos[:3])))
    assert all(len(report.responses[source]) == report.pairs for source in SOURCES)
    # bits per note: the stream's total bits over its notes
    streams = [encode(s) for s in solos[:3]]
    bits = -sum(float(ll.sum()) for ll in markov.score_many(streams)) / math.log(2)
    assert report.bits_per_note == pytest.approx(bits / report.notes)


def test_generated_answers_respect_the_pair(solos: list[Solo], markov: MarkovModel) -> None:
    from improv.model.evaluate import respond
    from improv.model.sampling import SamplingOptions

    for task in pair_tasks(solos[:1])[:4]:
        answer = respond(markov, task.situation(), SamplingOptions(), np.random.default_rng(0))
        assert answer, "an answer has notes"
        assert all(task.start - 1e-9 <= n.onset and n.end <= task.end + 1e-9 for n in answer)
        low, high = task.pitch_range
        assert all(low <= n.pitch <= high for n in answer)


def test_candidates_answer_as_the_jam_does(solos: list[Solo], markov: MarkovModel) -> None:
    """Eval's answers come from the jam's composer: the critic's pick of several drafts
    scores above a lone draft on average, and its velocities are shaped (not flat)."""
    from improv.craft.critic import score
    from improv.model.evaluate import respond
    from improv.model.sampling import SamplingOptions

    options = SamplingOptions()
    picked, single = [], []
    for i, task in enumerate(pair_tasks(solos[:2])[:6]):
        situation = task.situation()
        chosen = respond(markov, situation, options, np.random.default_rng(i), candidates=6)
        lone = respond(markov, situation, options, np.random.default_rng(100 + i))
        picked.append(score(chosen, situation).total)
        single.append(score(lone, situation).total)
        assert len({n.velocity for n in chosen}) > 1, "dynamics shape the chosen answer"
    assert np.mean(picked) > np.mean(single)


def test_evaluation_is_repeatable(solos: list[Solo], markov: MarkovModel) -> None:
    a = evaluate(markov, markov, solos[:2], seed=5, max_pairs=3).to_json()
    b = evaluate(markov, markov, solos[:2], seed=5, max_pairs=3).to_json()
    assert a == b


# -- the command -----------------------------------------------------------------------------


def test_eval_command_markov_json_and_plot(
    generated_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "plots" / "eval.png"
    args = ["eval", "--model", "markov", "--data", str(generated_corpus), "--json"]
    code = main([*args, "--max-pairs", "4", "--seed", "2", "--plot", str(plot)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["responses"]) == set(SOURCES)
    assert out["notes"] > 0
    assert plot.read_bytes()[:8] == PNG_MAGIC


def test_report_has_the_answering_measures(report: EvalReport) -> None:
    out = report.to_json()["responses"]
    human, shuffled = out["human"], out["human_shuffled"]
    assert human["notes_per_answer"] >= 2  # pairs need two notes a phrase
    assert 0.0 < human["span_share"] <= 1.0
    assert 0.0 <= human["ends_on_chord_tone"] <= 1.0
    assert human["motif_reuse_shuffled"] == shuffled["motif_reuse"]
    assert 0.0 <= human["copy_share"] <= 1.0
    assert human["velocity_distinct"] >= 2 and human["velocity_127_share"] >= 0.0
    # the dynamics shape velocities beyond the token language's eight bins
    assert out["model"]["velocity_distinct"] > 8
    for source in ("model", "baseline"):
        assert 0.0 < out[source]["span_share"] <= 1.0


def test_eval_command_listen_writes_midi_and_piano_rolls(
    generated_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from improv.io.midi.files import read_take

    folder = tmp_path / "listen"
    args = ["eval", "--model", "markov", "--data", str(generated_corpus), "--max-pairs", "4"]
    assert main([*args, "--listen", str(folder), "--listen-pairs", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pairs"] == 4
    assert sorted(p.name for p in folder.iterdir()) == [
        "pair-01.mid",
        "pair-01.png",
        "pair-02.mid",
        "pair-02.png",
    ]
    assert (folder / "pair-01.png").read_bytes()[:8] == PNG_MAGIC
    take = read_take(folder / "pair-01.mid")
    assert take.markers, "chord markers"
    calls = read_take(folder / "pair-01.mid", channel=0).notes
    answers = read_take(folder / "pair-01.mid", channel=1).notes
    assert len(calls) >= 2 and len(answers) >= 1
    assert max(n.end for n in calls) <= min(n.onset for n in answers) + 1e-6


def test_piano_roll_draws_any_voices(tmp_path: Path) -> None:
    from improv.music.chords import parse_chord
    from improv.music.notes import ChordChange
    from improv.pianoroll import piano_roll

    call = [Note(60 + i, 40 + 10 * i, 0.5 * i, 0.5) for i in range(8)]
    answer = [Note(72 - i, 100, 8.0 + 0.5 * i, 0.5) for i in range(6)]
    chords = [ChordChange(0.0, "C7", parse_chord("C7")), ChordChange(8.0, "F7", parse_chord("F7"))]
    path = piano_roll(
        tmp_path / "roll.png", {"call": call, "answer": answer}, chords=chords, window=(8.0, 16.0)
    )
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert piano_roll(tmp_path / "empty.png", {}).read_bytes()[:8] == PNG_MAGIC


def test_eval_command_with_a_checkpoint(
    generated_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    solos = read_folder(generated_corpus, progress=False).solos
    streams = [encode(s) for s in solos]
    markov = fit_markov(streams[2:], streams[:2], VOCAB.size, orders=[1, 2, 3]).model
    ckpt = make_checkpoint(build_model("lstm", "xs", VOCAB.size), "xs", markov=markov)
    path = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, path)
    args = ["eval", "--model", str(path), "--data", str(generated_corpus), "--max-pairs", "3"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] != out["baseline"]
    assert out["bits_per_note"] > out["baseline_bits_per_note"]  # an untrained network
    assert main(args) == 0  # the table
    assert "bits/note" in capsys.readouterr().out


def test_eval_command_refuses_bad_options(generated_corpus: Path, tmp_path: Path) -> None:
    base = ["eval", "--model", "markov", "--data", str(generated_corpus)]
    assert main([*base, "--max-pairs", "0"]) == 2
    assert main([*base, "--top-p", "0"]) == 2
    assert main([*base, "--listen", str(tmp_path), "--listen-pairs", "0"]) == 2
    assert main([*base, "--candidates", "0"]) == 2
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    assert main([*base, "--listen", str(a_file)]) == 2
    assert main(["eval", "--model", "markov", "--data", str(tmp_path / "nowhere")]) == 2
    missing = str(tmp_path / "none.pt")
    assert main(["eval", "--model", missing, "--data", str(generated_corpus)]) == 2


def test_the_selection_split_is_held_out_of_the_training_tunes_not_the_validation() -> None:
    from types import SimpleNamespace

    from improv.commands.eval import _select

    solos = [SimpleNamespace(title=f"tune {i} blues", source="") for i in range(200)]
    val = _select(solos, "val", None)
    train = _select(solos, "train", None)
    selection = _select(solos, "selection", None)
    assert selection and len(selection) < len(train)
    assert {id(s) for s in selection} <= {id(s) for s in train}
    named = _select(solos, "selection", [s.title for s in val])  # as a checkpoint lists them
    assert [s.title for s in named] == [s.title for s in selection]
