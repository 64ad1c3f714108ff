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
from rowtrail.hashing import canonical_json, check_digest, decode_canonical_json
from rowtrail.ids import check_pseudonym

__all__ = ["EVENT_VERSION", "Event", "check_kind", "format_time", "parse_time"]

EVENT_VERSION = 1
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_FIELDS = {"actor", "blobs", "kind", "payload", "subjects", "time", "v"}
_MAX_ACTOR = 256


def check_kind(kind: object) -> str:
    """Raise :class:`InvalidInputError` unless ``kind`` is a dotted lowercase event name."""
    if not isinstance(kind, str) or len(kind) > 128 or not _KIND_RE.match(kind):
        raise InvalidInputError(
            "kind of an event must be a dotted lowercase name such as 'rows.ingested' "
            f"(letters, digits, '_'; at least two parts); got {kind!r}"
        )
    return kind


def format_time(moment: datetime) -> str:
    """Write an aware datetime as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidInputError(
            f"time of an event must be a timezone-aware datetime; got {moment!r}. "
            "Use datetime.now(UTC)."
        )
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Parse the format written by :func:`format_time`."""
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"time must look like 2026-01-31T12:00:00.000000Z; got {text!r}") from exc


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
        if not isinstance(self.payload, Mapping):
            raise InvalidInputError(
                f"payload of an event must be a mapping (JSON object); got {type(self.payload).__name__}"
            )
        if not isinstance(self.actor, str) or not 0 < len(self.actor) <= _MAX_ACTOR:
            raise InvalidInputError(
                f"actor of an event must be a non-empty str of at most {_MAX_ACTOR} characters; "
                f"got {self.actor!r}"
            )
        format_time(self.time)
        object.__setattr__(self, "subjects", _sorted_unique(self.subjects, check_pseudonym))
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
        return canonical_json(self.to_json())

    @classmethod
    def from_leaf(cls, leaf: bytes) -> Event:
        """Decode leaf bytes, raising :class:`CanonicalEncodingError` if they are not canonical."""
        value = decode_canonical_json(leaf)
        if not isinstance(value, dict) or set(value) != _FIELDS:
            raise CanonicalEncodingError(
                f"leaf must be an object with fields {sorted(_FIELDS)}; got {str(value)[:120]!r}"
            )
        if value["v"] != EVENT_VERSION:
            raise CanonicalEncodingError(f"unknown event format version {value['v']!r}")
        return cls(
            kind=value["kind"],
            payload=value["payload"],
            actor=value["actor"],
            time=parse_time(value["time"]),
            subjects=tuple(value["subjects"]),
            blobs=tuple(value["blobs"]),
        )


def _sorted_unique(values: Iterable[str], check: Any) -> tuple[str, ...]:
    if isinstance(values, str):
        raise InvalidInputError(f"expected a sequence of strings, got the string {values!r}")
    return tuple(sorted({check(value) for value in values}))
