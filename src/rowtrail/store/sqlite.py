"""SQLite backend: one WAL database per workspace, migrations, and the ledger store.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``; every batch is one ``BEGIN
IMMEDIATE`` transaction, so a crash leaves either the whole batch (entries, tree nodes,
indexes) or none of it, and concurrent writers in other processes serialize on the lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rowtrail.errors import SchemaVersionError, StorageError
from rowtrail.ledger import EntryRow, StoredCheckpoint
from rowtrail.store._migrations import MIGRATIONS, SCHEMA_VERSION

__all__ = ["SQLiteDatabase", "SQLiteLedgerStore"]

_LEVEL_SHIFT = 56
_CHUNK = 500  # SQLite's default limit on bound parameters is 999 (older builds)


def _node_key(level: int, index: int) -> int:
    return (level << _LEVEL_SHIFT) | index


class SQLiteDatabase:
    """A workspace database file with its migrations applied."""

    def __init__(self, path: str | Path, *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        try:
            self.conn = sqlite3.connect(
                str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise StorageError(f"could not open workspace database {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        with self.write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"workspace database {self.path} has schema version {current}, but this "
                    f"rowtrail knows versions up to {SCHEMA_VERSION}. Upgrade rowtrail "
                    "(pip install -U rowtrail) to open it."
                )
            for version, statements in MIGRATIONS:
                if version > current:
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(version),),
                    )

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Run statements in one exclusive (``BEGIN IMMEDIATE``) transaction."""
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"could not start a write transaction: {exc}") from exc
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self.conn.execute("ROLLBACK")
                raise StorageError(f"could not commit: {exc}") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run a read query and return all rows."""
        with self.lock:
            try:
                return self.conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"query failed: {exc}") from exc

    def get_meta(self, key: str) -> str | None:
        """Return a metadata value."""
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta_default(self, key: str, value: str) -> str:
        """Set a metadata value unless present; return the stored value."""
        with self.write() as conn:
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            return str(conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def size(self) -> int:
        row = self._conn.execute("SELECT max(idx) FROM events").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def read_node(self, level: int, index: int) -> bytes:
        if level == 0:
            row = self._conn.execute("SELECT leaf_hash FROM events WHERE idx = ?", (index,)).fetchone()
        else:
            row = self._conn.execute(
                "SELECT hash FROM tree_nodes WHERE key = ?", (_node_key(level, index),)
            ).fetchone()
        if row is None:
            raise StorageError(f"tree node (level {level}, index {index}) is missing")
        return bytes(row[0])

    def write(self, rows: Sequence[EntryRow], nodes: Sequence[tuple[int, int, bytes]]) -> None:
        self._conn.executemany(
            "INSERT INTO events (idx, kind, leaf, leaf_hash) VALUES (?, ?, ?, ?)",
            [(r.index, r.kind, r.leaf, r.leaf_hash) for r in rows],
        )
        subjects = [(s, r.index) for r in rows for s in r.subjects]
        if subjects:
            self._conn.executemany("INSERT INTO event_subjects (subject, idx) VALUES (?, ?)", subjects)
        self._conn.executemany(
            "INSERT INTO tree_nodes (key, hash) VALUES (?, ?)",
            [(_node_key(level, index), value) for level, index, value in nodes],
        )


class SQLiteLedgerStore:
    """:class:`~rowtrail.ledger.LedgerStore` on a :class:`SQLiteDatabase`."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self.db = db

    @contextmanager
    def transaction(self) -> Iterator[_Transaction]:
        """Open an exclusive write transaction."""
        try:
            with self.db.write() as conn:
                yield _Transaction(conn)
        except sqlite3.Error as exc:
            raise StorageError(f"ledger write failed: {exc}") from exc

    def size(self) -> int:
        """Return the number of committed entries."""
        row = self.db.query("SELECT max(idx) FROM events")[0]
        return 0 if row[0] is None else int(row[0]) + 1

    def read_nodes(self, keys: Sequence[tuple[int, int]]) -> list[bytes]:
        """Return stored node hashes for ``(level, index)`` keys, in order."""
        leaves = sorted({index for level, index in keys if level == 0})
        inner = sorted({_node_key(level, index) for level, index in keys if level > 0})
        found: dict[tuple[int, int], bytes] = {}
        for chunk in _chunks(leaves):
            sql = f"SELECT idx, leaf_hash FROM events WHERE idx IN ({','.join('?' * len(chunk))})"
            found.update(((0, i), bytes(h)) for i, h in self.db.query(sql, chunk))
        mask = (1 << _LEVEL_SHIFT) - 1
        for chunk in _chunks(inner):
            sql = f"SELECT key, hash FROM tree_nodes WHERE key IN ({','.join('?' * len(chunk))})"
            found.update(((k >> _LEVEL_SHIFT, k & mask), bytes(h)) for k, h in self.db.query(sql, chunk))
        try:
            return [found[key] for key in keys]
        except KeyError as exc:
            raise StorageError(f"tree node {exc.args[0]} is missing") from None

    def _rows(self, sql: str, params: Sequence[Any]) -> list[EntryRow]:
        raw = self.db.query(sql, params)
        subjects: dict[int, list[str]] = {}
        if raw:
            lo, hi = min(r[0] for r in raw), max(r[0] for r in raw)
            for subject, idx in self.db.query(
                "SELECT subject, idx FROM event_subjects WHERE idx BETWEEN ? AND ?", (lo, hi)
            ):
                subjects.setdefault(idx, []).append(subject)
        return [
            EntryRow(i, k, bytes(leaf), bytes(h), tuple(sorted(subjects.get(i, ()))))
            for i, k, leaf, h in raw
        ]

    def read_entries(self, start: int, end: int) -> list[EntryRow]:
        """Return entries ``[start, end)`` in order."""
        return self._rows(
            "SELECT idx, kind, leaf, leaf_hash FROM events WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, end),
        )

    def read_entry_list(self, indices: Sequence[int]) -> list[EntryRow]:
        """Return the given entries in the order asked."""
        by_index: dict[int, EntryRow] = {}
        for chunk in _chunks(sorted(set(indices))):
            sql = (
                "SELECT idx, kind, leaf, leaf_hash FROM events "
                f"WHERE idx IN ({','.join('?' * len(chunk))})"
            )
            by_index.update((row.index, row) for row in self._rows(sql, chunk))
        try:
            return [by_index[i] for i in indices]
        except KeyError as exc:
            raise StorageError(f"ledger entry {exc.args[0]} is missing") from None

    def indices_by_subject(self, subject: str) -> list[int]:
        """Return indices of entries naming ``subject``."""
        rows = self.db.query("SELECT idx FROM event_subjects WHERE subject = ? ORDER BY idx", (subject,))
        return [int(r[0]) for r in rows]

    def indices_by_kind(self, kind: str, *, start: int = 0, limit: int | None = None) -> list[int]:
        """Return indices of entries of ``kind``."""
        rows = self.db.query(
            "SELECT idx FROM events WHERE kind = ? AND idx >= ? ORDER BY idx LIMIT ?",
            (kind, start, -1 if limit is None else limit),
        )
        return [int(r[0]) for r in rows]

    def iter_subject_index(self) -> Iterator[tuple[str, int]]:
        """Yield every subject index row, ordered by index."""
        for subject, idx in self.db.query("SELECT subject, idx FROM event_subjects ORDER BY idx"):
            yield str(subject), int(idx)

    def count_nodes(self) -> int:
        """Return the number of stored interior nodes."""
        return int(self.db.query("SELECT count(*) FROM tree_nodes")[0][0])

    def save_checkpoint(self, checkpoint: StoredCheckpoint, *, created_at: str) -> None:
        """Store a signed checkpoint (idempotent for the same size and note)."""
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
                (checkpoint.size, checkpoint.root, checkpoint.note, created_at),
            )

    def list_checkpoints(self) -> list[StoredCheckpoint]:
        """Return stored checkpoints ascending by size."""
        rows = self.db.query("SELECT size, root, note FROM checkpoints ORDER BY size")
        return [StoredCheckpoint(int(s), bytes(r), str(n)) for s, r, n in rows]


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]
