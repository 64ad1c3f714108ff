"""Ledger events: validation, the canonical leaf, and its strict decoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowtrail.errors import CanonicalEncodingError, InvalidInputError
from rowtrail.hashing import canonical_json
from rowtrail.ledger import Event, check_kind
from rowtrail.ledger._events import (
    BatchLeafEncoder,
    encode_event_leaf,
    format_time,
    parse_time,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
SUBJECT = "ps:" + "a" * 64
BLOB = "sha256:" + "b" * 64

kinds = st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8}){1,3}", fullmatch=True)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
payloads = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        scalars,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=8,
    ),
    max_size=6,
)
times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
)
pseudonyms = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: "ps:" + h)
digests = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h)


def test_leaf_is_the_canonical_json_of_all_fields() -> None:
    event = Event(
        "rows.ingested", {"n_rows": 3}, actor="alice", time=T0, subjects=(SUBJECT,), blobs=(BLOB,)
    )
    assert json.loads(event.leaf()) == {
        "actor": "alice",
        "blobs": [BLOB],
        "kind": "rows.ingested",
        "payload": {"n_rows": 3},
        "subjects": [SUBJECT],
        "time": "2026-01-02T03:04:05.678901Z",
        "v": 1,
    }
    assert event.leaf() == canonical_json(event.to_json())


@given(
    kinds,
    payloads,
    st.text(min_size=1, max_size=20),
    times,
    st.lists(pseudonyms, max_size=3),
    st.lists(digests, max_size=3),
)
def test_fast_leaf_equals_generic_encoding_and_round_trips(
    kind: str,
    payload: dict[str, Any],
    actor: str,
    time: datetime,
    subjects: list[str],
    blobs: list[str],
) -> None:
    try:
        event = Event(
            kind, payload, actor=actor, time=time, subjects=tuple(subjects), blobs=tuple(blobs)
        )
        leaf = event.leaf()
    except CanonicalEncodingError:
        # Only lone surrogates in generated text make an event unencodable.
        with pytest.raises(CanonicalEncodingError):
            canonical_json({"a": actor, "p": payload})
        return
    assert leaf == canonical_json(event.to_json())
    assert Event.from_leaf(leaf) == event
    if not subjects and not blobs:
        assert encode_event_leaf(kind, payload, actor, time) == leaf
        assert BatchLeafEncoder(actor)(kind, payload, time) == leaf


def test_subjects_and_blobs_are_sorted_and_deduplicated() -> None:
    other = "ps:" + "0" * 64
    event = Event("a.b", {}, time=T0, subjects=[SUBJECT, other, SUBJECT])  # type: ignore[arg-type]
    assert event.subjects == (other, SUBJECT)


def test_times_are_written_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2026, 1, 1, 2, 0, 0, 5, tzinfo=plus_two)
    assert format_time(moment) == "2026-01-01T00:00:00.000005Z"
    assert parse_time("2026-01-01T00:00:00.000005Z") == moment
    # Two moments in one second share the cached prefix but keep their microseconds.
    assert format_time(T0) == "2026-01-02T03:04:05.678901Z"
    assert format_time(T0.replace(microsecond=1)) == "2026-01-02T03:04:05.000001Z"
    assert format_time(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    "kind",
    [
        "rows",
        "Rows.ingested",
        "rows..x",
        ".rows",
        "rows.",
        "1rows.x",
        "rows.in-gested",
        "",
        3,
        None,
        "a." + "b" * 200,
    ],
)
def test_bad_kinds(kind: object) -> None:
    with pytest.raises(InvalidInputError, match="dotted lowercase"):
        check_kind(kind)
    with pytest.raises(InvalidInputError):
        Event(kind, {}, time=T0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        encode_event_leaf(kind, {}, "a", T0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        BatchLeafEncoder("a")(kind, {}, T0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"payload": [1, 2]}, "payload"),
        ({"payload": "text"}, "payload"),
        ({"actor": ""}, "actor"),
        ({"actor": "x" * 257}, "actor"),
        ({"actor": 7}, "actor"),
        ({"time": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"time": "2026-01-01T00:00:00Z"}, "timezone-aware"),
        ({"subjects": ("alice",)}, "raw identifiers"),
        ({"subjects": SUBJECT}, "the string"),
        ({"blobs": ("sha256:xyz",)}, "sha256"),
    ],
)
def test_bad_fields(fields: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {"kind": "a.b", "payload": {}, "time": T0}
    with pytest.raises(InvalidInputError, match=match):
        Event(**(base | fields))


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"x": float("nan")}, "JSON compliant"),
        ({"x": b"raw"}, "bytes"),
        ({1: 2}, "keys"),
        ({"x": "\udc00"}, "surrogate"),
    ],
)
def test_non_canonical_payloads_fail_at_encoding(payload: dict[Any, Any], match: str) -> None:
    with pytest.raises(CanonicalEncodingError, match=match):
        Event("a.b", payload, time=T0).leaf()
    with pytest.raises(CanonicalEncodingError, match=match):
        encode_event_leaf("a.b", payload, "a", T0)
    with pytest.raises(CanonicalEncodingError, match=match):
        BatchLeafEncoder("a")("a.b", payload, T0)


def _leaf(**changes: Any) -> bytes:
    value: dict[str, Any] = Event("a.b", {"x": 1}, time=T0, subjects=(SUBJECT,)).to_json() | changes
    return canonical_json(value)


@pytest.mark.parametrize(
    "leaf",
    [
        _leaf(v=2),
        _leaf(v=True),  # decodes equal to 1 but is not the canonical event
        _leaf(time="2026-01-02T03:04:05.6Z"),  # strptime accepts it; the leaf is not canonical
        _leaf(subjects=[SUBJECT, SUBJECT]),
        _leaf(extra=1),
        _leaf(kind="Bad"),
        b'{"actor":"rowtrail"}',
        b"[1]",
        Event("a.b", {"x": 1}, time=T0).leaf().replace(b'"x":1', b'"x": 1'),
    ],
    ids=[
        "version",
        "bool-version",
        "short-time",
        "dup-subject",
        "extra-field",
        "bad-kind",
        "missing",
        "array",
        "spaces",
    ],
)
def test_from_leaf_rejects_anything_but_the_canonical_event(leaf: bytes) -> None:
    with pytest.raises(InvalidInputError):
        Event.from_leaf(leaf)


def test_events_are_immutable() -> None:
    event = Event("a.b", {}, time=T0)
    with pytest.raises(AttributeError):
        event.kind = "c.d"  # type: ignore[misc]


def test_validation_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kinds and actors seen are cached for speed, but never beyond the bound."""
    from rowtrail.ledger import _events

    monkeypatch.setattr(_events, "_MAX_KNOWN_KINDS", 0)
    monkeypatch.setattr(_events, "_KNOWN_KINDS", set())
    monkeypatch.setattr(_events, "_ACTOR_TEXT", {})
    leaf = encode_event_leaf("fresh.kind", {"a": 1}, "fresh-actor", T0)
    assert leaf == Event("fresh.kind", {"a": 1}, actor="fresh-actor", time=T0).leaf()
    assert Event.from_leaf(leaf).actor == "fresh-actor"
    assert not _events._KNOWN_KINDS
    assert not _events._ACTOR_TEXT
    with pytest.raises(InvalidInputError, match="actor"):
        encode_event_leaf("fresh.kind", {}, "", T0)
    encoder = BatchLeafEncoder("fresh-actor")
    assert encoder("fresh.kind", {"a": 1}, T0) == leaf
    assert encoder("fresh.kind", {"a": 1}, T0) == leaf  # nothing cached, still right
    with pytest.raises(InvalidInputError, match="actor"):
        BatchLeafEncoder("")
