"""SQLite backend: one WAL database per workspace, migrations, and the ledger store.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``; every batch is one ``BEGIN
IMMEDIATE`` transaction, so a crash leaves either the whole batch (entries, tree nodes,
indexes) or none of it, and concurrent writers in other processes serialize on the lock.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rowtrail.errors import LogIntegrityError, SchemaVersionError, StateError, StorageError
from rowtrail.ledger import BUCKET_BITS, EntryBatch, EntryRow, Projection, StoredCheckpoint
from rowtrail.store._migrations import MIGRATIONS, SCHEMA_VERSION
from rowtrail.store._sql import Database

__all__ = ["SQLiteDatabase", "SQLiteLedgerStore", "grouped_texts"]

_CHUNK = 500  # SQLite's default limit on bound parameters is 999 (older builds)
_CHECKPOINT_COLUMNS = "size, root, note, record, created_at"
_LATEST_CHECKPOINT = f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY size DESC LIMIT 1"
_HASH = 32


def _node_row(level: int, index: int) -> int:
    """Row holding tree node ``(level, index)``: the entry whose append completed it.

    The row's ``hashes`` column is its leaf hash followed by the nodes of levels 1..t it
    completed, so the node sits at byte offset ``32 * level`` (see the migration).
    """
    return ((index + 1) << level) - 1


def _pack_hashes(batch: EntryBatch, nodes: Sequence[tuple[int, int, bytes]]) -> list[bytes]:
    """Return each entry's ``hashes`` value: its leaf hash, then the nodes its append completed.

    Node ``(l, j)`` belongs to entry ``(j + 1) * 2**l - 1`` at offset ``32 * l``; nodes arrive
    level by level, so appending them in order builds each value, which is checked on the way.
    """
    start, packed = batch.start, list(batch.leaf_hashes)
    for level, index, value in nodes:
        position = _node_row(level, index) - start
        if not 0 <= position < len(packed) or len(packed[position]) != _HASH * level:
            raise StorageError(f"tree node (level {level}, index {index}) does not fit this batch")
        packed[position] += value
    return packed


class _ReadSnapshot:
    """The context of :meth:`SQLiteDatabase.read_snapshot` (a class: entered very often)."""

    __slots__ = ("_began", "_db")

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db
        self._began = False

    def __enter__(self) -> None:
        db = self._db
        db.lock.acquire()
        if db.conn.in_transaction:  # already inside a transaction: it is the snapshot
            return
        try:
            db.conn.execute("BEGIN")
        except sqlite3.Error as exc:
            db.lock.release()
            raise StorageError(f"could not start a read transaction: {exc}") from exc
        db.snapshot_memo = {}
        self._began = True

    def __exit__(self, *exc: object) -> None:
        db = self._db
        try:
            if self._began:
                db.snapshot_memo = None
                db.conn.execute("ROLLBACK")
        finally:
            db.lock.release()


class SQLiteDatabase:
    """A workspace database file with its migrations applied."""

    dialect = "sqlite"

    def __init__(
        self, path: str | Path, *, timeout: float = 60.0, read_only: bool = False
    ) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        self.read_only = read_only
        # Values that cannot change while a read snapshot is held (the log's size, SQLite's
        # data_version), kept for the snapshot's duration; ``None`` outside one.
        self.snapshot_memo: dict[str, Any] | None = None
        self._write_depth = 0
        try:
            if read_only:
                self.conn = _connect_read_only(self.path, timeout)
            else:
                self.conn = sqlite3.connect(
                    str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
                )
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            if read_only:
                self._check_version()
            else:
                self.conn.execute("PRAGMA foreign_keys=ON")
                self._migrate()
        except sqlite3.Error as exc:
            raise StorageError(f"could not open workspace database {self.path}: {exc}") from exc

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        """Return the database's schema version; refuse one newer than this rowtrail knows."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"workspace database {self.path} has schema version {current}, but this "
                f"rowtrail knows versions up to {SCHEMA_VERSION}. Upgrade rowtrail "
                "(pip install -U rowtrail) to open it."
            )
        return current

    def _check_version(self) -> None:
        """Refuse a schema other than this rowtrail's (a read-only handle migrates nothing)."""
        current = self._schema_version(self.conn)
        if current < SCHEMA_VERSION:
            raise SchemaVersionError(
                f"workspace database {self.path} has schema version {current}; this rowtrail "
                f"needs {SCHEMA_VERSION}. Open it once for writing (rowtrail.open(path)) to "
                "migrate it; a read-only open changes nothing."
            )

    def _migrate(self) -> None:
        with self.write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            current = self._schema_version(conn)
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
        """Run statements in one exclusive (``BEGIN IMMEDIATE``) transaction.

        A ``write()`` inside another one (same thread) joins it: everything commits, or
        rolls back, with the outermost block.
        """
        if self.read_only:
            raise StateError(
                f"workspace database {self.path} is open read-only; open it with "
                "rowtrail.open(path) to write"
            )
        with self.lock:
            if self._write_depth:
                self._write_depth += 1
                try:
                    yield self.conn
                finally:
                    self._write_depth -= 1
                return
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"could not start a write transaction: {exc}") from exc
            self._write_depth = 1
            try:
                yield self.conn
            except BaseException:
                self._write_depth = 0
                self.conn.execute("ROLLBACK")
                raise
            self._write_depth = 0
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self.conn.execute("ROLLBACK")
                raise StorageError(f"could not commit: {exc}") from exc

    def read_snapshot(self) -> AbstractContextManager[None]:
        """Run the block's queries in one read transaction, so they see one committed state.

        The connection lock is held throughout: other threads of this process wait, while
        other processes keep writing to the WAL without being seen. Inside a transaction
        already, the block joins it (answers nest snapshots freely; joining is cheap).
        """
        return _ReadSnapshot(self)

    @property
    def writing(self) -> bool:
        """Whether this connection is inside its own write transaction."""
        return self._write_depth > 0

    def data_version(self) -> int:
        """Return SQLite's ``data_version``: it changes when another connection commits."""
        return int(self.query("PRAGMA data_version")[0][0])

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Return ``compute()``, kept for the rest of the read snapshot when inside one."""
        memo = self.snapshot_memo
        if memo is None:
            return compute()
        if key not in memo:
            memo[key] = compute()
        return memo[key]

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

    @property
    def location(self) -> str:
        """The database file's path, for messages."""
        return str(self.path)

    def reopen_read_only(self) -> SQLiteDatabase:
        """Open a second, read-only connection to the same file."""
        return SQLiteDatabase(self.path, read_only=True)

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()


def _connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """Open ``path`` so that nothing is created or changed, not even WAL side files.

    A cleanly closed database has no ``-wal`` file: it is opened ``immutable`` (no locks, no
    side files). While another connection has it open (a ``-wal`` exists), it is opened
    ``mode=ro``, which shares that connection's WAL index and sees its commits.
    """
    if not path.is_file():
        raise StorageError(f"workspace database {path} does not exist")
    wal = Path(str(path) + "-wal")
    mode = "mode=ro" if wal.exists() else "immutable=1"
    uri = f"file:{quote(str(path))}?{mode}"
    return sqlite3.connect(
        uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
    )


class _Transaction:
    """The ledger's write transaction on either database (``conn`` is its handle)."""

    def __init__(self, conn: Any, projections: Mapping[str, Sequence[Projection]]) -> None:
        self._conn = conn
        self._projections = projections
        self._projected: list[tuple[int, int]] = []

    def take_projected_changes(self) -> list[tuple[int, int]]:
        changes, self._projected = self._projected, []
        return changes

    def subject_bucket(self, bucket: int) -> list[tuple[int, str]]:
        # The text is built here, not in SQL: PostgreSQL text cannot hold the NUL byte.
        rows = self._conn.execute(
            "SELECT idx, subject FROM event_subjects WHERE idx >= ? AND idx < ?",
            (bucket << BUCKET_BITS, (bucket + 1) << BUCKET_BITS),
        ).fetchall()
        return [(int(i), f"{s}\x00{int(i)}") for i, s in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        row = self._conn.execute(_LATEST_CHECKPOINT).fetchone()
        return None if row is None else _checkpoint(row)

    def save_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        self._conn.execute(
            "INSERT INTO checkpoints (size, root, note, record, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.record,
             checkpoint.created_at),
        )

    def _project(self, start: int, kinds: Sequence[str], leaves: Sequence[bytes]) -> None:
        for kind in set(kinds) & self._projections.keys():
            entries = [(start + i, leaves[i]) for i, k in enumerate(kinds) if k == kind]
            for projection in self._projections[kind]:
                self._projected.extend(projection(self._conn, entries))

    def size(self) -> int:
        row = self._conn.execute("SELECT max(idx) FROM events").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def read_node(self, level: int, index: int) -> bytes:
        row = self._conn.execute(
            "SELECT hashes FROM events WHERE idx = ?", (_node_row(level, index),)
        ).fetchone()
        value = b"" if row is None else bytes(row[0])[level * _HASH : (level + 1) * _HASH]
        if len(value) != _HASH:
            raise StorageError(f"tree node (level {level}, index {index}) is missing")
        return value

    def write(self, batch: EntryBatch, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        n = len(batch.leaves)
        if not len(batch.kinds) == len(batch.leaf_hashes) == len(batch.subjects) == n:
            raise StorageError("columns of an entry batch must have equal lengths")
        indices = range(batch.start, batch.start + n)
        self._insert(
            "events", ("idx", "leaf", "hashes"),
            zip(indices, batch.leaves, _pack_hashes(batch, nodes), strict=True),
        )
        self._write_kind_runs(batch.start, batch.kinds)
        subjects = [
            (s, i) for i, names in zip(indices, batch.subjects, strict=True) if names for s in names
        ]
        if subjects:
            self._insert("event_subjects", ("subject", "idx"), subjects)
        self._project(batch.start, batch.kinds, batch.leaves)

    def _insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert rows: by ``COPY`` where the handle has it (PostgreSQL), else ``executemany``."""
        copy_rows = getattr(self._conn, "copy_rows", None)
        if copy_rows is not None:
            copy_rows(table, columns, rows)
            return
        marks = ", ".join("?" * len(columns))
        self._conn.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    def _write_kind_runs(self, start: int, kinds: Sequence[str]) -> None:
        runs: list[list[Any]] = []
        position = start
        for kind, group in itertools.groupby(kinds):
            length = sum(1 for _ in group)
            runs.append([kind, position, position + length])
            position += length
        if not runs:
            return
        last = self._conn.execute(
            "SELECT kind, start, stop FROM event_kinds ORDER BY start DESC LIMIT 1"
        ).fetchone()
        if last is not None and last[0] == runs[0][0] and last[2] == start:
            # The stream goes on with the same kind: extend the previous run.
            self._conn.execute(
                "UPDATE event_kinds SET stop = ? WHERE kind = ? AND start = ?",
                (runs[0][2], last[0], last[1]),
            )
            runs = runs[1:]
        self._conn.executemany(
            "INSERT INTO event_kinds (kind, start, stop) VALUES (?, ?, ?)", runs
        )


class SQLiteLedgerStore:
    """:class:`~rowtrail.ledger.LedgerStore` on a :class:`SQLiteDatabase`.

    The same SQL serves a PostgreSQL database (:class:`rowtrail.store.postgres.PostgresDatabase`
    translates it); where the dialects differ, ``db.dialect`` decides.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._projections: dict[str, list[Projection]] = {}

    def add_projection(self, kinds: Sequence[str], projection: Projection) -> None:
        """Apply ``projection`` to every appended entry of ``kinds``, in the append's transaction.

        Cache tables (sources, subject rows) are projections of ledger events: they are
        written in the same transaction as the events, so neither exists without the other.
        """
        for kind in kinds:
            self._projections.setdefault(kind, []).append(projection)

    @contextmanager
    def transaction(self) -> Iterator[_Transaction]:
        """Open an exclusive write transaction."""
        try:
            with self.db.write() as conn:
                yield _Transaction(conn, self._projections)
        except sqlite3.Error as exc:
            raise StorageError(f"ledger write failed: {exc}") from exc

    def snapshot(self) -> AbstractContextManager[None]:
        """Hold one read transaction (a WAL snapshot) for the block; this thread only."""
        return self.db.read_snapshot()

    @contextmanager
    def fresh_view(self) -> Iterator[SQLiteLedgerStore]:
        """Open a read-only store on a second connection (sees the latest commit)."""
        db = self.db.reopen_read_only()
        try:
            yield type(self)(db)
        finally:
            db.close()

    def size(self) -> int:
        """Return the number of committed entries."""

        def compute() -> int:
            row = self.db.query("SELECT max(idx) FROM events")[0]
            return 0 if row[0] is None else int(row[0]) + 1

        return int(self.db.memo("size", compute))

    def read_nodes(self, keys: Sequence[tuple[int, int]]) -> list[bytes]:
        """Return stored node hashes for ``(level, index)`` keys, in order."""
        wanted = sorted({_node_row(level, index) for level, index in keys})
        stored: dict[int, bytes] = {}
        for chunk in _chunks(wanted):
            sql = f"SELECT idx, hashes FROM events WHERE idx IN ({','.join('?' * len(chunk))})"
            stored.update((int(i), bytes(h)) for i, h in self.db.query(sql, chunk))
        result = []
        for level, index in keys:
            value = stored.get(_node_row(level, index), b"")[level * _HASH : (level + 1) * _HASH]
            if len(value) != _HASH:
                raise StorageError(f"tree node (level {level}, index {index}) is missing")
            result.append(value)
        return result

    def _subjects_between(self, lo: int, hi: int) -> dict[int, list[str]]:
        subjects: dict[int, list[str]] = {}
        for subject, idx in self.db.query(
            "SELECT subject, idx FROM event_subjects WHERE idx BETWEEN ? AND ?", (lo, hi)
        ):
            subjects.setdefault(idx, []).append(subject)
        return subjects

    def _subjects_in(self, indices: Sequence[int]) -> dict[int, list[str]]:
        subjects: dict[int, list[str]] = {}
        marks = ",".join("?" * len(indices))
        for subject, idx in self.db.query(
            f"SELECT subject, idx FROM event_subjects WHERE idx IN ({marks})", indices
        ):
            subjects.setdefault(idx, []).append(subject)
        return subjects

    def _kinds_between(self, lo: int, hi: int) -> list[str]:
        """Kind of each entry in ``[lo, hi)`` from the runs; ``""`` where no run covers it.

        An entry's run is the last run starting at or before it (the rule of
        :meth:`_kind_of`); runs that overlap are caught by :meth:`count_kind_index`.
        """
        runs = self.db.query(
            "SELECT kind, start, stop FROM event_kinds WHERE start <= ? "
            "ORDER BY start DESC, kind DESC LIMIT 1",
            (lo,),
        ) + self.db.query(
            "SELECT kind, start, stop FROM event_kinds WHERE start > ? AND start < ? "
            "ORDER BY start, kind",
            (lo, hi),
        )
        kinds = [""] * (hi - lo)
        for position, (kind, start, stop) in enumerate(runs):
            following = runs[position + 1][1] if position + 1 < len(runs) else hi
            first, last = max(start, lo), min(stop, following, hi)
            if first < last:
                kinds[first - lo : last - lo] = [str(kind)] * (last - first)
        return kinds

    def _kind_of(self, index: int) -> str:
        rows = self.db.query(
            "SELECT kind, stop FROM event_kinds WHERE start <= ? "
            "ORDER BY start DESC, kind DESC LIMIT 1",
            (index,),
        )
        return str(rows[0][0]) if rows and index < rows[0][1] else ""

    def read_entries(self, start: int, end: int) -> list[EntryRow]:
        """Return entries ``[start, end)`` in order."""
        raw = self.db.query(
            "SELECT idx, leaf, hashes FROM events WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, end),
        )
        if not raw:
            return []
        lo, hi = raw[0][0], raw[-1][0] + 1
        kinds, subjects = self._kinds_between(lo, hi), self._subjects_between(lo, hi)
        return [
            EntryRow(
                i, kinds[i - lo], bytes(leaf), bytes(h[:_HASH]), tuple(sorted(subjects.get(i, ())))
            )
            for i, leaf, h in raw
        ]

    def read_leaves(self, indices: Sequence[int]) -> list[tuple[int, bytes, bytes]]:
        """Return ``(index, leaf, leaf hash)`` of the given entries in the order asked."""
        found: dict[int, tuple[int, bytes, bytes]] = {}
        for chunk in _chunks(sorted(set(indices))):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT idx, leaf, hashes FROM events WHERE idx IN ({marks})"
            found.update(
                (int(i), (int(i), bytes(leaf), bytes(h[:_HASH])))
                for i, leaf, h in self.db.query(sql, chunk)
            )
        try:
            return [found[i] for i in indices]
        except KeyError as exc:
            raise StorageError(f"ledger entry {exc.args[0]} is missing") from None

    def read_entry_list(self, indices: Sequence[int]) -> list[EntryRow]:
        """Return the given entries in the order asked."""
        by_index: dict[int, EntryRow] = {}
        for chunk in _chunks(sorted(set(indices))):
            lo, hi = chunk[0], chunk[-1] + 1
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT idx, leaf, hashes FROM events WHERE idx IN ({marks})"
            raw = self.db.query(sql, chunk)
            if hi - lo <= 4 * len(chunk) + 1024:  # dense: one range read of each index
                subjects = self._subjects_between(lo, hi)
                dense = self._kinds_between(lo, hi)
                kinds = {i: dense[i - lo] for i, _, _ in raw}
            else:  # sparse: read only the rows asked for, not the whole range between them
                subjects = self._subjects_in(chunk)
                kinds = {i: self._kind_of(i) for i, _, _ in raw}
            for i, leaf, h in raw:
                names = tuple(sorted(subjects.get(i, ())))
                by_index[i] = EntryRow(i, kinds[i], bytes(leaf), bytes(h[:_HASH]), names)
        try:
            return [by_index[i] for i in indices]
        except KeyError as exc:
            raise StorageError(f"ledger entry {exc.args[0]} is missing") from None

    def indices_by_subject(self, subject: str) -> list[int]:
        """Return indices of entries naming ``subject``."""
        rows = self.db.query(
            "SELECT idx FROM event_subjects WHERE subject = ? ORDER BY idx", (subject,)
        )
        return [int(r[0]) for r in rows]

    def indices_by_kind(self, kind: str, *, start: int = 0, limit: int | None = None) -> list[int]:
        """Return indices of entries of ``kind``, ascending, from the kind runs."""
        found: list[int] = []
        runs = self.db.memo(
            f"kind-runs\x00{kind}\x00{start}",
            lambda: self.db.query(
                "SELECT start, stop FROM event_kinds WHERE kind = ? AND stop > ? ORDER BY start",
                (kind, start),
            ),
        )
        for first, stop in runs:
            found.extend(range(max(int(first), start), int(stop)))
            if limit is not None and len(found) >= limit:
                return found[:limit]
        return found

    def count_kind_index(self) -> int:
        """Return how many entries the kind runs cover in total (overlaps counted twice)."""
        bad = self.db.query("SELECT count(*) FROM event_kinds WHERE stop <= start OR start < 0")
        if bad[0][0]:
            raise StorageError(f"{bad[0][0]} kind index runs are empty or reversed")
        return int(self.db.query("SELECT coalesce(sum(stop - start), 0) FROM event_kinds")[0][0])

    def subject_index_buckets(self) -> dict[int, list[str]]:
        """Return every subject index row's ``subject || 0x00 || index``, by bucket."""
        # One range query a bucket: each is a scan of the covering (idx) index in order,
        # where a GROUP BY over ``idx >> BUCKET_BITS`` would sort every row in a temp b-tree.
        found: dict[int, list[str]] = {}
        if self.db.dialect != "sqlite":  # no NUL in PostgreSQL text: build the texts here
            for idx, subject in self.db.query("SELECT idx, subject FROM event_subjects"):
                found.setdefault(int(idx) >> BUCKET_BITS, []).append(f"{subject}\x00{int(idx)}")
            return found
        with self.db.read_snapshot():
            (top,) = self.db.query("SELECT max(idx) FROM event_subjects")[0]
            for bucket in range(0 if top is None else (int(top) >> BUCKET_BITS) + 1):
                found.update(
                    grouped_texts(
                        self.db,
                        f"SELECT {bucket}, count(*), group_concat(subject || char(0) || idx, "
                        "char(30)) FROM event_subjects WHERE idx >= ? AND idx < ? "
                        "HAVING count(*) > 0",
                        (bucket << BUCKET_BITS, (bucket + 1) << BUCKET_BITS),
                    )
                )
        return found

    def kind_runs(self) -> list[tuple[str, int, int]]:
        """Return every kind run, ordered by start."""
        rows = self.db.query("SELECT kind, start, stop FROM event_kinds ORDER BY start, kind")
        return [(str(k), int(a), int(b)) for k, a, b in rows]

    def iter_subject_index(self) -> Iterator[tuple[str, int]]:
        """Yield every subject index row, ordered by index."""
        for subject, idx in self.db.query("SELECT subject, idx FROM event_subjects ORDER BY idx"):
            yield str(subject), int(idx)

    def outside_changes(self) -> int:
        """Return SQLite's ``data_version``: it changes when another connection commits."""
        return int(self.db.memo("data_version", self.db.data_version))

    def count_nodes(self) -> int:
        """Return the number of stored interior nodes (hash bytes beyond each leaf hash)."""
        sql = f"SELECT coalesce(sum(length(hashes) - {_HASH}), 0) FROM events"
        total = int(self.db.query(sql)[0][0])
        if total % _HASH:
            raise StorageError("stored tree hashes are not a whole number of 32-byte hashes")
        return total // _HASH

    def list_checkpoints(self) -> list[StoredCheckpoint]:
        """Return stored checkpoints ascending by size."""
        rows = self.db.query(f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY size")
        return [_checkpoint(row) for row in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the largest stored checkpoint, or ``None``."""
        rows = self.db.memo("latest_checkpoint", lambda: self.db.query(_LATEST_CHECKPOINT))
        return _checkpoint(rows[0]) if rows else None


def _checkpoint(row: Sequence[Any]) -> StoredCheckpoint:
    size, root, note, record, created_at = row
    return StoredCheckpoint(int(size), bytes(root), str(note), str(record), str(created_at))


def grouped_texts(db: Database, sql: str, params: Sequence[Any] = ()) -> dict[int, list[str]]:
    """Run a ``SELECT bucket, count(*), group_concat(text, char(30)) … GROUP BY bucket`` query.

    On PostgreSQL ``group_concat(`` and ``char(`` are read as ``string_agg(`` and ``chr(``:
    the text must then be of type text (cast numbers: ``CAST(idx AS TEXT)``) and cannot hold
    ``char(0)``.

    The texts come back in no particular order; bucket hashes sort them. A text holding the
    separator itself would split into other rows' texts, so each bucket must split into
    exactly as many texts as it has rows.
    """
    found: dict[int, list[str]] = {}
    for bucket, count, joined in db.query(sql, params):
        texts = str(joined).split("\x1e") if joined is not None else []
        if bucket is None or len(texts) != int(count):
            raise LogIntegrityError(
                f"an index or cache row in bucket {bucket} holds a separator character or a "
                "missing value: the table was edited outside rowtrail"
            )
        found[int(bucket)] = texts
    return found


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]
