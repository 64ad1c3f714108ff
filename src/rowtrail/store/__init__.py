"""Storage backends implementing the protocols declared by the ledger and lineage layers."""

from __future__ import annotations

from rowtrail.store._blobs import FileBlobStore
from rowtrail.store._migrations import SCHEMA_VERSION
from rowtrail.store.postgres import PostgresDatabase, PostgresLedgerStore, PostgresLineageStore
from rowtrail.store.sqlite import SQLiteDatabase, SQLiteLedgerStore
from rowtrail.store.sqlite_lineage import SQLiteLineageStore

__all__ = [
    "SCHEMA_VERSION",
    "FileBlobStore",
    "PostgresDatabase",
    "PostgresLedgerStore",
    "PostgresLineageStore",
    "SQLiteDatabase",
    "SQLiteLedgerStore",
    "SQLiteLineageStore",
]
