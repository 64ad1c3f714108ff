"""The PostgreSQL backend against a real server: the storage protocols, one by one.

Append, proofs, checkpoints, snapshot isolation, ``fresh_view``, ``outside_changes``,
read-only opens, migrations, the SQL translation, and the same bytes as SQLite (leaf hashes,
roots, signed checkpoints and cache bucket hashes) for the same events.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import rowtrail as rt
from _rawdb import dump_tables, raw_connection
from rowtrail.errors import (
    InvalidInputError,
    SchemaVersionError,
    StateError,
    StorageError,
    VerificationError,
)
from rowtrail.ledger import Ledger, NoteSigner, TrustStore
from rowtrail.lineage import SOURCE_EVENT_KINDS, register_source
from rowtrail.store import FileBlobStore, SQLiteDatabase, SQLiteLedgerStore, SQLiteLineageStore
from rowtrail.store._migrations import MIGRATIONS, SCHEMA_VERSION
from rowtrail.store.postgres import (
    PostgresDatabase,
    PostgresLedgerStore,
    PostgresLineageStore,
    schema_name,
    translate,
)
from rowtrail.store.sqlite import grouped_texts

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def pg_workspace(tmp_path: Path, url: str, name: str = "ws", **kw: Any) -> rt.Workspace:
    return rt.init(tmp_path / name, database=url, **kw)


def test_workspace_lives_in_its_own_schema(tmp_path: Path, pg_url: str) -> None:
    with pg_workspace(tmp_path, pg_url, "a") as a, pg_workspace(tmp_path, pg_url, "b") as b:
        assert a.db.dialect == "postgresql"
        assert isinstance(a.db, PostgresDatabase)
        assert a.db.schema == schema_name(a.workspace_id) != b.db.schema
        a.ledger.append("test.a", {"n": 1})
        assert (a.ledger.size, b.ledger.size) == (1, 0)
    recorded = json.loads((tmp_path / "a" / "database.json").read_text())
    assert recorded == {"url": pg_url, "schema": schema_name(a.workspace_id)}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["database.json", "keys"]
    with rt.open(tmp_path / "a") as again:  # reconnects from database.json
        assert again.ledger.size == 1
        assert again.workspace_id == a.workspace_id
        again.verify()


def test_environment_chooses_postgresql_for_new_workspaces(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROWTRAIL_DATABASE", raising=False)
    with rt.init(tmp_path / "lite") as lite:
        assert lite.db.dialect == "sqlite"
    monkeypatch.setenv("ROWTRAIL_DATABASE", pg_url)
    with rt.init(tmp_path / "pg") as ws:
        assert ws.db.dialect == "postgresql"
    with rt.init(tmp_path / "forced", database="sqlite") as ws:  # whatever the environment
        assert ws.db.dialect == "sqlite"
    with pytest.raises(InvalidInputError, match="PostgreSQL workspace already"):
        rt.init(tmp_path / "pg", database="sqlite")
    with rt.open(tmp_path / "lite") as lite:  # an existing workspace keeps its database
        assert lite.db.dialect == "sqlite"


def test_append_prove_checkpoint(tmp_path: Path, pg_url: str) -> None:
    with pg_workspace(tmp_path, pg_url) as ws:
        alice = ws.pseudonymize("alice")
        first = ws.ledger.append("test.one", {"x": 1}, subjects=[alice])
        more = ws.ledger.append_events(
            [ws.ledger.make_event("test.many", {"i": i}) for i in range(300)]
        )
        assert (first, more.start, more.stop) == (0, 1, 301)
        head = ws.ledger.head()
        for index in (0, 1, 150, 300):
            proof = ws.ledger.prove(index)
            proof.verify()
            assert proof.root == head.root
        ws.ledger.consistency(7).verify()
        assert ws.ledger.indices(subject=alice) == [0]
        assert ws.ledger.indices(kind="test.many") == list(range(1, 301))
        checkpoints = ws.ledger.checkpoints()
        assert checkpoints[-1].size == 301
        assert checkpoints[-1].root == head.root
        assert [e.event.payload["i"] for e in ws.ledger.entries([5, 2])] == [4, 1]
        report = ws.verify()
        assert report.size == 301


def test_snapshot_fresh_view_and_outside_changes(tmp_path: Path, pg_url: str) -> None:
    with pg_workspace(tmp_path, pg_url) as ws, rt.open(tmp_path / "ws") as other:
        ws.ledger.append("test.one", {"x": 1})
        store = other.ledger._store
        before = store.outside_changes()
        with other.ledger.snapshot():
            assert store.size() == 1
            ws.ledger.append("test.two", {"x": 2})  # another connection commits
            assert store.size() == 1  # the snapshot does not see it
            assert store.outside_changes() == before
            with store.fresh_view() as fresh:
                assert fresh.size() == 2
        assert store.size() == 2
        assert store.outside_changes() != before
        # An edit by anyone (not rowtrail) changes the counter too.
        seen = store.outside_changes()
        with raw_connection(ws.path) as raw:
            raw.execute("UPDATE checkpoints SET note = note WHERE size = 1")
        assert store.outside_changes() != seen


def test_read_only_open_writes_nothing(tmp_path: Path, pg_url: str) -> None:
    with pg_workspace(tmp_path, pg_url) as ws:
        ws.ledger.append("test.one", {"x": 1}, subjects=[ws.pseudonymize("a")])
    with raw_connection(tmp_path / "ws") as raw:
        before = dump_tables(raw)
        counter = raw.execute("SELECT n FROM change_counter").fetchone()
    with rt.open(tmp_path / "ws", read_only=True) as reader:
        reader.verify()
        assert reader.ledger.size == 1
        with pytest.raises(StateError, match="read-only"):
            reader.ledger.append("test.two", {"x": 2})
    with raw_connection(tmp_path / "ws") as raw:
        assert dump_tables(raw) == before
        assert raw.execute("SELECT n FROM change_counter").fetchone() == counter


def _tables_created_after(version: int) -> list[str]:
    """The tables the migrations after ``version`` create (a database of it lacks them)."""
    return [
        match.group(1)
        for number, statements in MIGRATIONS
        if number > version
        for statement in statements
        for match in [re.match(r"\s*CREATE TABLE (\w+)", statement)]
        if match
    ]


def test_migrations_and_schema_versions(tmp_path: Path, pg_url: str) -> None:
    with pg_workspace(tmp_path, pg_url) as ws:
        assert ws.db.get_meta("schema_version") == str(SCHEMA_VERSION)
        schema = ws.db.schema
    with raw_connection(tmp_path / "ws") as raw:
        columns = dict(
            raw.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = 'events'",
                (schema,),
            ).fetchall()
        )
        assert columns == {"idx": "bigint", "leaf": "bytea", "hashes": "bytea"}
        raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", ("999",))
    with pytest.raises(SchemaVersionError, match="999"):
        rt.open(tmp_path / "ws")
    with raw_connection(tmp_path / "ws") as raw:  # as a workspace of schema version 3 was
        raw.execute("ALTER TABLE subject_rows DROP COLUMN ledger_index")
        for table in _tables_created_after(3):
            raw.execute(f"DROP TABLE {table}")
        raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", ("3",))
    with pytest.raises(SchemaVersionError, match="needs"):
        rt.open(tmp_path / "ws", read_only=True)
    with rt.open(tmp_path / "ws") as ws:  # a writable open migrates
        assert ws.db.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert ws.db.query("SELECT count(ledger_index) FROM subject_rows") == [(0,)]


def test_translate_portable_sql() -> None:
    assert translate("SELECT a FROM t WHERE b = ? AND c = '?' AND d LIKE 'x%'") == (
        "SELECT a FROM t WHERE b = %s AND c = '?' AND d LIKE 'x%'"
    )
    assert translate("SELECT a % 2 FROM t WHERE b = ?") == "SELECT a %% 2 FROM t WHERE b = %s"
    assert translate("INSERT OR IGNORE INTO t (a) VALUES (?)") == (
        "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"
    )
    assert translate("INSERT INTO t (a) VALUES (?) ON CONFLICT DO NOTHING") == (
        "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"
    )
    assert translate(
        "CREATE TABLE r (k TEXT NOT NULL, n INTEGER, b BLOB, PRIMARY KEY (k, n)) WITHOUT ROWID"
    ) == 'CREATE TABLE r (k TEXT COLLATE "C" NOT NULL, n BIGINT, b BYTEA, PRIMARY KEY (k, n)) '
    assert translate("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"
    assert translate("ALTER TABLE r ADD COLUMN score REAL") == (
        "ALTER TABLE r ADD COLUMN score DOUBLE PRECISION"
    )


def test_portable_sql_on_both_databases(tmp_path: Path, pg_url: str) -> None:
    """What a projection of another module runs: DDL, ON CONFLICT, bytes, grouped texts."""
    lite = rt.init(tmp_path / "lite", database="sqlite")
    pg = pg_workspace(tmp_path, pg_url)
    results = []
    for ws in (lite, pg):
        with ws.db.write() as handle:
            handle.execute(
                "CREATE TABLE reg (k TEXT NOT NULL, n INTEGER NOT NULL, b BLOB, "
                "PRIMARY KEY (k, n)) WITHOUT ROWID"
            )
            handle.executemany(
                "INSERT INTO reg (k, n, b) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [("b", 2, b"\x00\x01"), ("a", 1, None), ("a", 1, b"dup"), ("B", 3, b"")],
            )
            assert handle.execute("SELECT count(*) FROM reg").fetchone()[0] == 3
        rows = ws.db.query("SELECT k, n, b FROM reg ORDER BY k")
        grouped = grouped_texts(
            ws.db,
            "SELECT n % 2, count(*), group_concat(k, char(30)) FROM reg GROUP BY n % 2",
        )
        results.append((rows, {b: sorted(t) for b, t in grouped.items()}))
        ws.close()
    assert results[0] == results[1]
    assert results[1][0] == [("B", 3, b""), ("a", 1, None), ("b", 2, b"\x00\x01")]
    assert isinstance(results[1][0][2][2], bytes)


def _ledger_on(db: Any, tmp: Path, key: Ed25519PrivateKey) -> tuple[Ledger, Any]:
    store = PostgresLedgerStore(db) if db.dialect == "postgresql" else SQLiteLedgerStore(db)
    times = iter(T0 + timedelta(seconds=i) for i in range(10_000))
    ledger = Ledger(
        store,
        FileBlobStore(tmp / "blobs"),
        NoteSigner("rowtrail.local/same", key),
        origin="rowtrail.local/same",
        now=lambda: next(times),
        trust=TrustStore(tmp / "trust"),
    )
    lineage_class = PostgresLineageStore if db.dialect == "postgresql" else SQLiteLineageStore
    lineage = lineage_class(db, ledger)
    store.add_projection(SOURCE_EVENT_KINDS, lineage.project)
    ledger.pin_trust()
    return ledger, store


def _same_events(ledger: Ledger) -> None:
    subjects = [f"ps:{i:064x}" for i in range(40)]
    ledger.append(
        "source.registered",
        {
            "source_index": 0, "name": "people", "version": 1, "digest": "sha256:" + "ab" * 32,
            "path": None, "format": "csv", "schema": {"age": "int64", "name": "str"},
            "n_rows": 40, "subject_column": "name",
        },
    )
    ledger.append_events(
        [
            ledger.make_event(
                "subject.ingested", {"source_index": 0, "row_numbers": [i]}, subjects=[s]
            )
            for i, s in enumerate(subjects)
        ]
    )
    for batch in range(5):
        ledger.append_events(
            [
                ledger.make_event(
                    "model.predicted", {"b": batch, "i": i, "text": "é\u2603"},
                    subjects=subjects[i : i + 2],
                )
                for i in range(37)
            ]
        )
        ledger.append("train.batch", {"step": batch})


def test_same_bytes_as_sqlite(tmp_path: Path, pg_url: str) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "lite").mkdir()
    lite_db = SQLiteDatabase(tmp_path / "lite" / "rowtrail.db")
    pg_db = PostgresDatabase(pg_url, schema_name(uuid.uuid4().hex[:16]), create=True)
    states = []
    for db, name in ((lite_db, "lite"), (pg_db, "pg")):
        ledger, store = _ledger_on(db, tmp_path / name, key)
        _same_events(ledger)
        states.append(
            {
                "leaf_hashes": [e.leaf_hash for e in store.read_entries(0, ledger.size)],
                "leaves": [e.leaf for e in store.read_entries(0, ledger.size)],
                "root": ledger.root(),
                "roots": [ledger.root(n) for n in (1, 41, 100, ledger.size)],
                "checkpoints": store.list_checkpoints(),
                "nodes": store.count_nodes(),
                "kinds": store.kind_runs(),
                "subjects": sorted(store.iter_subject_index()),
                "buckets": {b: sorted(t) for b, t in store.subject_index_buckets().items()},
                "sources": sorted(db.query("SELECT * FROM sources")),
                "subject_rows": sorted(db.query("SELECT * FROM subject_rows")),
            }
        )
        db.close()
    lite, pg = states
    assert lite["checkpoints"][-1].record  # the signed record carries the cache digest
    for field in lite:
        assert pg[field] == lite[field], field


def test_registered_sources_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    with pg_workspace(tmp_path, pg_url) as ws:
        register_source(
            ws, name="people.csv", digest="sha256:" + "cd" * 32, format="csv",
            schema={"x": "float"}, n_rows=3, subject_column="id", subject_ids=["u1", "u2", "u1"],
        )
        alice = ws.pseudonymize("u1")
        rows = ws.lineage_store.rows_of_subject(alice)
        assert len(rows) == 2
        assert ws.verify().counts["cache_rows"] >= 3
        with raw_connection(ws.path) as raw:
            raw.execute("DELETE FROM subject_rows WHERE subject = ?", (alice,))
        with pytest.raises(VerificationError):
            ws.verify()


def test_write_inside_snapshot_is_refused(tmp_path: Path, pg_url: str) -> None:
    with pg_workspace(tmp_path, pg_url) as ws:
        with ws.db.read_snapshot(), pytest.raises(StorageError, match="snapshot"):
            ws.ledger.append("test.one", {"x": 1})
        assert ws.ledger.append("test.one", {"x": 1}) == 0
