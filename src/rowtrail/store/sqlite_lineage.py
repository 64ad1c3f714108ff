"""SQLite implementation of :class:`rowtrail.lineage.LineageStore`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rowtrail.lineage import SourceInfo
from rowtrail.store.sqlite import SQLiteDatabase, _chunks

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


class SQLiteLineageStore:
    """Sources and subject rows in the workspace database."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self.db = db

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

    def rows_of_subject(self, subject: str) -> list[int]:
        """Return the row ids of a subject."""
        rows = self.db.query(
            "SELECT row_id FROM subject_rows WHERE subject = ? ORDER BY row_id", (subject,)
        )
        return [int(r[0]) for r in rows]

    def subjects_of_rows(self, row_ids: Sequence[int]) -> dict[int, str]:
        """Return the pseudonym of each given row id that has one."""
        found: dict[int, str] = {}
        for chunk in _chunks(sorted({int(r) for r in row_ids})):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT row_id, subject FROM subject_rows WHERE row_id IN ({marks})"
            found.update((int(r), str(s)) for r, s in self.db.query(sql, chunk))
        return found
