"""Control requests: every field read, every kind of bad input refused whole."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from improv.io.control import (
    FIELDS,
    MAX_PAYLOAD_BYTES,
    ControlChange,
    ControlError,
    ControlParser,
    request_id,
)
from improv.io.mqtt.payloads import schema
from improv.music.pitch import Key

FORMS = ("blues", "jazz-blues", "minor-blues")
parser = ControlParser(FORMS)


def parse(obj: Any) -> ControlChange:
    return parser.parse(json.dumps(obj).encode())


def test_every_field_is_read_into_its_type() -> None:
    change = parse(
        {
            "id": "r1",
            "v": 1,
            "tempo": 140,
            "key": "Bb",
            "form": "jazz-blues",
            "mode": "phrase",
            "bars": 8,
            "temperature": 0.9,
            "model": "markov",
            "mute": True,
            "pause": False,
            "panic": True,
        }
    )
    assert change == ControlChange(
        id="r1",
        tempo=140.0,
        key=Key(10),
        form="jazz-blues",
        mode="phrase",
        bars=8,
        temperature=0.9,
        model="markov",
        mute=True,
        pause=False,
        panic=True,
    )
    assert change.changes() == {
        "tempo": 140.0,
        "key": "Bb",
        "form": "jazz-blues",
        "mode": "phrase",
        "bars": 8,
        "temperature": 0.9,
        "model": "markov",
        "mute": True,
        "pause": False,
        "panic": True,
    }


@pytest.mark.parametrize(
    ("obj", "key"),
    [({"key": "F#"}, Key(6)), ({"key": "Cm"}, Key(0, "minor")), ({"key": "Eb"}, Key(3))],
)
def test_keys_are_read_by_name(obj: dict[str, Any], key: Key) -> None:
    assert parse(obj).key == key


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", "not valid JSON"),
        (b"tempo=120", "not valid JSON"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b'"tempo"', "JSON object"),
        (b"{}", "nothing to change"),
        (b'{"id": 3}', "nothing to change"),
        (b'{"tempo": NaN}', "not a number"),
        (b'{"tempo": Infinity}', "not a number"),
        (b'{"tempo": 120, "tempo": 130}', "twice"),
        (b'{"tempo": 120, "volume": 3}', "unknown field"),
        (b'{"tempo": "120"}', "tempo must be a number"),
        (b'{"tempo": true}', "tempo must be a number"),
        (b'{"tempo": null}', "tempo must be a number"),
        (b'{"tempo": 29.9}', "out of range"),
        (b'{"tempo": 300.5}', "out of range"),
        (b'{"tempo": 1e400}', "out of range"),
        (b'{"key": "H"}', "key"),
        (b'{"key": 10}', "key must be a string"),
        (b'{"key": ""}', "key must be"),
        (b'{"form": "rhythm-changes"}', "unknown form"),
        (b'{"mode": "solo"}', "mode must be one of"),
        (b'{"mode": ["trade"]}', "mode must be one of"),
        (b'{"bars": 3}', "bars must be one of"),
        (b'{"bars": 4.5}', "bars must be one of"),
        (b'{"bars": true}', "bars must be one of"),
        (b'{"temperature": 0.05}', "out of range"),
        (b'{"temperature": 2.5}', "out of range"),
        (b'{"model": 7}', "model must be a string"),
        (b'{"model": "   "}', "model must be"),
        (b'{"mute": 1}', "mute must be true or false"),
        (b'{"pause": "yes"}', "pause must be true or false"),
        (b'{"panic": false}', "panic must be true"),
        (b'{"v": 2, "tempo": 120}', "schema version"),
        (b'{"id": true, "tempo": 120}', "id must be"),
        (b'{"id": {"a": 1}, "tempo": 120}', "id must be"),
        (b'{"id": "' + b"x" * 200 + b'", "tempo": 120}', "id must be"),
        (b"[" * 2000 + b"]" * 2000, "not valid JSON|JSON object"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(payload: bytes, error: str) -> None:
    with pytest.raises(ControlError, match=error):
        parser.parse(payload)


def test_integers_may_be_spelled_as_whole_floats() -> None:
    change = parser.parse(b'{"id": 5.0, "bars": 4.0}')
    assert (change.id, change.bars) == (5, 4)
    assert isinstance(change.bars, int)


def test_oversized_payloads_are_refused_unread() -> None:
    payload = json.dumps({"tempo": 120, "model": "m" * MAX_PAYLOAD_BYTES}).encode()
    with pytest.raises(ControlError, match="too large"):
        parser.parse(payload)
    assert request_id(payload) is None


def test_one_bad_field_refuses_the_whole_request() -> None:
    with pytest.raises(ControlError, match="bars"):
        parse({"tempo": 100, "key": "F", "bars": 5})


def test_forms_are_those_of_the_music_package_by_default() -> None:
    assert ControlParser().parse(b'{"form": "Jazz"}').form == "jazz-blues"
    with pytest.raises(ControlError, match="unknown form"):
        ControlParser().parse(b'{"form": "rhythm-changes"}')


def test_the_id_of_a_refused_request_is_still_read() -> None:
    assert request_id(b'{"id": "abc", "tempo": 1000}') == "abc"
    assert request_id(b'{"id": 7, "bars": 5}') == 7
    assert request_id(b'{"id": false}') is None
    assert request_id(b"not json") is None
    assert request_id(b"[1]") is None


# --- the schema and the parser agree ---------------------------------------------------

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(-10, 400, allow_nan=False),
    st.sampled_from(["trade", "phrase", "Bb", "F#", "blues", "markov", "", "x" * 300]),
    st.lists(st.integers(), max_size=2),
)
_names = st.sampled_from([*FIELDS, "id", "v", "volume"])


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_names, _values, max_size=4))
def test_parser_accepts_exactly_what_the_schema_allows(obj: dict[str, Any]) -> None:
    """Where key and form (if any) are known names, schema and parser agree."""
    if isinstance(obj.get("key"), str) and obj["key"] not in ("Bb", "F#"):
        obj["key"] = "Bb"
    if isinstance(obj.get("form"), str) and 0 < len(obj["form"]) <= 256:
        obj["form"] = "blues"
    validator = jsonschema.Draft202012Validator(schema("control-set"))
    schema_ok = validator.is_valid(obj)
    try:
        ControlParser().from_object(obj)
    except ControlError:
        assert not schema_ok, f"parser refused what the schema allows: {obj}"
    else:
        assert schema_ok, f"parser accepted what the schema refuses: {obj}"
