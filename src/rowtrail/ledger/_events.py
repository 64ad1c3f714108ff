"""Ledger events and their canonical leaf encoding.

An event is ``kind`` (dotted lowercase name such as ``rows.ingested``), ``payload`` (a JSON
object), ``actor``, ``time`` (UTC), optional ``subjects`` (keyed pseudonyms, never raw
identifiers) and ``blobs`` (digests of large payloads kept in the blob store). The leaf bytes
are the canonical JSON encoding of all fields plus a format version ``v``; the leaf hash is
RFC 9162's ``SHA-256(0x00 || leaf)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rowtrail.errors import CanonicalEncodingError, InvalidInputError
from rowtrail.hashing import _decode_json, canonical_json_text, check_digest
from rowtrail.hashing import _encode_checked as _payload_json
from rowtrail.ids import check_pseudonym

__all__ = [
    "EVENT_VERSION",
    "BatchLeafEncoder",
    "Event",
    "check_kind",
    "encode_event_leaf",
    "format_time",
    "parse_time",
]

EVENT_VERSION = 1
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_FIELDS = {"actor", "blobs", "kind", "payload", "subjects", "time", "v"}
_MAX_ACTOR = 256
# Kinds already validated (a log uses a few dozen); bounded so hostile input cannot grow it.
_KNOWN_KINDS: set[str] = set()
_MAX_KNOWN_KINDS = 4096


def check_kind(kind: object) -> str:
    """Raise :class:`InvalidInputError` unless ``kind`` is a dotted lowercase event name."""
    if type(kind) is str and kind in _KNOWN_KINDS:
        return kind
    if not isinstance(kind, str) or len(kind) > 128 or not _KIND_RE.match(kind):
        raise InvalidInputError(
            "kind of an event must be a dotted lowercase name such as 'rows.ingested' "
            f"(letters, digits, '_'; at least two parts); got {kind!r}"
        )
    if type(kind) is str and len(_KNOWN_KINDS) < _MAX_KNOWN_KINDS:
        _KNOWN_KINDS.add(kind)
    return kind


def _check_actor(actor: object) -> str:
    if not isinstance(actor, str) or not 0 < len(actor) <= _MAX_ACTOR:
        raise InvalidInputError(
            f"actor of an event must be a non-empty str of at most {_MAX_ACTOR} characters; "
            f"got {actor!r}"
        )
    return actor


def _check_payload(payload: object) -> dict[str, Any]:
    if type(payload) is dict:
        return payload
    if not isinstance(payload, Mapping):
        raise InvalidInputError(
            f"payload of an event must be a mapping (JSON object); got {type(payload).__name__}"
        )
    return dict(payload)


def _check_time(moment: object) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise InvalidInputError(
            f"time of an event must be a timezone-aware datetime; got {moment!r}. "
            "Use datetime.now(UTC)."
        )
    return moment


# The text of the last whole second formatted, as one (key, text) tuple so that threads never
# see a torn pair; events arrive in bursts within one second, so this is the hot path.
_time_cache: list[tuple[tuple[int, ...], str]] = [((), "")]


def _format_utc(moment: datetime) -> str:
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    key = (utc.second, utc.minute, utc.hour, utc.day, utc.month, utc.year)
    cached = _time_cache[0]
    if cached[0] != key:
        cached = (
            key,
            f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
            f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.",
        )
        _time_cache[0] = cached
    return cached[1] + str(utc.microsecond).zfill(6) + "Z"


_VERSION_TEXT = str(EVENT_VERSION)


def _actor_json(actor: str) -> str:
    """Return the JSON text of a valid actor; most logs have a few, so it is cached (bounded)."""
    text = _ACTOR_TEXT.get(actor)
    if text is None:
        text = canonical_json_text(str(_check_actor(actor)))
        if len(_ACTOR_TEXT) < _MAX_KNOWN_KINDS:
            _ACTOR_TEXT[actor] = text
    return text


_ACTOR_TEXT: dict[str, str] = {}


def format_time(moment: datetime) -> str:
    """Write an aware datetime as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC.

    Examples
    --------
    >>> from datetime import datetime, timedelta, timezone
    >>> format_time(datetime(2026, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=1))))
    '2026-01-01T00:30:00.000000Z'
    """
    return _format_utc(_check_time(moment))


_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})Z")


def parse_time(text: object) -> datetime:
    """Parse the format written by :func:`format_time` (exactly; strptime is ~10x slower)."""
    match = _TIME.fullmatch(text) if isinstance(text, str) else None
    try:
        if match is None:
            raise ValueError("not YYYY-MM-DDTHH:MM:SS.ffffffZ")
        year, month, day, hour, minute, second, micro = (int(g) for g in match.groups())
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"time must look like 2026-01-31T12:00:00.000000Z; got {text!r}"
        ) from exc


@dataclass(frozen=True, slots=True)
class Event:
    """One ledger event (immutable).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> e = Event("rows.ingested", {"n_rows": 3}, actor="alice",
    ...           time=datetime(2026, 1, 1, tzinfo=UTC))
    >>> Event.from_leaf(e.leaf()) == e
    True
    """

    kind: str
    payload: Mapping[str, Any]
    actor: str = "rowtrail"
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    subjects: tuple[str, ...] = ()
    blobs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_kind(self.kind)
        _check_payload(self.payload)
        _check_actor(self.actor)
        _check_time(self.time)
        # The common case (no subjects, no blobs) skips the sort-and-check pass.
        if type(self.subjects) is not tuple or self.subjects:
            object.__setattr__(self, "subjects", _sorted_unique(self.subjects, check_pseudonym))
        if type(self.blobs) is not tuple or self.blobs:
            object.__setattr__(self, "blobs", _sorted_unique(self.blobs, check_digest))

    def to_json(self) -> dict[str, Any]:
        """Return the event as the JSON object that is its leaf."""
        return {
            "actor": self.actor,
            "blobs": list(self.blobs),
            "kind": self.kind,
            "payload": dict(self.payload),
            "subjects": list(self.subjects),
            "time": format_time(self.time),
            "v": EVENT_VERSION,
        }

    def leaf(self) -> bytes:
        """Return the exact leaf bytes (canonical JSON) of this event."""
        return _encode_leaf(
            self.kind, self.payload, self.actor, self.time, self.subjects, self.blobs
        )

    @classmethod
    def from_leaf(cls, leaf: bytes) -> Event:
        """Decode leaf bytes, raising :class:`CanonicalEncodingError` if they are not canonical."""
        # Canonical form is checked below, more strictly: the event must re-encode to ``leaf``.
        value = _decode_json(leaf)
        if not isinstance(value, dict) or set(value) != _FIELDS:
            raise CanonicalEncodingError(
                f"leaf must be an object with fields {sorted(_FIELDS)}; got {str(value)[:120]!r}"
            )
        if value["v"] != EVENT_VERSION:
            raise CanonicalEncodingError(f"unknown event format version {value['v']!r}")
        event = cls(
            kind=value["kind"],
            payload=value["payload"],
            actor=value["actor"],
            time=parse_time(value["time"]),
            subjects=tuple(value["subjects"]),
            blobs=tuple(value["blobs"]),
        )
        # Decoding is lenient in places (strptime, list order, True == 1); the leaf must be
        # exactly what this event encodes to, or one event would have two leaves.
        if event.leaf() != leaf:
            raise CanonicalEncodingError(
                "leaf is canonical JSON but not the canonical encoding of its event "
                "(field types, time format, or unsorted/duplicate subjects or blobs)"
            )
        return event


def encode_event_leaf(
    kind: str, payload: Mapping[str, Any], actor: str, time: datetime
) -> bytes:
    """Validate and encode the leaf of an event without subjects or blobs.

    The batched append path: the same bytes as ``Event(kind, payload, actor, time).leaf()``
    and the same checks, without building the ``Event``.
    """
    if type(kind) is not str or kind not in _KNOWN_KINDS:
        check_kind(kind)
    if type(time) is not datetime or time.tzinfo is not UTC:
        _check_time(time)
    return _encode_leaf(kind, payload, actor, time, (), ())


class BatchLeafEncoder:
    """Encodes leaves of events without subjects or blobs for one actor (the batch hot path).

    Same bytes and same checks as :func:`encode_event_leaf`; the JSON text before the payload
    depends only on the actor and the kind, so it is built once per kind (bounded cache).
    """

    __slots__ = ("_actor_text", "_prefixes")

    def __init__(self, actor: str) -> None:
        self._actor_text = '{"actor":' + _actor_json(actor) + ',"blobs":[],"kind":"'
        self._prefixes: dict[str, str] = {}

    def __call__(self, kind: str, payload: Mapping[str, Any], time: datetime) -> bytes:
        """Validate and encode one event's leaf."""
        prefix = self._prefixes.get(kind) if type(kind) is str else None
        if prefix is None:
            prefix = self._actor_text + check_kind(kind) + '","payload":'
            if type(kind) is str and len(self._prefixes) < _MAX_KNOWN_KINDS:
                self._prefixes[kind] = prefix
        if type(time) is not datetime or time.tzinfo is not UTC:
            _check_time(time)
        if type(payload) is not dict:
            payload = _check_payload(payload)
        text = (
            prefix + _payload_json(payload) + ',"subjects":[],"time":"' + _format_utc(time)
            + '","v":' + _VERSION_TEXT + "}"
        )
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate in the payload
            raise CanonicalEncodingError(
                f"event cannot be encoded as canonical JSON: {exc}"
            ) from exc


def _encode_leaf(
    kind: str,
    payload: Mapping[str, Any],
    actor: str,
    time: datetime,
    subjects: tuple[str, ...],
    blobs: tuple[str, ...],
) -> bytes:
    """Return ``canonical_json(event.to_json())`` for validated fields, assembled directly.

    The keys are fixed and already sorted, and kind, subjects and blobs were validated to
    plain ASCII forms that JSON writes verbatim, so only the payload and the actor go through
    the JSON encoder. A test checks byte equality with the generic encoding.
    """
    blobs_text = ",".join(['"' + digest + '"' for digest in blobs]) if blobs else ""
    subjects_text = ",".join(['"' + name + '"' for name in subjects]) if subjects else ""
    if type(payload) is not dict:
        payload = _check_payload(payload)
    text = (
        '{"actor":' + _actor_json(actor) + ',"blobs":[' + blobs_text + '],"kind":"' + kind
        + '","payload":' + _payload_json(payload) + ',"subjects":[' + subjects_text
        + '],"time":"' + _format_utc(time) + '","v":' + _VERSION_TEXT + "}"
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate in the payload
        raise CanonicalEncodingError(f"event cannot be encoded as canonical JSON: {exc}") from exc


def _sorted_unique(values: Iterable[str], check: Any) -> tuple[str, ...]:
    if isinstance(values, str):
        raise InvalidInputError(f"expected a sequence of strings, got the string {values!r}")
    return tuple(sorted({check(value) for value in values}))
