"""The split by tune: deterministic, and no tune on both sides."""

from __future__ import annotations

from pathlib import Path

from improv.corpus.folder import read_folder
from improv.corpus.split import normalise_title, split_by_tune, tune_key
from improv.music.notes import Note, Solo
from improv.music.time import Metre


def _solos(titles: list[str]) -> list[Solo]:
    note = (Note(60, 90, 0.0, 1.0),)
    return [Solo(note, (), Metre(), key=0, title=t, blues=i % 3 == 0) for i, t in enumerate(titles)]


def test_titles_normalise_takes_case_and_punctuation() -> None:
    assert normalise_title("The Girl from Ipanema (take 2)") == "girl from ipanema"
    assert normalise_title("Girl From Ipanema-2") == "girl from ipanema"
    assert normalise_title("Body and Soul [alt take]") == "body and soul"
    assert normalise_title("Take the A Train") == "take the a train"


def test_split_is_deterministic_and_keeps_tunes_together() -> None:
    titles = [f"Tune {chr(65 + i % 26)}{i // 26}x" for i in range(200)]
    solos = _solos(titles + [t.upper() + " (take 2)" for t in titles])
    first, second = split_by_tune(solos), split_by_tune(list(reversed(solos)))
    assert {s.title for s in first.validation} == {s.title for s in second.validation}
    train = {tune_key(s) for s in first.train}
    validation = {tune_key(s) for s in first.validation}
    assert not train & validation
    assert 0.03 < len(first.validation) / len(solos) < 0.2
    assert first.validation_blues == tuple(s for s in first.validation if s.blues)


def test_salt_and_fraction_change_the_split() -> None:
    solos = _solos([f"Song {i}x" for i in range(100)])
    assert split_by_tune(solos, fraction=0.0).validation == ()
    assert split_by_tune(solos, fraction=1.0).train == ()
    plain, salted = split_by_tune(solos, 0.3), split_by_tune(solos, 0.3, salt="fold2")
    assert plain.validation != salted.validation


def test_generated_takes_of_one_tune_stay_together(generated_corpus: Path) -> None:
    solos = read_folder(generated_corpus).solos
    split = split_by_tune(solos, fraction=0.5)
    assert not {s.title for s in split.train} & {s.title for s in split.validation}
