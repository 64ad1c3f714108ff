"""What the SQL stores need of a workspace database, on SQLite and PostgreSQL alike.

Stores and projections write portable SQL with ``?`` placeholders, portable DDL (``TEXT``,
``INTEGER``, ``BLOB``, ``PRIMARY KEY``; no ``AUTOINCREMENT``) and ``INSERT ... ON CONFLICT
DO NOTHING``; each database translates it to its own dialect
(:func:`rowtrail.store.postgres.translate` for PostgreSQL) and returns ``bytes`` for binary
columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from rowtrail.errors import StorageError

__all__ = ["Database", "RowConflictError"]


class RowConflictError(StorageError):
    """A statement broke a uniqueness or key constraint (the backend's integrity error).

    Raised by the PostgreSQL transaction handle; SQLite raises ``sqlite3.IntegrityError``.
    The transaction it happened in is rolled back.
    """


class Database(Protocol):
    """A workspace database: what the ledger and lineage stores call on it."""

    #: ``"sqlite"`` or ``"postgresql"``.
    dialect: str
    read_only: bool

    @property
    def location(self) -> str:
        """Where the database is, for messages (no password)."""
        ...

    @property
    def writing(self) -> bool:
        """Whether this connection is inside its own write transaction."""
        ...

    def write(self) -> AbstractContextManager[Any]:
        """Run statements in one exclusive write transaction; yields the handle."""
        ...

    def read_snapshot(self) -> AbstractContextManager[None]:
        """Run the block's queries in one read transaction (one committed state)."""
        ...

    def data_version(self) -> int:
        """Return a counter that changes when another connection commits."""
        ...

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Return ``compute()``, kept for the rest of the read snapshot when inside one."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run a read query with ``?`` placeholders and return all rows."""
        ...

    def get_meta(self, key: str) -> str | None:
        """Return a metadata value."""
        ...

    def set_meta_default(self, key: str, value: str) -> str:
        """Set a metadata value unless present; return the stored value."""
        ...

    def reopen_read_only(self) -> Database:
        """Open a second, read-only connection to the same database."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...
