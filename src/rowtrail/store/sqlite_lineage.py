"""SQLite implementation of :class:`rowtrail.lineage.LineageStore`."""

from __future__ import annotations

import hmac
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
from rowtrail.lineage import SOURCE_EVENT_KINDS, SourceInfo, SubjectRows, subject_rows_digest
from rowtrail.store._sql import Database, RowConflictError

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


def _bucket_rows(conn: Any, table: str, bucket: int) -> list[tuple[int, str]]:
    """Return ``(ledger index, canonical text)`` of every row of one cache bucket."""
    lo, hi = bucket << BUCKET_BITS, (bucket + 1) << BUCKET_BITS
    rows = conn.execute(
        f"SELECT {_TABLE_COLUMNS[table]} FROM {table} WHERE ledger_index >= ? AND ledger_index < ?",
        (lo, hi),
    ).fetchall()
    at = _LEDGER_INDEX_AT[table]
    return [(int(row[at]), _row_text(table, tuple(row))) for row in rows]


def _row_text(table: str, row: tuple[Any, ...]) -> str:
    """Return the canonical text of one cache row (what the multiset hash covers): JSON."""
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


@dataclass(frozen=True, slots=True)
class _Registration:
    """One source as its proven ``source.registered`` event describes it."""

    info: SourceInfo
    first: int  # ledger index of its first subject.ingested event
    stop: int  # one past its last
    blank_starts: NDArray[np.int64]  # rows_without_subject ranges
    blank_stops: NDArray[np.int64]
    rows_digest: str | None

    @classmethod
    def of(cls, info: SourceInfo, event: Event) -> _Registration:
        payload = event.payload
        first = int(info.ledger_index or 0) + 1
        # Subjects come from a column, or from ``subject_ids`` given with the rows (no column
        # name): either way the registration records its subject coverage.
        if info.subject_column is None and "subject_events" not in payload:
            ranges = np.asarray([[0, info.n_rows]], dtype=np.int64).reshape(-1, 2)
            return cls(info, first, first, ranges[:, 0], ranges[:, 1], None)
        if not {"subject_events", "rows_without_subject", "subject_rows_digest"} <= set(payload):
            raise TableIntegrityError(
                f"source {info.name!r} (index {info.index}) was registered with a subject column "
                "by a rowtrail that did not record its subject coverage, so its subject rows "
                "cannot be checked; register the source again in a new workspace.",
                table="sources",
                key=repr(info.index),
            )
        ranges = np.asarray(payload["rows_without_subject"], dtype=np.int64).reshape(-1, 2)
        return cls(
            info,
            first,
            first + int(payload["subject_events"]),
            ranges[:, 0],
            ranges[:, 1],
            str(payload["subject_rows_digest"]),
        )

    def blank(self, numbers: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Return which of these row numbers have no subject by the registration."""
        at = np.searchsorted(self.blank_starts, numbers, side="right") - 1
        out = np.zeros(numbers.shape, dtype=bool)
        inside = at >= 0
        out[inside] = numbers[inside] < self.blank_stops[at[inside]]
        return out


def _subject_rows_error(message: str, key: object) -> TableIntegrityError:
    return TableIntegrityError(
        f"cache table 'subject_rows': {message}. The table was edited outside rowtrail; "
        "answers from it would be wrong. Run `rowtrail verify` to find every changed row.",
        table="subject_rows",
        key=repr(key),
    )


# A lookup of more rows of one source than this, and than 1/32 of its rows, checks the
# source's whole subject map against its registration's digest (one range scan, ~1 µs a row)
# instead of proving each row's event (~30 µs a row).
_ROWS_PROVEN_ONE_BY_ONE = 64


class SQLiteLineageStore:
    """Sources and subject rows in the workspace database.

    Both tables are caches of ledger events and are checked before an answer uses them:

    * ``sources`` (a row per source version, few) against the digest the latest signed
      checkpoint record carries, and each row against its proven ``source.registered`` event;
    * ``subject_rows`` only where an answer reads it: a row against the proven
      ``subject.ingested`` event it names; a row's lack of subject against the ranges of
      blank rows its source's event lists; a subject's absence from a source against the two
      adjacent events (a registration's subject events are in ascending pseudonym order); a
      whole source's map against the digest its event records.

    A difference raises :class:`TableIntegrityError`. Checks are kept until another connection
    commits or the log grows; this connection's writes inside a transaction read the tables
    as written.
    """

    def __init__(self, db: Database, ledger: Ledger | None = None) -> None:
        self.db = db
        self._ledger = ledger
        self._state: tuple[int, int] | None = None
        self._registrations: dict[int, _Registration] = {}
        self._subject_maps: dict[int, _SubjectMap] = {}

    def _checked(self) -> dict[int, _Registration] | None:
        """Return the checked registrations by source index (``None``: read unchecked).

        Unchecked inside this connection's own write transaction (its writes go through the
        projections) and for a store without a ledger.
        """
        ledger = self._ledger
        if ledger is None or self.db.writing:
            return None
        state = (int(self.db.memo("data_version", self.db.data_version)), ledger.size)
        if state != self._state:
            self._subject_maps.clear()
            self._registrations = self._check_sources(ledger)
            self._state = state
        return self._registrations

    def _check_sources(self, ledger: Ledger) -> dict[int, _Registration]:
        rows = self.db.query(f"SELECT {_TABLE_COLUMNS['sources']} FROM sources")
        self._check_signed_digest(ledger, rows=rows)
        at = _LEDGER_INDEX_AT["sources"]
        entries = ledger.proven([int(row[at]) for row in rows])
        out = {}
        for row, entry in zip(rows, entries, strict=True):
            if _expected_rows(entry.index, entry.event).get("sources") != [tuple(row)]:
                raise TableIntegrityError(
                    f"cache table 'sources': row {row[0]!r} differs from the proven event "
                    f"{entry.index} it names; run `rowtrail verify`",
                    table="sources",
                    key=repr(row[0]),
                )
            info = _info(row[: at + 1])
            out[info.index] = _Registration.of(info, entry.event)
        return out

    def _table_sources(self, where: str = "", args: Sequence[Any] = ()) -> list[SourceInfo]:
        sql = f"SELECT {_COLUMNS} FROM sources {where} ORDER BY source_index"
        return [_info(r) for r in self.db.query(sql, tuple(args))]

    def find_source(self, name: str, digest: str) -> SourceInfo | None:
        """Return the source ``name`` with these exact bytes, if registered."""
        checked = self._checked()
        if checked is None:
            found = self._table_sources("WHERE name = ? AND digest = ?", (name, digest))
        else:
            found = [r.info for r in checked.values() if r.info.name == name]
            found = [info for info in found if info.digest == digest]
        return found[0] if found else None

    def get_source(self, key: str | int) -> SourceInfo | None:
        """Return a source by index or the latest version of a name."""
        if isinstance(key, int):
            found = [s for s in self.list_sources() if s.index == key]
        else:
            found = [s for s in self.list_sources() if s.name == key]
        return max(found, key=lambda s: s.version) if found else None

    def list_sources(self) -> list[SourceInfo]:
        """Return all sources by index."""
        checked = self._checked()
        if checked is None:
            return self._table_sources()
        return [checked[i].info for i in sorted(checked)]

    def next_source_slot(self, name: str) -> tuple[int, int]:
        """Return the next free source index and the next version of ``name``."""
        (index,) = self.db.query("SELECT coalesce(max(source_index) + 1, 0) FROM sources")[0]
        (version,) = self.db.query(
            "SELECT coalesce(max(version) + 1, 1) FROM sources WHERE name = ?", (name,)
        )[0]
        return int(index), int(version)

    def project(self, handle: Any, entries: Sequence[tuple[int, bytes]]) -> list[tuple[int, int]]:
        """Write the cache rows of appended source/subject events (in their transaction).

        Returns the ``(old, new)`` hash of every cache bucket the rows went into, by which the
        checkpoint record's signed cache digest is updated.
        """
        conn = handle
        touched: set[tuple[str, int]] = set()
        for index, leaf in entries:
            event = Event.from_leaf(leaf)
            for table, rows in _expected_rows(index, event).items():
                statement = _INSERT[table]
                try:
                    conn.executemany(statement, rows)
                except (sqlite3.IntegrityError, RowConflictError) as exc:
                    raise InvalidInputError(
                        f"event {event.kind!r} conflicts with the {table} already recorded "
                        f"({exc}); nothing was written"
                    ) from exc
                if table == "sources":  # subject rows are bound by their source's event
                    touched.add((table, index >> BUCKET_BITS))
        first = min((index for index, _ in entries), default=0)
        # Each bucket as read in ``conn`` holds the new rows already.
        return [
            bucket_change(f"{table}:{bucket}", _bucket_rows(conn, table, bucket), first)
            for table, bucket in sorted(touched)
        ]

    def _check_signed_digest(
        self,
        ledger: Ledger,
        verifier: NoteVerifier | None = None,
        *,
        rows: Sequence[Sequence[Any]] | None = None,
    ) -> int:
        """Compare ``sources`` with the digest the latest checkpoint record signed.

        The digest is a sum of bucket hashes of the table's rows (few: one per source
        version), so a row removed, added or changed is caught without reading any event.
        ``subject_rows`` is bound by digests inside each proven ``source.registered`` event.
        """
        record = ledger.signed_record(verifier)
        signed = "0" * 64 if record is None else record.cache_rows
        if rows is None:
            rows = self.db.query(f"SELECT {_TABLE_COLUMNS['sources']} FROM sources")
        buckets: dict[int, list[str]] = {}
        at = _LEDGER_INDEX_AT["sources"]
        for row in rows:
            if not isinstance(row[at], int):
                raise TableIntegrityError(
                    f"cache table 'sources': row {row[0]!r} has no ledger index",
                    table="sources",
                    key=repr(row[0]),
                )
            buckets.setdefault(row[at] >> BUCKET_BITS, []).append(_row_text("sources", tuple(row)))
        actual = digest_of(bucket_hash(f"sources:{b}", texts) for b, texts in buckets.items())
        if not hmac.compare_digest(actual, signed):
            raise TableIntegrityError(
                "cache table 'sources' differs from what the latest checkpoint signed: rows "
                "were edited, added or removed outside rowtrail; answers from it would be "
                "wrong. Run `rowtrail verify` to find the row.",
                table="sources",
                key="(digest)",
            )
        return len(rows)

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
        """Return the row ids of a subject, ascending, proven complete source by source.

        In each source the subject has either one ``subject.ingested`` event, which must list
        exactly the rows found, or none, which the two adjacent events around its pseudonym
        show (a registration's subject events are in ascending pseudonym order). Every event
        relied on is proven against the signed checkpoint.
        """
        found = self.subject_rows_records(subject)
        if found.records and self._ledger is not None:
            self._ledger.proven(found.records)
        return found.rows

    def subject_rows_records(self, subject: str) -> SubjectRows:
        """Return a subject's row ids with the records they rest on, not yet proven.

        Their content is checked (leaf bytes against the stored leaf hash); the caller must
        prove every one of ``records`` against the signed checkpoint, in one batch with its
        own proofs, before it answers (:meth:`rows_of_subject` does).
        """
        rows = self.db.query(
            "SELECT row_id, ledger_index FROM subject_rows WHERE subject = ? ORDER BY row_id",
            (subject,),
        )
        checked = self._checked()
        if checked is None:
            return SubjectRows([int(r[0]) for r in rows], {}, [])
        by_source: dict[int, list[tuple[int, int]]] = {}
        for row_id, index in rows:
            by_source.setdefault(int(row_id) >> ROW_BITS, []).append((int(row_id), index))
        if set(by_source) - set(checked):
            key = next(r for s in set(by_source) - set(checked) for r, _ in by_source[s])
            raise _subject_rows_error(f"row {key} is of no registered source", key)
        found = SubjectRows([int(r[0]) for r in rows], {}, [])
        for source, reg in checked.items():
            mine = by_source.get(source)
            if mine:
                self._check_present(reg, subject, mine, found)
            elif reg.first < reg.stop:
                self._check_absent(reg, subject, found)
        found.records.sort()
        return found

    def _check_present(
        self,
        reg: _Registration,
        subject: str,
        rows: list[tuple[int, int]],
        found: SubjectRows,
    ) -> None:
        """Rows of one subject in one source: exactly the rows its one event lists."""
        indices = {index for _, index in rows}
        if len(indices) != 1:
            raise _subject_rows_error(
                f"rows of one subject in source {reg.info.index} name {len(indices)} events",
                subject,
            )
        (index,) = indices
        named, numbers = self._subject_events(reg, [index], prove=False)[index]
        if named != subject or numbers != {row_id & _ROW_MASK for row_id, _ in rows}:
            raise _subject_rows_error(
                f"the rows of a subject in source {reg.info.index} differ from the rows its "
                f"event {index} lists",
                subject,
            )
        found.record_of.update((row_id, index) for row_id, _ in rows)
        found.records.append(index)

    def _check_absent(self, reg: _Registration, subject: str, found: SubjectRows) -> None:
        """No rows of ``subject`` in the source: its neighbours' events must be adjacent."""
        lo, hi = reg.info.index << ROW_BITS, (reg.info.index + 1) << ROW_BITS
        before = self.db.query(
            "SELECT subject, ledger_index FROM subject_rows WHERE subject < ? AND row_id >= ? "
            "AND row_id < ? ORDER BY subject DESC LIMIT 1",
            (subject, lo, hi),
        )
        at = int(before[0][1]) if before and isinstance(before[0][1], int) else reg.first - 1
        wanted = [i for i in (at, at + 1) if reg.first <= i < reg.stop]
        events = self._subject_events(reg, wanted, prove=False)
        if before and (at not in events or events[at][0] != before[0][0]):
            raise _subject_rows_error(
                f"a row of source {reg.info.index} names an event that is not its subject's",
                before[0][0],
            )
        if at + 1 in events and events[at + 1][0] <= subject:
            raise _subject_rows_error(
                f"rows of a subject in source {reg.info.index} are missing (its event "
                f"{at + 1} is not listed)",
                subject,
            )
        found.records.extend(wanted)

    def _subject_events(
        self, reg: _Registration, indices: Iterable[int], *, prove: bool = True
    ) -> dict[int, tuple[str, set[int]]]:
        """Return ``index -> (pseudonym, row numbers)`` of subject events of a source.

        Proven against the signed checkpoint, or with ``prove=False`` only checked against
        the stored leaf hashes (for callers that prove them in their own batch).
        """
        wanted = sorted(set(indices))
        for index in wanted:
            if not reg.first <= index < reg.stop:
                raise _subject_rows_error(
                    f"a row names ledger entry {index}, which is not a subject event of source "
                    f"{reg.info.index}",
                    index,
                )
        assert self._ledger is not None  # only called on checked registrations
        out = {}
        for entry in self._ledger.proven(wanted) if prove else self._ledger.entries(wanted):
            event = entry.event
            if (
                event.kind != "subject.ingested"
                or len(event.subjects) != 1
                or event.payload.get("source_index") != reg.info.index
            ):
                raise _subject_rows_error(
                    f"entry {entry.index} is not a subject event of source {reg.info.index}",
                    entry.index,
                )
            out[entry.index] = (event.subjects[0], {int(n) for n in event.payload["row_numbers"]})
        return out

    def subject_events(self, subjects: Sequence[str]) -> dict[str, list[int]]:
        """Return the ledger indices of the ``subject.ingested`` events of each subject.

        Each returned index is a proven event that names the subject (positive claims only:
        these are the records an answer cites).
        """
        checked = self._checked()
        rows = self._subject_rows_where("subject", list(subjects))
        if checked is not None:
            self._check_rows(checked, rows)
        found: dict[str, set[int]] = {}
        for subject, _, index in rows:
            found.setdefault(str(subject), set()).add(int(index))
        return {subject: sorted(indices) for subject, indices in found.items()}

    def _subject_rows_where(self, column: str, values: list[Any]) -> list[Any]:
        """Return ``(subject, row id, ledger index)`` rows whose ``column`` is in ``values``."""
        rows: list[Any] = []
        for chunk in range(0, len(values), 500):
            part = values[chunk : chunk + 500]
            marks = ",".join("?" * len(part))
            rows += self.db.query(
                f"SELECT subject, row_id, ledger_index FROM subject_rows WHERE {column} IN "
                f"({marks})",
                part,
            )
        return rows

    def _check_rows(self, checked: dict[int, _Registration], rows: Sequence[Sequence[Any]]) -> None:
        """Each ``(subject, row id, ledger index)`` row against the proven event it names."""
        by_source: dict[int, list[Sequence[Any]]] = {}
        for row in rows:
            by_source.setdefault(int(row[1]) >> ROW_BITS, []).append(row)
        for source, part in by_source.items():
            reg = checked.get(source)
            if reg is None:
                raise _subject_rows_error(
                    f"row {part[0][1]} is of no registered source", part[0][1]
                )
            indices = [r[2] if isinstance(r[2], int) else -1 for r in part]
            events = self._subject_events(reg, indices)
            for (subject, row_id, _), index in zip(part, indices, strict=True):
                named, numbers = events[index]
                if named != subject or int(row_id) & _ROW_MASK not in numbers:
                    raise _subject_rows_error(
                        f"row {row_id} is not backed by the event {index} it names", row_id
                    )

    def subjects_of_rows(self, row_ids: Sequence[int]) -> dict[int, str]:
        """Return the pseudonym of each given row id that has one.

        A few rows of a source are checked one by one (each row's event proven; a row without
        subject against its source's blank ranges); many are looked up in the source's whole
        map, checked once against the digest its registration records.
        """
        checked = self._checked()
        found: dict[int, str] = {}
        ids = np.unique(np.asarray(row_ids, dtype=np.int64))
        sources = ids >> ROW_BITS
        for source in np.unique(sources).tolist():
            part = ids[sources == source]
            reg = None if checked is None else checked.get(int(source))
            if checked is not None and reg is None:
                continue  # no such source: its rows have no subject
            if reg is None or part.size > max(_ROWS_PROVEN_ONE_BY_ONE, reg.info.n_rows >> 5):
                self._subject_map(int(source), reg).lookup(part, found)
            else:
                self._lookup_few(reg, part, found)
        return found

    def _lookup_few(
        self, reg: _Registration, row_ids: NDArray[np.int64], found: dict[int, str]
    ) -> None:
        numbers = row_ids & _ROW_MASK
        row_ids = row_ids[numbers < reg.info.n_rows]  # beyond the source: no subject
        rows = self._subject_rows_where("row_id", row_ids.tolist())
        self._check_rows({reg.info.index: reg}, rows)
        have = {int(r[1]) for r in rows}
        if len(have) != len(rows):
            raise _subject_rows_error("a row has two subjects", rows[0][1])
        missing = np.asarray(sorted(set(row_ids.tolist()) - have), dtype=np.int64)
        if missing.size:
            blank = reg.blank(missing & _ROW_MASK)
            if not blank.all():
                lost = int(missing[~blank][0])
                raise _subject_rows_error(f"the subject row of row {lost} is missing", lost)
        found.update((int(row_id), str(subject)) for subject, row_id, _ in rows)

    def _subject_map(self, source: int, reg: _Registration | None) -> _SubjectMap:
        cached = self._subject_maps.get(source)
        if cached is None:
            rows = self.db.query(
                "SELECT row_id, subject FROM subject_rows WHERE row_id >= ? AND row_id < ? "
                "ORDER BY row_id, subject",
                (source << ROW_BITS, (source + 1) << ROW_BITS),
            )
            if reg is not None:
                pairs = ((int(r) & _ROW_MASK, str(s)) for r, s in rows)
                if subject_rows_digest(pairs) != (reg.rows_digest or subject_rows_digest([])):
                    raise _subject_rows_error(
                        f"the subject rows of source {source} differ from the digest its "
                        "registration records",
                        source,
                    )
            cached = _SubjectMap(rows)
            if reg is not None:  # unchecked maps are not kept
                self._subject_maps[source] = cached
        return cached
