"""PostgreSQL backend: one schema per workspace on a PostgreSQL server (psycopg 3).

The same stores as SQLite (:class:`~rowtrail.store.SQLiteLedgerStore`,
:class:`~rowtrail.store.SQLiteLineageStore`) run on a :class:`PostgresDatabase`, which takes
their portable SQL (``?`` placeholders, ``INTEGER``/``BLOB``/``TEXT`` DDL) and translates it
(:func:`translate`). The same events give the same leaf hashes, roots, checkpoints and cache
bucket hashes on both.

Semantics, as on SQLite:

* every write transaction first takes a transaction-scoped advisory lock of its schema, so
  writers on any number of connections and processes serialize (group commit: one
  transaction per batch) and keep one tree; a writer killed mid-transaction is rolled back
  by the server;
* :meth:`PostgresDatabase.read_snapshot` is one ``REPEATABLE READ`` transaction;
* :meth:`PostgresDatabase.data_version` reads a counter that a statement trigger on every
  table bumps once per writing transaction, so it changes whenever anyone commits a change,
  rowtrail or not;
* a read-only open sets ``default_transaction_read_only`` and writes nothing.

Every ``TEXT`` column is created ``COLLATE "C"``, so text orders by code point as in SQLite
and Python, whatever the database's locale.

psycopg is imported only when a PostgreSQL workspace is opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError, SchemaVersionError, StateError, StorageError
from rowtrail.store._migrations import MIGRATIONS, SCHEMA_VERSION
from rowtrail.store._sql import RowConflictError
from rowtrail.store.sqlite import SQLiteLedgerStore
from rowtrail.store.sqlite_lineage import SQLiteLineageStore

__all__ = [
    "PostgresDatabase",
    "PostgresLedgerStore",
    "PostgresLineageStore",
    "check_url",
    "redact_url",
    "schema_name",
    "translate",
]

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_COUNTER = "change_counter"
_FIX = (
    "Start the server (or check host, port, user and database name in the URL); a password is "
    "read from PGPASSWORD or ~/.pgpass, never from the URL."
)


def check_url(url: str, caller: str = "rowtrail.init") -> str:
    """Return ``url`` if it is a PostgreSQL connection URL without a password.

    Parameters
    ----------
    url : str
        ``postgresql://user@host:port/dbname`` (``postgres://`` is accepted too).
    caller : str
        The function named in the error message.

    Raises
    ------
    InvalidInputError
        Another scheme, no database name, or a password in the URL (it would be written to
        the workspace directory: libpq reads it from ``PGPASSWORD`` or ``~/.pgpass``).

    Examples
    --------
    >>> check_url("postgresql://me@127.0.0.1:5432/rowtrail")
    'postgresql://me@127.0.0.1:5432/rowtrail'
    """
    if not str(url).startswith(("postgresql://", "postgres://")):
        raise InvalidInputError(
            f"database of {caller} must be a postgresql://user@host:port/dbname URL; got "
            f"{url!r}. Leave it out for a SQLite workspace."
        )
    parts = urlsplit(url)
    if parts.password is not None:
        raise InvalidInputError(
            f"database of {caller} must not hold a password; got {redact_url(url)!r}. Put the "
            "password in PGPASSWORD or ~/.pgpass: the URL is written to the workspace directory."
        )
    if not parts.path.strip("/"):
        raise InvalidInputError(
            f"database of {caller} must name a database (postgresql://user@host:port/dbname); "
            f"got {url!r}"
        )
    return url


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for messages).

    Examples
    --------
    >>> redact_url("postgresql://me:secret@db/x")
    'postgresql://me:***@db/x'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def schema_name(workspace_id: str) -> str:
    """Return the PostgreSQL schema of the workspace with this id.

    Examples
    --------
    >>> schema_name("0123456789abcdef")
    'rowtrail_0123456789abcdef'
    """
    name = f"rowtrail_{workspace_id}"
    if not _SCHEMA.match(name):
        raise InvalidInputError(
            f"workspace_id of schema_name must be lowercase letters, digits and '_'; got "
            f"{workspace_id!r}"
        )
    return name


_WORDS = re.compile(r"\b(INTEGER|BLOB|TEXT|REAL|WITHOUT\s+ROWID)\b", re.IGNORECASE)
_DDL_TYPES = {
    "integer": "BIGINT",
    "blob": "BYTEA",
    "text": 'TEXT COLLATE "C"',
    "real": "DOUBLE PRECISION",  # SQLite's REAL is 8 bytes; PostgreSQL's is 4
}
_FUNCTIONS = re.compile(r"\b(group_concat|char)\s*\(", re.IGNORECASE)
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)


def _code_segments(sql: str) -> list[tuple[bool, str]]:
    """Split ``sql`` into ``(is_code, text)`` parts: quoted literals and names are not code."""
    parts: list[tuple[bool, str]] = []
    start, i, n = 0, 0, len(sql)
    while i < n:
        quote = sql[i]
        if quote in "'\"":
            if start < i:
                parts.append((True, sql[start:i]))
            j = i + 1
            while j < n:
                if sql[j] == quote:
                    if j + 1 < n and sql[j + 1] == quote:  # doubled quote inside
                        j += 2
                        continue
                    break
                j += 1
            parts.append((False, sql[i : j + 1]))
            i = start = j + 1
        else:
            i += 1
    if start < n:
        parts.append((True, sql[start:]))
    return parts


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """Translate a statement of rowtrail's portable SQL to PostgreSQL (psycopg's format).

    Outside quoted literals: ``?`` becomes ``%s`` and ``%`` becomes ``%%``;
    ``group_concat(`` and ``char(`` become ``string_agg(`` and ``chr(``. In ``CREATE`` and
    ``ALTER`` statements ``INTEGER`` becomes ``BIGINT``, ``BLOB`` ``BYTEA``, ``REAL``
    ``DOUBLE PRECISION``, ``TEXT`` ``TEXT COLLATE "C"`` (code point order, as in SQLite), and
    ``WITHOUT ROWID`` is dropped. An ``INTEGER PRIMARY KEY`` is not filled in when a row
    omits it (no rowid): give every key a value.
    ``INSERT OR IGNORE INTO ...`` becomes ``INSERT INTO ... ON CONFLICT DO NOTHING``.

    Examples
    --------
    >>> translate("SELECT leaf FROM events WHERE idx = ? AND kind LIKE 'a%?'")
    "SELECT leaf FROM events WHERE idx = %s AND kind LIKE 'a%?'"
    >>> translate("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, b BLOB) WITHOUT ROWID")
    'CREATE TABLE t (k TEXT COLLATE "C" PRIMARY KEY, n BIGINT, b BYTEA) '
    """
    ddl = sql.lstrip()[:6].upper() in {"CREATE", "ALTER "}
    ignore = _INSERT_OR_IGNORE.match(sql)
    if ignore:
        sql = "INSERT INTO" + sql[ignore.end() :]
    out = []
    for is_code, text in _code_segments(sql):
        if is_code:
            text = text.replace("%", "%%").replace("?", "%s")
            text = _FUNCTIONS.sub(
                lambda m: ("string_agg(" if m[1].lower() == "group_concat" else "chr("), text
            )
            if ddl:
                text = _WORDS.sub(lambda m: _DDL_TYPES.get(m[1].lower(), ""), text)
        out.append(text)
    result = "".join(out)
    if ignore:
        result = result.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    return result


_PSYCOPG: Any = None


def _pg() -> Any:
    """Return the psycopg module (imported on first use: ``import rowtrail`` never does)."""
    global _PSYCOPG
    if _PSYCOPG is None:
        _PSYCOPG = require("psycopg", extra="postgres", feature="PostgreSQL workspaces")
    return _PSYCOPG


def _said(exc: BaseException) -> str:
    """Return a driver error's message on one line."""
    return " ".join(str(exc).split())


def _lock_key(schema: str) -> int:
    """Return the advisory lock key of a schema (a signed 64-bit integer)."""
    digest = hashlib.sha256(f"rowtrail:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _Handle:
    """The transaction handle stores and projections get: sqlite3's ``execute`` on psycopg."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders); return the cursor (``fetchone``/``fetchall``)."""
        psycopg = _pg()
        try:
            return self._conn.execute(translate(sql), tuple(params))
        except psycopg.errors.IntegrityError as exc:
            raise RowConflictError(f"statement failed: {exc}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"statement failed: {exc}") from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters."""
        psycopg = _pg()
        try:
            with self._conn.cursor() as cursor:
                cursor.executemany(translate(sql), [tuple(r) for r in rows])
        except psycopg.errors.IntegrityError as exc:
            raise RowConflictError(f"statement failed: {exc}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"statement failed: {exc}") from exc


    def copy_rows(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Insert rows with one ``COPY ... FROM STDIN`` (a bulk append's fast path)."""
        psycopg = _pg()
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        try:
            with self._conn.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.errors.IntegrityError as exc:
            raise RowConflictError(f"statement failed: {_said(exc)}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"statement failed: {_said(exc)}") from exc


class _ReadSnapshot:
    """The context of :meth:`PostgresDatabase.read_snapshot`."""

    __slots__ = ("_began", "_db")

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._began = False

    def __enter__(self) -> None:
        db = self._db
        db.lock.acquire()
        if db.in_transaction:  # already inside a transaction: it is the snapshot
            return
        try:
            db.run("BEGIN ISOLATION LEVEL REPEATABLE READ")
        except BaseException:
            db.lock.release()
            raise
        db.in_transaction = True
        db.snapshot_memo = {}
        self._began = True

    def __exit__(self, *exc: object) -> None:
        db = self._db
        try:
            if self._began:
                db.snapshot_memo = None
                db.in_transaction = False
                db.run("ROLLBACK")
        finally:
            db.lock.release()


class PostgresDatabase:
    """A workspace's schema on a PostgreSQL server, with its migrations applied.

    Parameters
    ----------
    url : str
        ``postgresql://user@host:port/dbname`` (no password: libpq reads ``PGPASSWORD`` or
        ``~/.pgpass``).
    schema : str
        The workspace's schema (:func:`schema_name`).
    create : bool
        Create the schema when it does not exist (a new workspace); otherwise a missing
        schema raises :class:`~rowtrail.errors.StorageError`.
    read_only : bool
        Write nothing, migrate nothing; every write raises :class:`~rowtrail.errors.StateError`.
    timeout : float
        Seconds to wait for the server and for the write lock.

    Raises
    ------
    StorageError
        The server cannot be reached, or the schema is missing.
    SchemaVersionError
        The schema is newer than this rowtrail (or, read-only, older).
    """

    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        schema: str,
        *,
        create: bool = False,
        read_only: bool = False,
        timeout: float = 60.0,
    ) -> None:
        psycopg = _pg()
        self.url = check_url(url, "PostgresDatabase")
        if not _SCHEMA.match(schema):
            raise InvalidInputError(
                f"schema of PostgresDatabase must be a lowercase identifier; got {schema!r}"
            )
        self.schema = schema
        self.read_only = read_only
        self.lock = threading.RLock()
        self.snapshot_memo: dict[str, Any] | None = None
        self.in_transaction = False
        self._write_depth = 0
        self._lock_key = _lock_key(schema)
        try:
            self.conn = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=max(1, int(min(timeout, 30))),
                application_name="rowtrail",
            )
        except psycopg.Error as exc:
            raise StorageError(
                f"could not connect to the PostgreSQL server of {redact_url(url)}: "
                f"{_said(exc)}. {_FIX} Nothing was created."
            ) from exc
        try:
            self.run(f"SET lock_timeout = {int(timeout * 1000)}")
            exists = self.conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)
            ).fetchone()
            if exists is None and not create:
                raise StorageError(
                    f"schema {schema} of the workspace database {redact_url(url)} does not "
                    "exist: the server is not the one this workspace was created on, or the "
                    "schema was dropped. Check the URL in the workspace's database.json."
                )
            if read_only:
                self.run(f'SET search_path TO "{schema}"')
                self.run("SET default_transaction_read_only = on")
                self._check_version()
            else:
                self._migrate()
                self.run(f'SET search_path TO "{schema}"')
        except BaseException:
            self.conn.close()
            raise

    # ------------------------------------------------------------ plumbing
    @property
    def location(self) -> str:
        """The server URL and schema, for messages."""
        return f"{redact_url(self.url)} (schema {self.schema})"

    def run(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """Run native PostgreSQL SQL (``%s`` placeholders) on this connection."""
        psycopg = _pg()
        with self.lock:
            try:
                return self.conn.execute(sql, params)
            except psycopg.Error as exc:
                raise StorageError(f"PostgreSQL {self.location}: {_said(exc)}") from exc

    def _schema_version(self) -> int:
        row = self.run(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'meta'", (self.schema,)
        ).fetchone()
        if row is None:
            return 0
        row = self.run(
            f"SELECT value FROM \"{self.schema}\".meta WHERE key = 'schema_version'"
        ).fetchone()
        current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"workspace database {self.location} has schema version {current}, but this "
                f"rowtrail knows versions up to {SCHEMA_VERSION}. Upgrade rowtrail "
                "(pip install -U rowtrail) to open it."
            )
        return current

    def _check_version(self) -> None:
        current = self._schema_version()
        if current < SCHEMA_VERSION:
            raise SchemaVersionError(
                f"workspace database {self.location} has schema version {current}; this "
                f"rowtrail needs {SCHEMA_VERSION}. Open it once for writing (rowtrail.open(path)) "
                "to migrate it; a read-only open changes nothing."
            )

    def _migrate(self) -> None:
        """Create the schema if asked, then apply the migrations it lacks (under the lock)."""
        s = self.schema
        with self.write() as handle:
            handle.execute(f'CREATE SCHEMA IF NOT EXISTS "{s}"')
            handle.execute(f'SET LOCAL search_path TO "{s}"')
            current = self._schema_version()
            if current == SCHEMA_VERSION:
                return
            handle.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            handle.execute(f"CREATE TABLE IF NOT EXISTS {_COUNTER} (n BIGINT NOT NULL)")
            handle.execute(
                f"INSERT INTO {_COUNTER} (n) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM {_COUNTER})"
            )
            # Bumps the counter once per transaction that changes any table (set_config with
            # is_local: the flag ends with the transaction).
            self.run(
                f'CREATE OR REPLACE FUNCTION "{s}".bump_changes() RETURNS trigger '
                "LANGUAGE plpgsql AS $$ BEGIN "
                "IF current_setting('rowtrail.bumped', true) IS DISTINCT FROM '1' THEN "
                f'UPDATE "{s}".{_COUNTER} SET n = n + 1; '
                "PERFORM set_config('rowtrail.bumped', '1', true); "
                "END IF; RETURN NULL; END $$"
            )
            for version, statements in MIGRATIONS:
                if version > current:
                    for statement in statements:
                        handle.execute(statement)
                    handle.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                        (str(version),),
                    )
            tables = self.run(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> %s",
                (s, _COUNTER),
            ).fetchall()
            for (table,) in tables:
                self.run(
                    f'CREATE OR REPLACE TRIGGER bump_changes AFTER INSERT OR UPDATE OR DELETE OR '
                    f'TRUNCATE ON "{s}"."{table}" FOR EACH STATEMENT EXECUTE FUNCTION '
                    f'"{s}".bump_changes()'
                )

    # ------------------------------------------------------------ transactions
    @contextmanager
    def write(self) -> Iterator[_Handle]:
        """Run statements in one exclusive write transaction (the schema's advisory lock).

        A ``write()`` inside another one (same thread) joins it: everything commits, or rolls
        back, with the outermost block.
        """
        if self.read_only:
            raise StateError(
                f"workspace database {self.location} is open read-only; open it with "
                "rowtrail.open(path) to write"
            )
        with self.lock:
            if self._write_depth:
                self._write_depth += 1
                try:
                    yield _Handle(self.conn)
                finally:
                    self._write_depth -= 1
                return
            if self.in_transaction:
                raise StorageError(
                    "could not start a write transaction: a read snapshot is open on this "
                    "connection"
                )
            self.run("BEGIN")
            self.in_transaction = True
            self._write_depth = 1
            try:
                self.run("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                yield _Handle(self.conn)
            except BaseException:
                self._write_depth = 0
                self.in_transaction = False
                self._rollback()
                raise
            self._write_depth = 0
            self.in_transaction = False
            try:
                self.run("COMMIT")
            except StorageError as exc:
                self._rollback()
                raise StorageError(f"could not commit: {exc}") from exc

    def _rollback(self) -> None:
        # A connection that is gone had its transaction rolled back by the server.
        with contextlib.suppress(_pg().Error):
            self.conn.execute("ROLLBACK")

    def read_snapshot(self) -> _ReadSnapshot:
        """Run the block's queries in one ``REPEATABLE READ`` transaction (one committed state).

        The connection lock is held throughout. Inside a transaction already, the block joins
        it.
        """
        return _ReadSnapshot(self)

    @property
    def writing(self) -> bool:
        """Whether this connection is inside its own write transaction."""
        return self._write_depth > 0

    def data_version(self) -> int:
        """Return the schema's change counter: it changes whenever anyone commits a change."""
        return int(self.query(f"SELECT n FROM {_COUNTER}")[0][0])

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Return ``compute()``, kept for the rest of the read snapshot when inside one."""
        memo = self.snapshot_memo
        if memo is None:
            return compute()
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run a read query (portable SQL, ``?`` placeholders) and return all rows."""
        with self.lock:
            return list(self.run(translate(sql), tuple(params)).fetchall())

    def get_meta(self, key: str) -> str | None:
        """Return a metadata value."""
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta_default(self, key: str, value: str) -> str:
        """Set a metadata value unless present; return the stored value."""
        with self.write() as handle:
            handle.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, value)
            )
            return str(handle.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    def reopen_read_only(self) -> PostgresDatabase:
        """Open a second, read-only connection to the same schema."""
        return PostgresDatabase(self.url, self.schema, read_only=True)

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()

    def __del__(self) -> None:
        # A handle dropped without close() releases its server connection, as SQLite's do.
        conn = getattr(self, "conn", None)
        if conn is not None and not conn.closed:
            with contextlib.suppress(Exception):
                conn.close()


class PostgresLedgerStore(SQLiteLedgerStore):
    """:class:`~rowtrail.ledger.LedgerStore` on a :class:`PostgresDatabase` (the same SQL)."""

    def __init__(self, db: PostgresDatabase) -> None:
        super().__init__(db)


class PostgresLineageStore(SQLiteLineageStore):
    """:class:`~rowtrail.lineage.LineageStore` on a :class:`PostgresDatabase` (the same SQL)."""
