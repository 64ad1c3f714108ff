"""The tamperer's view of a workspace database, on SQLite and PostgreSQL alike.

Tests that simulate tampering edit the database behind rowtrail's back through
:func:`raw_connection`: an independent connection (autocommit) with sqlite3's
``execute(sql, params)`` / ``executemany`` / ``fetchone`` / ``fetchall``, taking rowtrail's
portable SQL (``?`` placeholders; PostgreSQL's is translated). :data:`RAW_ERRORS` and
:data:`INTEGRITY_ERRORS` are what either backend raises. :func:`copy_workspace` copies a
workspace so that the copy has its own database (a PostgreSQL copy gets its own schema).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from rowtrail.store.postgres import translate

__all__ = [
    "INTEGRITY_ERRORS",
    "RAW_ERRORS",
    "copy_directory",
    "copy_workspace",
    "database_files",
    "dump_tables",
    "is_postgres",
    "raw_connection",
    "restore_database",
    "table_names",
]

RAW_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)


def is_postgres(path: Path) -> bool:
    """Whether the workspace at ``path`` keeps its database on a PostgreSQL server."""
    return (path / "database.json").exists()


def _location(path: Path) -> tuple[str, str]:
    data = json.loads((path / "database.json").read_text())
    return str(data["url"]), str(data["schema"])


class PgRaw:
    """A psycopg connection that speaks like ``sqlite3.Connection`` (autocommit)."""

    def __init__(self, url: str, schema: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.schema = schema
        self.conn.execute(f'SET search_path TO "{schema}"')

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; return the cursor."""
        return self.conn.execute(translate(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row of parameters."""
        with self.conn.cursor() as cursor:
            cursor.executemany(translate(sql), [tuple(r) for r in rows])

    def commit(self) -> None:
        """Nothing to do: every statement commits on its own."""

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> PgRaw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def raw_connection(path: Path) -> Iterator[Any]:
    """An independent, autocommitting connection to the database of the workspace at ``path``."""
    conn: Any
    if is_postgres(path):
        conn = PgRaw(*_location(path))
    else:
        conn = sqlite3.connect(str(path / "rowtrail.db"), isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def table_names(conn: Any) -> list[str]:
    """Return the names of the workspace's tables, sorted."""
    if isinstance(conn, PgRaw):
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = ? AND tablename <> "
            "'change_counter' ORDER BY tablename",
            (conn.schema,),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
    return [str(r[0]) for r in rows]


def dump_tables(conn: Any) -> list[tuple[object, ...]]:
    """Return every row of every table (sorted), to compare a database before and after."""
    out: list[tuple[object, ...]] = []
    for table in table_names(conn):
        rows = conn.execute(f"SELECT * FROM {table}").fetchall()
        out.extend(sorted((table, *map(repr, r)) for r in rows))
    return out


def database_files(path: Path) -> list[str]:
    """Return the names of the files that hold the workspace's database (none on PostgreSQL)."""
    return [] if is_postgres(path) else ["rowtrail.db", "rowtrail.db-wal", "rowtrail.db-shm"]


def copy_workspace(source: Any, target: Path) -> Path:
    """Copy an open workspace's directory, and its database into one the copy owns.

    SQLite: the WAL is folded into the main file first. PostgreSQL: the copy's
    ``database.json`` names a new schema holding a copy of every table (same rows, same
    workspace id), with the change triggers of the original.
    """
    if not is_postgres(source.path):
        with source.db.lock:
            source.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copytree(source.path, target)
        return target
    return copy_directory(source.path, target)


def copy_directory(source: Path, target: Path) -> Path:
    """Copy a closed (or quiescent) workspace directory, and its database, to ``target``.

    A plain directory copy on SQLite; on PostgreSQL the copy's ``database.json`` names a new
    schema holding a copy of the source's, so editing one leaves the other as it was.
    """
    shutil.copytree(source, target)
    if is_postgres(source):
        url, schema = _location(source)
        new = f"{schema[:40]}_c{uuid.uuid4().hex[:12]}"
        with psycopg.connect(url, autocommit=True) as conn:
            clone_schema(conn, schema, new)
        (target / "database.json").write_text(json.dumps({"url": url, "schema": new}))
    return Path(target)


def clone_schema(conn: Any, schema: str, new: str) -> None:
    """Create schema ``new`` as a copy of ``schema``: tables, indexes, rows, triggers."""
    with conn.transaction():
        conn.execute(f'CREATE SCHEMA "{new}"')
        source = conn.execute(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON "
            "n.oid = p.pronamespace WHERE n.nspname = %s AND p.proname = 'bump_changes'",
            (schema,),
        ).fetchone()[0]
        conn.execute(source.replace(f'"{schema}"', f'"{new}"').replace(f"{schema}.", f"{new}."))
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
            ).fetchall()
        ]
        for table in tables:
            conn.execute(
                f'CREATE TABLE "{new}"."{table}" (LIKE "{schema}"."{table}" INCLUDING ALL)'
            )
            conn.execute(f'INSERT INTO "{new}"."{table}" SELECT * FROM "{schema}"."{table}"')
            if table != "change_counter":
                conn.execute(
                    f'CREATE TRIGGER bump_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE '
                    f'ON "{new}"."{table}" FOR EACH STATEMENT EXECUTE FUNCTION '
                    f'"{new}".bump_changes()'
                )


def restore_database(copy: Path, target: Path) -> None:
    """Put the database of a copy (see :func:`copy_workspace`) back in place of ``target``'s.

    SQLite: its files replace the target's. PostgreSQL: the target's ``database.json`` names
    the copy's schema, as a restored database would be found.
    """
    if is_postgres(copy):
        shutil.copy2(copy / "database.json", target / "database.json")
        return
    for name in database_files(copy):
        (target / name).unlink(missing_ok=True)
        if (copy / name).exists():
            shutil.copy2(copy / name, target / name)
