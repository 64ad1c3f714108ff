"""SQLite implementation of :class:`rowtrail.lineage.LineageStore`."""

from __future__ import annotations

import hmac
import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import InvalidInputError, TableIntegrityError
from rowtrail.ids import ROW_BITS
from rowtrail.ids import row_id as pack_row_id
from rowtrail.ledger import (
    BUCKET_BITS,
    Event,
    Ledger,
    NoteVerifier,
    bucket_change,
    bucket_hash,
    digest_of,
)
from rowtrail.lineage import SOURCE_EVENT_KINDS, SourceInfo
from rowtrail.store.sqlite import SQLiteDatabase, grouped_texts

__all__ = ["SQLiteLineageStore"]

_COLUMNS = (
    "source_index, name, version, digest, path, format, schema_json, n_rows, subject_column, "
    "ledger_index"
)


def _info(row: Sequence[Any]) -> SourceInfo:
    index, name, version, digest, path, fmt, schema, n_rows, subject_column, ledger_index = row
    return SourceInfo(
        name=name,
        digest=digest,
        format=fmt,
        schema=json.loads(schema),
        n_rows=int(n_rows),
        path=path,
        subject_column=subject_column,
        index=int(index),
        version=int(version),
        ledger_index=None if ledger_index is None else int(ledger_index),
    )


_ROW_MASK = (1 << ROW_BITS) - 1

_TABLE_COLUMNS = {
    "sources": f"{_COLUMNS}, created_at",
    "subject_rows": "subject, row_id, ledger_index",
}
# Where each cache table's rows hold the index of the event they were projected from.
_LEDGER_INDEX_AT = {
    table: columns.split(", ").index("ledger_index") for table, columns in _TABLE_COLUMNS.items()
}
_INSERT = {
    table: f"INSERT INTO {table} ({columns}) VALUES ({','.join('?' * len(columns.split(',')))})"
    for table, columns in _TABLE_COLUMNS.items()
}


def _expected_rows(index: int, event: Event) -> dict[str, list[tuple[Any, ...]]]:
    """Return the cache rows one ledger event implies (none for payloads of another shape)."""
    payload = event.payload
    if event.kind == "source.registered" and {"source_index", "version", "name"} <= set(payload):
        return {
            "sources": [
                (
                    int(payload["source_index"]),
                    str(payload["name"]),
                    int(payload["version"]),
                    str(payload["digest"]),
                    payload.get("path"),
                    str(payload["format"]),
                    json.dumps(dict(payload["schema"]), sort_keys=True),
                    int(payload["n_rows"]),
                    payload.get("subject_column"),
                    index,
                    event.time.isoformat(),
                )
            ]
        }
    if event.kind == "subject.ingested" and {"source_index", "row_numbers"} <= set(payload):
        source = int(payload["source_index"])
        return {
            "subject_rows": [
                (subject, pack_row_id(source, int(number)), index)
                for subject in event.subjects
                for number in payload["row_numbers"]
            ]
        }
    return {}


# The subject rows' canonical text, built by SQLite (the same bytes as _row_text).
_SUBJECT_ROW_SQL = (
    "'subject_rows' || char(31) || subject || char(31) || row_id || char(31) || ledger_index"
)


def _bucket_rows(conn: sqlite3.Connection, table: str, bucket: int) -> list[tuple[int, str]]:
    """Return ``(ledger index, canonical text)`` of every row of one cache bucket."""
    lo, hi = bucket << BUCKET_BITS, (bucket + 1) << BUCKET_BITS
    rows = conn.execute(
        f"SELECT {_TABLE_COLUMNS[table]} FROM {table} "
        "WHERE ledger_index >= ? AND ledger_index < ?",
        (lo, hi),
    ).fetchall()
    at = _LEDGER_INDEX_AT[table]
    return [(int(row[at]), _row_text(table, tuple(row))) for row in rows]


def _row_text(table: str, row: tuple[Any, ...]) -> str:
    """Return the canonical text of one cache row (what the multiset hash covers).

    Subject rows, by far the most numerous, are ``subject_rows␟<subject>␟<row id>␟<index>``:
    row id and ledger index are digits only, so the last two separators split the text
    unambiguously; other rows are JSON.
    """
    if table == "subject_rows":
        subject, row_id, ledger_index = row
        return f"subject_rows\x1f{subject}\x1f{int(row_id)}\x1f{int(ledger_index)}"
    return json.dumps([table, *row], separators=(",", ":"), ensure_ascii=False)


def _compare(table: str, expected: set[tuple[Any, ...]], stored: set[tuple[Any, ...]]) -> None:
    missing, extra = sorted(expected - stored, key=repr), sorted(stored - expected, key=repr)
    if missing or extra:
        row = (missing or extra)[0]
        what = "is missing" if missing else "is not backed by any ledger event"
        raise TableIntegrityError(
            f"cache table {table!r}: row with key {row[0]!r} {what} "
            f"({len(missing)} missing, {len(extra)} extra or altered rows). The table was "
            "edited outside rowtrail; answers from it would be wrong.",
            table=table,
            key=repr(row[0]),
        )


class _SubjectMap:
    """Subject pseudonym of every row of one source: a code per row number (-1: none)."""

    def __init__(self, rows: Sequence[tuple[int, str]]) -> None:
        names = sorted({str(subject) for _, subject in rows})
        code_of = {name: code for code, name in enumerate(names)}
        numbers = np.fromiter((int(r) & _ROW_MASK for r, _ in rows), np.int64, len(rows))
        self.codes: NDArray[np.int32] = np.full(
            int(numbers.max()) + 1 if len(rows) else 0, -1, dtype=np.int32
        )
        self.codes[numbers] = np.fromiter((code_of[str(s)] for _, s in rows), np.int32, len(rows))
        self.names = names

    def lookup(self, row_ids: NDArray[np.int64], found: dict[int, str]) -> None:
        numbers = row_ids & _ROW_MASK
        inside = numbers < self.codes.size
        codes = self.codes[numbers[inside]]
        known = codes >= 0
        names = self.names
        for row, code in zip(row_ids[inside][known].tolist(), codes[known].tolist(), strict=True):
            found[row] = names[code]


class SQLiteLineageStore:
    """Sources and subject rows in the workspace database.

    Subject lookups by row id go through a per-source map loaded once (one range scan) and
    dropped when this store adds subject rows to that source; a source's subject rows are all
    written when it is registered, so the map does not go stale.
    """

    def __init__(self, db: SQLiteDatabase, ledger: Ledger | None = None) -> None:
        self.db = db
        self._subject_maps: dict[int, _SubjectMap] = {}
        self._ledger = ledger
        self._checked_version: int | None = None

    def _guard(self) -> None:
        """Check the cache tables against the ledger before answering from them.

        Done once per process and again whenever another connection has committed (SQLite's
        ``data_version`` changed): this connection's own writes go through the projections,
        so they cannot make the tables disagree. An edit made behind this handle's back is
        caught here, and the answer refused with :class:`TableIntegrityError`.
        """
        if self._ledger is None or self.db.conn.in_transaction:
            return
        version = int(self.db.query("PRAGMA data_version")[0][0])
        if version != self._checked_version:
            self._subject_maps.clear()
            self._check_signed_digest(self._ledger)
            self._checked_version = version

    def find_source(self, name: str, digest: str) -> SourceInfo | None:
        """Return the source ``name`` with these exact bytes, if registered."""
        self._guard()
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM sources WHERE name = ? AND digest = ?", (name, digest)
        )
        return _info(rows[0]) if rows else None

    def get_source(self, key: str | int) -> SourceInfo | None:
        """Return a source by index or the latest version of a name."""
        self._guard()
        if isinstance(key, int):
            rows = self.db.query(f"SELECT {_COLUMNS} FROM sources WHERE source_index = ?", (key,))
        else:
            rows = self.db.query(
                f"SELECT {_COLUMNS} FROM sources WHERE name = ? ORDER BY version DESC LIMIT 1",
                (key,),
            )
        return _info(rows[0]) if rows else None

    def list_sources(self) -> list[SourceInfo]:
        """Return all sources by index."""
        self._guard()
        return [
            _info(r) for r in self.db.query(f"SELECT {_COLUMNS} FROM sources ORDER BY source_index")
        ]

    def next_source_slot(self, name: str) -> tuple[int, int]:
        """Return the next free source index and the next version of ``name``."""
        (index,) = self.db.query("SELECT coalesce(max(source_index) + 1, 0) FROM sources")[0]
        (version,) = self.db.query(
            "SELECT coalesce(max(version) + 1, 1) FROM sources WHERE name = ?", (name,)
        )[0]
        return int(index), int(version)

    def project(
        self, handle: Any, entries: Sequence[tuple[int, bytes]]
    ) -> list[tuple[int, int]]:
        """Write the cache rows of appended source/subject events (in their transaction).

        Returns the ``(old, new)`` hash of every cache bucket the rows went into, by which the
        checkpoint record's signed cache digest is updated.
        """
        conn: sqlite3.Connection = handle
        touched: set[tuple[str, int]] = set()
        for index, leaf in entries:
            event = Event.from_leaf(leaf)
            for table, rows in _expected_rows(index, event).items():
                statement = _INSERT[table]
                try:
                    conn.executemany(statement, rows)
                except sqlite3.IntegrityError as exc:
                    raise InvalidInputError(
                        f"event {event.kind!r} conflicts with the {table} already recorded "
                        f"({exc}); nothing was written"
                    ) from exc
                touched.add((table, index >> BUCKET_BITS))
            if event.kind == "subject.ingested":
                self._subject_maps.pop(int(event.payload.get("source_index", -1)), None)
        first = min((index for index, _ in entries), default=0)
        # Each bucket as read in ``conn`` holds the new rows already.
        return [
            bucket_change(f"{table}:{bucket}", _bucket_rows(conn, table, bucket), first)
            for table, bucket in sorted(touched)
        ]

    def _check_signed_digest(self, ledger: Ledger, verifier: NoteVerifier | None = None) -> int:
        """Compare the tables with the digest the latest checkpoint signed (bucket hashes)."""
        record = ledger.signed_record(verifier)
        signed = "0" * 64 if record is None else record.cache_rows
        buckets: dict[tuple[str, int], list[str]] = {}
        at = _LEDGER_INDEX_AT["sources"]
        for row in self.db.query(f"SELECT {_TABLE_COLUMNS['sources']} FROM sources"):
            if not isinstance(row[at], int):
                raise TableIntegrityError(
                    f"cache table 'sources': row {row[0]!r} has no ledger index",
                    table="sources",
                    key=repr(row[0]),
                )
            key = ("sources", row[at] >> BUCKET_BITS)
            buckets.setdefault(key, []).append(_row_text("sources", tuple(row)))
        grouped = grouped_texts(
            self.db,
            f"SELECT ledger_index >> {BUCKET_BITS}, count(*), group_concat({_SUBJECT_ROW_SQL}, "
            f"char(30)) FROM subject_rows GROUP BY ledger_index >> {BUCKET_BITS}",
        )
        buckets.update((("subject_rows", b), texts) for b, texts in grouped.items())
        actual = digest_of(bucket_hash(f"{t}:{b}", texts) for (t, b), texts in buckets.items())
        if not hmac.compare_digest(actual, signed):
            raise TableIntegrityError(
                "cache tables 'sources'/'subject_rows' differ from what the latest checkpoint "
                "signed: rows were edited, added or removed outside rowtrail; answers from them "
                "would be wrong. Run `rowtrail verify` to find the row.",
                table="sources/subject_rows",
                key="(digest)",
            )
        return sum(len(texts) for texts in buckets.values())

    def verify_caches(
        self,
        ledger: Ledger,
        events: Iterable[tuple[int, Event]] | None = None,
        *,
        verifier: NoteVerifier | None = None,
    ) -> int:
        """Rebuild ``sources`` and ``subject_rows`` from the ledger and compare them.

        ``events`` are the log's checked events when the caller has them already (a full
        verification decodes each once); otherwise the source and subject events are read.
        Raises :class:`TableIntegrityError` naming the table and the key of the first row
        that is missing, extra or different.
        """
        if events is None:
            events = (
                (entry.index, entry.event)
                for kind in SOURCE_EVENT_KINDS
                for entry in ledger.entries_of_kind(kind)
            )
        expected: dict[str, set[tuple[Any, ...]]] = {table: set() for table in _INSERT}
        for index, event in events:
            for table, rows in _expected_rows(index, event).items():
                expected[table].update(rows)
        checked = 0
        for table, columns in _TABLE_COLUMNS.items():
            stored = {tuple(row) for row in self.db.query(f"SELECT {columns} FROM {table}")}
            _compare(table, expected[table], stored)
            checked += len(stored)
        self._check_signed_digest(ledger, verifier)
        return checked

    def rows_of_subject(self, subject: str) -> list[int]:
        """Return the row ids of a subject."""
        self._guard()
        rows = self.db.query(
            "SELECT row_id FROM subject_rows WHERE subject = ? ORDER BY row_id", (subject,)
        )
        return [int(r[0]) for r in rows]

    def subject_events(self, subjects: Sequence[str]) -> dict[str, list[int]]:
        """Return the ledger indices of the ``subject.ingested`` events of each subject."""
        self._guard()
        found: dict[str, set[int]] = {}
        for chunk in range(0, len(subjects), 500):
            part = list(subjects[chunk : chunk + 500])
            marks = ",".join("?" * len(part))
            for subject, index in self.db.query(
                f"SELECT subject, ledger_index FROM subject_rows WHERE subject IN ({marks})", part
            ):
                found.setdefault(str(subject), set()).add(int(index))
        return {subject: sorted(indices) for subject, indices in found.items()}

    def subjects_of_rows(self, row_ids: Sequence[int]) -> dict[int, str]:
        """Return the pseudonym of each given row id that has one."""
        self._guard()
        found: dict[int, str] = {}
        ids = np.unique(np.asarray(row_ids, dtype=np.int64))
        sources = ids >> ROW_BITS
        for source in np.unique(sources).tolist():
            self._subject_map(int(source)).lookup(ids[sources == source], found)
        return found

    def _subject_map(self, source: int) -> _SubjectMap:
        cached = self._subject_maps.get(source)
        if cached is None:
            rows = self.db.query(
                "SELECT row_id, subject FROM subject_rows WHERE row_id >= ? AND row_id < ? "
                "ORDER BY row_id, subject",
                (source << ROW_BITS, (source + 1) << ROW_BITS),
            )
            cached = self._subject_maps[source] = _SubjectMap(rows)
        return cached
