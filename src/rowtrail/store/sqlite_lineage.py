"""SQLite implementation of :class:`rowtrail.lineage.LineageStore`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.ids import ROW_BITS
from rowtrail.lineage import SourceInfo
from rowtrail.store.sqlite import SQLiteDatabase

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

    def __init__(self, db: SQLiteDatabase) -> None:
        self.db = db
        self._subject_maps: dict[int, _SubjectMap] = {}

    def find_source(self, name: str, digest: str) -> SourceInfo | None:
        """Return the source ``name`` with these exact bytes, if registered."""
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM sources WHERE name = ? AND digest = ?", (name, digest)
        )
        return _info(rows[0]) if rows else None

    def get_source(self, key: str | int) -> SourceInfo | None:
        """Return a source by index or the latest version of a name."""
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
        return [
            _info(r) for r in self.db.query(f"SELECT {_COLUMNS} FROM sources ORDER BY source_index")
        ]

    def insert_source(self, info: SourceInfo, *, created_at: str) -> SourceInfo:
        """Insert a new version of a source; assigns index and version atomically."""
        with self.db.write() as conn:
            existing = conn.execute(
                f"SELECT {_COLUMNS} FROM sources WHERE name = ? AND digest = ?",
                (info.name, info.digest),
            ).fetchone()
            if existing is not None:
                return _info(existing)
            (index,) = conn.execute(
                "SELECT coalesce(max(source_index) + 1, 0) FROM sources"
            ).fetchone()
            (version,) = conn.execute(
                "SELECT coalesce(max(version) + 1, 1) FROM sources WHERE name = ?", (info.name,)
            ).fetchone()
            conn.execute(
                f"INSERT INTO sources ({_COLUMNS}, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    index,
                    info.name,
                    version,
                    info.digest,
                    info.path,
                    info.format,
                    json.dumps(dict(info.schema), sort_keys=True),
                    info.n_rows,
                    info.subject_column,
                    None,
                    created_at,
                ),
            )
        return replace(info, index=int(index), version=int(version))

    def set_source_ledger_index(self, source_index: int, ledger_index: int) -> None:
        """Record where the source's registration event sits in the ledger."""
        with self.db.write() as conn:
            conn.execute(
                "UPDATE sources SET ledger_index = ? WHERE source_index = ?",
                (ledger_index, source_index),
            )

    def add_subject_rows(self, pairs: Sequence[tuple[str, int]]) -> None:
        """Store subject pseudonym -> row id pairs."""
        with self.db.write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO subject_rows (subject, row_id) VALUES (?, ?)", pairs
            )
        for source in {int(row_id) >> ROW_BITS for _, row_id in pairs}:
            self._subject_maps.pop(source, None)

    def rows_of_subject(self, subject: str) -> list[int]:
        """Return the row ids of a subject."""
        rows = self.db.query(
            "SELECT row_id FROM subject_rows WHERE subject = ? ORDER BY row_id", (subject,)
        )
        return [int(r[0]) for r in rows]

    def subjects_of_rows(self, row_ids: Sequence[int]) -> dict[int, str]:
        """Return the pseudonym of each given row id that has one."""
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
