"""Payload shapes and encoding, and the shipped JSON Schemas themselves."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from improv.io.mqtt.payloads import (
    SCHEMAS,
    encode,
    envelope,
    metrics_body,
    phrase_body,
    schema,
    schema_for_topic,
)
from improv.music.notes import ChordChange, Note, Phrase
from improv.music.time import Metre


@pytest.mark.parametrize("name", sorted(set(SCHEMAS.values())))
def test_every_shipped_schema_is_a_valid_schema(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(schema(name))


def test_a_phrase_says_where_each_note_and_chord_falls() -> None:
    notes = [Note(60, 90, 0.0, 0.5), Note(62, 80, 3.5, 1.0), Note(64, 70, 4.25, 0.25)]
    chords = [ChordChange(0.0, "C7", None), ChordChange(4.0, "F7", None)]
    body = phrase_body("call", Phrase.of(notes, chords, start_bar=8), turn=3)
    assert [(n["bar"], n["beat"], n["onset"]) for n in body["notes"]] == [
        (8, 0.0, 0.0),
        (8, 3.5, 3.5),
        (9, 0.25, 4.25),
    ]
    assert [(c["bar"], c["beat"], c["symbol"]) for c in body["chords"]] == [
        (8, 0.0, "C7"),
        (9, 0.0, "F7"),
    ]
    payload = json.loads(encode(envelope(1.0, 2.0, body)))
    jsonschema.validate(payload, schema_for_topic("phrase/call"))


def test_bars_follow_the_metre() -> None:
    phrase = Phrase.of([Note(60, 90, 4.5, 0.5)], metre=Metre(3, 4), start_bar=0)
    note = phrase_body("answer", phrase, None)["notes"][0]
    assert (note["bar"], note["beat"]) == (1, 1.5)


def test_encoding_never_writes_invalid_json() -> None:
    payload = {"a": float("nan"), "b": [float("inf")], "c": np.int64(3), "d": np.float32(0.5)}
    assert json.loads(encode(payload)) == {"a": None, "b": [None], "c": 3, "d": 0.5}
    with pytest.raises(TypeError):
        encode({"x": object()})


def test_metrics_are_rounded_to_a_tenth_of_a_microsecond() -> None:
    assert metrics_body({"turn": 1, "send_error_ms_p99": 0.0123456789}) == {
        "turn": 1,
        "send_error_ms_p99": 0.0123,
    }


def test_metrics_carry_the_candidates_and_the_winners_scores() -> None:
    body = metrics_body(
        {
            "turn": 2,
            "notes_out": 9,
            "send_error_ms_p50": 0.01,
            "send_error_ms_p99": 0.04,
            "send_error_ms_max": 0.05,
            "answer_start_error_ms": None,
            "generation_ms": 180.0,
            "generation_headroom_ms_min": 40.0,
            "deadline_misses": 0,
            "fallback_notes": 0,
            "candidates": 7,
            "critic_total": 0.712345678,
            "critic_parts": {"fit": 0.800000001},
            "transform": "sequence",
        }
    )
    assert body["critic_parts"] == {"fit": 0.8} and body["critic_total"] == 0.7123
    jsonschema.validate(envelope(1.0, 2.0, body), schema_for_topic("metrics"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            envelope(1.0, 2.0, {**body, "candidates": -1}), schema_for_topic("metrics")
        )


def test_a_result_carries_either_changes_or_an_error() -> None:
    result = schema_for_topic("control/result")
    base = {"v": 1, "t": 1.0, "ts": 2.0, "id": "a"}
    jsonschema.validate({**base, "ok": True, "changes": {"tempo": 120}}, result)
    jsonschema.validate({**base, "ok": False, "error": "no"}, result)
    for bad in ({**base, "ok": True}, {**base, "ok": False, "changes": {}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, result)
